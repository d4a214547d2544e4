#include "strata/env.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/testutil.h"

namespace strata {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class EnvPosixTest : public ::testing::Test {
 protected:
  Env* env_ = Env::Default();
  TempDir dir_;
};

TEST_F(EnvPosixTest, WriteThenReadBack) {
  const std::string path = dir_ / "f";
  const std::string data = testing::RandomBytes(1, 300'000);
  auto f = env_->NewWritableFile(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE((*f)->Append(Bytes(data.substr(0, 1000))).ok());
  ASSERT_TRUE((*f)->Append(Bytes(data.substr(1000))).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_FALSE((*f)->Append(Bytes("x")).ok());  // closed
  EXPECT_EQ(ReadFile(path), data);

  auto r = ReadFileToString(env_, path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, data);
}

TEST_F(EnvPosixTest, StreamingFileWritesExactBytesAcrossBuffersAndSyncs) {
  // Sizes around the 4 KiB alignment and the 8 MiB staging buffer, with a Sync in the middle
  // (the tail is written padded, then rewritten by the next appends).
  const std::string path = dir_ / "pack";
  const std::string data = testing::RandomBytes(7, (8u << 20) * 2 + 12345);
  auto f = env_->NewStreamingFile(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  size_t pos = 0;
  for (size_t n : {size_t{1}, size_t{4095}, size_t{4097}, size_t{(8u << 20) - 3}, size_t{70000}}) {
    ASSERT_TRUE((*f)->Append(Bytes(data.substr(pos, n))).ok());
    pos += n;
    if (n == 4097) {
      ASSERT_TRUE((*f)->Sync().ok());
      EXPECT_EQ(ReadFile(path), data.substr(0, pos)) << "synced prefix, exact length";
    }
  }
  ASSERT_TRUE((*f)->Append(Bytes(data.substr(pos))).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(ReadFile(path), data);
  EXPECT_FALSE(env_->NewStreamingFile(path).ok()) << "exclusive, like NewExclusiveFile";
}

TEST_F(EnvPosixTest, NewWritableFileTruncates) {
  WriteFile(dir_ / "f", "old content");
  auto f = env_->NewWritableFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("new")).ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(ReadFile(dir_ / "f"), "new");
}

TEST_F(EnvPosixTest, ExclusiveFileRefusesExisting) {
  WriteFile(dir_ / "f", "x");
  auto f = env_->NewExclusiveFile(dir_ / "f");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(env_->NewExclusiveFile(dir_ / "g").ok());
}

TEST_F(EnvPosixTest, RandomAccessReads) {
  const std::string data = testing::RandomBytes(2, 10'000);
  WriteFile(dir_ / "f", data);
  auto f = env_->NewRandomAccessFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*(*f)->Size(), 10'000u);
  std::vector<uint8_t> buf(500);
  size_t got = 0;
  ASSERT_TRUE((*f)->Read(1234, 500, buf.data(), &got).ok());
  ASSERT_EQ(got, 500u);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), data.substr(1234, 500));
  // Short only at end of file.
  ASSERT_TRUE((*f)->Read(9'900, 500, buf.data(), &got).ok());
  EXPECT_EQ(got, 100u);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 100), data.substr(9'900));
  ASSERT_TRUE((*f)->Read(20'000, 500, buf.data(), &got).ok());
  EXPECT_EQ(got, 0u);
}

TEST_F(EnvPosixTest, ConcurrentRandomReads) {
  const std::string data = testing::RandomBytes(3, 1 << 20);
  WriteFile(dir_ / "f", data);
  auto f = env_->NewRandomAccessFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf(4096);
      for (size_t off = t * 4096; off + 4096 <= data.size(); off += 4 * 4096) {
        size_t got = 0;
        if (!(*f)->Read(off, 4096, buf.data(), &got).ok() || got != 4096 ||
            std::memcmp(buf.data(), data.data() + off, 4096) != 0) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(EnvPosixTest, SequentialReadsToEof) {
  const std::string data = testing::RandomBytes(4, 1000);
  WriteFile(dir_ / "f", data);
  auto f = env_->NewSequentialFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  std::string out;
  uint8_t buf[300];
  size_t got = 0;
  do {
    ASSERT_TRUE((*f)->Read(sizeof(buf), buf, &got).ok());
    out.append(reinterpret_cast<char*>(buf), got);
  } while (got > 0);
  EXPECT_EQ(out, data);
}

TEST_F(EnvPosixTest, MissingFileIsNotFoundAndNamesThePath) {
  auto f = env_->NewRandomAccessFile(dir_ / "missing");
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsNotFound());
  EXPECT_NE(f.status().message().find(dir_ / "missing"), std::string::npos) << f.status().ToString();
  EXPECT_TRUE(ReadFileToString(env_, dir_ / "missing").status().IsNotFound());
  EXPECT_TRUE(env_->Stat(dir_ / "missing").status().IsNotFound());
  EXPECT_FALSE(env_->FileExists(dir_ / "missing"));
  EXPECT_TRUE(env_->DeleteFile(dir_ / "missing").IsNotFound());
}

TEST_F(EnvPosixTest, RenameReplacesDestination) {
  WriteFile(dir_ / "a", "A");
  WriteFile(dir_ / "b", "B");
  ASSERT_TRUE(env_->RenameFile(dir_ / "a", dir_ / "b").ok());
  EXPECT_FALSE(env_->FileExists(dir_ / "a"));
  EXPECT_EQ(ReadFile(dir_ / "b"), "A");
  EXPECT_TRUE(env_->SyncDir(dir_.path()).ok());
  EXPECT_TRUE(env_->RenameFile(dir_ / "a", dir_ / "c").IsNotFound());
}

TEST_F(EnvPosixTest, ListDirAndDirectories) {
  ASSERT_TRUE(env_->CreateDirs(dir_ / "x/y/z").ok());
  ASSERT_TRUE(env_->CreateDirs(dir_ / "x/y/z").ok());  // idempotent
  ASSERT_TRUE(env_->CreateDir(dir_ / "x").ok());       // exists as a directory: OK
  WriteFile(dir_ / "x/f1", "1");
  WriteFile(dir_ / "x/f2", "22");
  auto names = env_->ListDir(dir_ / "x");
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"f1", "f2", "y"}));
  EXPECT_EQ(env_->CreateDir(dir_ / "x/f1").code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(env_->DeleteDir(dir_ / "x").ok());  // not empty
  ASSERT_TRUE(env_->DeleteDir(dir_ / "x/y/z").ok());
  EXPECT_FALSE(env_->FileExists(dir_ / "x/y/z"));
  EXPECT_TRUE(env_->ListDir(dir_ / "nope").status().IsNotFound());
}

TEST_F(EnvPosixTest, StatModeMtimeAndSymlinks) {
  WriteFile(dir_ / "f", "hello");
  ASSERT_TRUE(env_->SetMode(dir_ / "f", 0600).ok());
  const int64_t mtime = 1'600'000'000'123'456'789;
  ASSERT_TRUE(env_->SetMtime(dir_ / "f", mtime).ok());
  auto info = env_->Stat(dir_ / "f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->type, FileType::kRegular);
  EXPECT_EQ(info->size, 5u);
  EXPECT_EQ(info->mode, 0600u);
  EXPECT_EQ(info->mtime_ns, mtime);
  EXPECT_NE(info->inode, 0u);

  ASSERT_TRUE(env_->CreateSymlink("f", dir_ / "link").ok());
  auto link = env_->Stat(dir_ / "link");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->type, FileType::kSymlink);  // lstat, not stat
  EXPECT_EQ(*env_->ReadLink(dir_ / "link"), "f");
  // Setting the mtime of a link must not touch its target.
  ASSERT_TRUE(env_->SetMtime(dir_ / "link", 1'000'000'000'000'000'000).ok());
  EXPECT_EQ(env_->Stat(dir_ / "link")->mtime_ns, 1'000'000'000'000'000'000);
  EXPECT_EQ(env_->Stat(dir_ / "f")->mtime_ns, mtime);
  ASSERT_TRUE(env_->SetMode(dir_ / "link", 0777).ok());
  EXPECT_EQ(env_->Stat(dir_ / "f")->mode, 0600u);

  // A dangling symlink still exists as an entry.
  ASSERT_TRUE(env_->CreateSymlink("nowhere", dir_ / "dangling").ok());
  EXPECT_TRUE(env_->FileExists(dir_ / "dangling"));
  EXPECT_EQ(env_->Stat(dir_.path())->type, FileType::kDirectory);
}

TEST_F(EnvPosixTest, LongSymlinkTarget) {
  std::string target(1000, 'a');
  ASSERT_TRUE(env_->CreateSymlink(target, dir_ / "l").ok());
  EXPECT_EQ(*env_->ReadLink(dir_ / "l"), target);
}

TEST_F(EnvPosixTest, WriteFileAtomicReplacesAndLeavesNoTemp) {
  WriteFile(dir_ / "config", "old");
  ASSERT_TRUE(WriteFileAtomic(env_, dir_ / "config", std::string_view("new content")).ok());
  EXPECT_EQ(ReadFile(dir_ / "config"), "new content");
  ASSERT_TRUE(WriteFileAtomic(env_, dir_ / "fresh", std::string_view("")).ok());
  EXPECT_EQ(ReadFile(dir_ / "fresh"), "");
  auto names = env_->ListDir(dir_.path());
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"config", "fresh"}));
}

TEST_F(EnvPosixTest, WriteFileAtomicIntoMissingDirFails) {
  Status s = WriteFileAtomic(Env::Default(), dir_ / "no/such/file", std::string_view("x"));
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
}

// The POSIX pending file (an unnamed file linked in) and the portable one (a temporary name
// renamed), which every wrapper that does not override NewPendingFile gets.
class PendingFileTest : public EnvPosixTest, public ::testing::WithParamInterface<bool> {
 protected:
  Env* env() { return GetParam() ? static_cast<Env*>(&wrapper_) : env_; }
  EnvWrapper wrapper_{Env::Default()};
};

TEST_P(PendingFileTest, AppearsOnlyWhenPublishedWithModeAndMtime) {
  const std::string path = dir_ / "f";
  auto f = env()->NewPendingFile(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE((*f)->Append(Bytes("hello ")).ok());
  ASSERT_TRUE((*f)->Append(Bytes("world")).ok());
  EXPECT_FALSE(env_->FileExists(path));
  const int64_t mtime = 1'600'000'000'123'456'789;
  ASSERT_TRUE((*f)->Publish(0751, mtime).ok());
  EXPECT_FALSE((*f)->Publish(0644, mtime).ok());  // once
  EXPECT_EQ(ReadFile(path), "hello world");
  auto st = env_->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0751u);
  EXPECT_EQ(st->mtime_ns, mtime);
  EXPECT_EQ(*env_->ListDir(dir_.path()), std::vector<std::string>{"f"});
}

TEST_P(PendingFileTest, ReplacesAnExistingFile) {
  const std::string path = dir_ / "f";
  WriteFile(path, "old");
  auto f = env()->NewPendingFile(path);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("new")).ok());
  EXPECT_EQ(ReadFile(path), "old");
  ASSERT_TRUE((*f)->Publish(0644, 0).ok());
  EXPECT_EQ(ReadFile(path), "new");
  EXPECT_EQ(*env_->ListDir(dir_.path()), std::vector<std::string>{"f"});
}

TEST_P(PendingFileTest, AbandonedLeavesNothing) {
  const std::string path = dir_ / "f";
  WriteFile(path, "old");
  {
    auto f = env()->NewPendingFile(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(Bytes("partial")).ok());
  }
  EXPECT_EQ(ReadFile(path), "old");
  EXPECT_EQ(*env_->ListDir(dir_.path()), std::vector<std::string>{"f"});
  EXPECT_FALSE(env()->NewPendingFile(dir_ / "missing-dir/f").ok());
}

TEST_P(PendingFileTest, ListDirInfoStatsEachEntryWithoutFollowingLinks) {
  WriteFile(dir_ / "f", "12345");
  ASSERT_TRUE(env_->CreateDir(dir_ / "d").ok());
  ASSERT_TRUE(env_->CreateSymlink("f", dir_ / "l").ok());
  auto r = env()->ListDirInfo(dir_.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::string, FileInfo> got(r->begin(), r->end());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got["f"].type, FileType::kRegular);
  EXPECT_EQ(got["f"].size, 5u);
  EXPECT_EQ(got["f"].inode, env_->Stat(dir_ / "f")->inode);
  EXPECT_EQ(got["d"].type, FileType::kDirectory);
  EXPECT_EQ(got["l"].type, FileType::kSymlink);
  EXPECT_FALSE(env()->ListDirInfo(dir_ / "missing").ok());
}

INSTANTIATE_TEST_SUITE_P(PosixAndPortable, PendingFileTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Portable" : "Posix"; });

TEST_F(EnvPosixTest, NowMicrosIsWallClock) {
  int64_t now = env_->NowMicros();
  EXPECT_GT(now, int64_t{1'600'000'000} * 1'000'000);
}

TEST(PathTest, JoinDirnameBasename) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("a", "/b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("a", ""), "a");
  EXPECT_EQ(JoinPath("/", "b"), "/b");

  EXPECT_EQ(Dirname("a/b"), "a");
  EXPECT_EQ(Dirname("/x/y/z"), "/x/y");
  EXPECT_EQ(Dirname("a/b/"), "a");
  EXPECT_EQ(Dirname("a"), ".");
  EXPECT_EQ(Dirname("/a"), "/");
  EXPECT_EQ(Dirname("/"), "/");
  EXPECT_EQ(Dirname("a//b"), "a");

  EXPECT_EQ(Basename("a/b"), "b");
  EXPECT_EQ(Basename("a/b/"), "b");
  EXPECT_EQ(Basename("b"), "b");
  EXPECT_EQ(Basename("/"), "/");
  EXPECT_EQ(Basename(""), "");
}

}  // namespace
}  // namespace strata
