#include "base/fault_env.h"

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/testutil.h"

namespace strata {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class FaultEnvTest : public ::testing::Test {
 protected:
  // Writes `data` through the fault env, optionally syncing the file and its directory.
  Status Write(const std::string& name, std::string_view data, bool sync, bool sync_dir) {
    STRATA_ASSIGN_OR_RETURN(auto f, env_.NewWritableFile(dir_ / name));
    STRATA_RETURN_IF_ERROR(f->Append(Bytes(data)));
    if (sync) STRATA_RETURN_IF_ERROR(f->Sync());
    STRATA_RETURN_IF_ERROR(f->Close());
    if (sync_dir) STRATA_RETURN_IF_ERROR(env_.SyncDir(dir_.path()));
    return Status::OK();
  }
  bool Exists(const std::string& name) { return Env::Default()->FileExists(dir_ / name); }

  TempDir dir_;
  FaultEnv env_{Env::Default(), 42};
};

TEST_F(FaultEnvTest, SyncedDataSurvivesCrash) {
  ASSERT_TRUE(Write("a", "durable", true, true).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "a"), "durable");
}

TEST_F(FaultEnvTest, UnsyncedBytesAreDropped) {
  auto f = env_.NewWritableFile(dir_ / "log");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("first;")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE((*f)->Append(Bytes("second;")).ok());
  EXPECT_EQ(ReadFile(dir_ / "log"), "first;second;");  // visible before the crash
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "log"), "first;");
  // The old handle is stale: writing through it must not resurrect anything.
  EXPECT_FALSE((*f)->Append(Bytes("third;")).ok());
  EXPECT_FALSE((*f)->Sync().ok());
  EXPECT_EQ(ReadFile(dir_ / "log"), "first;");
}

TEST_F(FaultEnvTest, SyncedFileWithoutDirSyncIsDeleted) {
  ASSERT_TRUE(Write("new", "data", /*sync=*/true, /*sync_dir=*/false).ok());
  ASSERT_TRUE(Exists("new"));
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_FALSE(Exists("new"));
}

TEST_F(FaultEnvTest, DirSyncOfAnotherDirDoesNotCommit) {
  ASSERT_TRUE(Env::Default()->CreateDir(dir_ / "sub").ok());
  ASSERT_TRUE(Write("sub/new", "data", true, /*sync_dir=*/true).ok());  // syncs dir_, not sub
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_FALSE(Exists("sub/new"));
  // Normalised paths: "sub/" names the same directory as "sub".
  ASSERT_TRUE(Write("sub/new", "data", true, false).ok());
  ASSERT_TRUE(env_.SyncDir(dir_ / "sub/").ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "sub/new"), "data");
}

TEST_F(FaultEnvTest, UntrackedFilesAreUntouched) {
  WriteFile(dir_ / "pre", "existing");
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "pre"), "existing");
}

TEST_F(FaultEnvTest, UnsyncedRenameIsUndone) {
  ASSERT_TRUE(Write("dst", "old", true, true).ok());
  ASSERT_TRUE(Write("src", "new", true, true).ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "src", dir_ / "dst").ok());
  EXPECT_EQ(ReadFile(dir_ / "dst"), "new");
  EXPECT_FALSE(Exists("src"));
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "dst"), "old");
  EXPECT_EQ(ReadFile(dir_ / "src"), "new");
}

TEST_F(FaultEnvTest, SyncedRenameSurvives) {
  ASSERT_TRUE(Write("dst", "old", true, true).ok());
  ASSERT_TRUE(Write("src", "new", true, true).ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "src", dir_ / "dst").ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "dst"), "new");
  EXPECT_FALSE(Exists("src"));
}

TEST_F(FaultEnvTest, RenameChainUnwinds) {
  ASSERT_TRUE(Write("a", "A", true, true).ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "a", dir_ / "b").ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "b", dir_ / "c").ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "a"), "A");
  EXPECT_FALSE(Exists("b"));
  EXPECT_FALSE(Exists("c"));
}

TEST_F(FaultEnvTest, RenamedFileKeepsItsUnsyncedTail) {
  // Bytes appended but not synced are lost even when the rename itself was made durable.
  auto f = env_.NewWritableFile(dir_ / "tmp");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("synced")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append(Bytes("+lost")).ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "tmp", dir_ / "final").ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "final"), "synced");
  EXPECT_FALSE(Exists("tmp"));
}

TEST_F(FaultEnvTest, WriteFileAtomicIsAllOrNothing) {
  ASSERT_TRUE(WriteFileAtomic(&env_, dir_ / "cfg", std::string_view("v1")).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "cfg"), "v1");

  // Crash at every mutating step of a second atomic write: the file is always v1 or v2.
  for (int n = 0; n < 8; ++n) {
    env_.FailWritesAfter(n);
    Status s = WriteFileAtomic(&env_, dir_ / "cfg", std::string_view("v2"));
    ASSERT_TRUE(env_.SimulateCrash().ok());
    std::string got = ReadFile(dir_ / "cfg");
    if (s.ok()) {
      EXPECT_EQ(got, "v2") << "after " << n << " writes";
    } else {
      EXPECT_TRUE(got == "v1" || got == "v2") << got;
    }
    auto names = Env::Default()->ListDir(dir_.path());
    ASSERT_TRUE(names.ok());
    EXPECT_EQ(*names, std::vector<std::string>{"cfg"}) << "temp file left after " << n;
    ASSERT_TRUE(WriteFileAtomic(&env_, dir_ / "cfg", std::string_view("v1")).ok());
  }
}

TEST_F(FaultEnvTest, FailWritesAfterN) {
  auto f = env_.NewWritableFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  env_.FailWritesAfter(2);
  EXPECT_TRUE((*f)->Append(Bytes("1")).ok());
  EXPECT_TRUE((*f)->Append(Bytes("2")).ok());
  Status s = (*f)->Append(Bytes("3"));
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find("injected"), std::string::npos);
  EXPECT_FALSE((*f)->Sync().ok());  // keeps failing
  EXPECT_FALSE(env_.SyncDir(dir_.path()).ok());
  EXPECT_FALSE(env_.NewWritableFile(dir_ / "g").ok());
  EXPECT_EQ(env_.faults_injected(), 4u);
  EXPECT_EQ(ReadFile(dir_ / "f"), "12");
  env_.FailWritesAfter(-1);
  EXPECT_TRUE((*f)->Append(Bytes("4")).ok());
}

TEST_F(FaultEnvTest, FailWritesFilterOnlyHitsMatchingPaths) {
  env_.FailWritesAfter(0, "pack");
  EXPECT_TRUE(Write("index", "i", true, false).ok());
  EXPECT_FALSE(Write("pack-1", "p", true, false).ok());
}

TEST_F(FaultEnvTest, NoSpace) {
  env_.SetSpaceLimit(10);
  auto f = env_.NewWritableFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->Append(Bytes("123456")).ok());
  Status s = (*f)->Append(Bytes("abcdef"));
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_EQ(ReadFile(dir_ / "f"), "123456");  // no torn writes: nothing of the failed call
  EXPECT_TRUE((*f)->Append(Bytes("abcd")).ok());  // exactly fills the space
  EXPECT_EQ((*f)->Append(Bytes("x")).code(), StatusCode::kNoSpace);
  EXPECT_EQ(env_.faults_injected(), 2u);
  env_.SetSpaceLimit(-1);
  EXPECT_TRUE((*f)->Append(Bytes("x")).ok());
}

TEST_F(FaultEnvTest, TornWriteLeavesAStrictPrefix) {
  const std::string data = testing::RandomBytes(9, 1000);
  int torn_seen = 0;
  for (int i = 0; i < 20; ++i) {
    env_.SetTornWrites(true);
    env_.FailWritesAfter(1);  // the create succeeds, the Append fails
    auto f = env_.NewWritableFile(dir_ / "f");
    ASSERT_TRUE(f.ok());
    EXPECT_FALSE((*f)->Append(Bytes(data)).ok());
    ASSERT_TRUE((*f)->Close().ok());
    std::string got = ReadFile(dir_ / "f");
    ASSERT_LT(got.size(), data.size());
    EXPECT_EQ(got, data.substr(0, got.size()));
    if (!got.empty()) ++torn_seen;
    env_.FailWritesAfter(-1);
  }
  EXPECT_GT(torn_seen, 0);
}

TEST_F(FaultEnvTest, ReadBitFlipChangesExactlyOneBit) {
  const std::string data = testing::RandomBytes(5, 4096);
  WriteFile(dir_ / "f", data);
  env_.SetReadBitFlips(1);
  auto f = env_.NewRandomAccessFile(dir_ / "f");
  ASSERT_TRUE(f.ok());
  for (int i = 0; i < 10; ++i) {
    std::string buf(data.size(), '\0');
    size_t got = 0;
    ASSERT_TRUE((*f)->Read(0, buf.size(), reinterpret_cast<uint8_t*>(buf.data()), &got).ok());
    ASSERT_EQ(got, data.size());
    int bits = 0;
    for (size_t j = 0; j < data.size(); ++j) bits += std::popcount(static_cast<uint8_t>(data[j] ^ buf[j]));
    EXPECT_EQ(bits, 1);
  }
  EXPECT_EQ(env_.faults_injected(), 10u);
  EXPECT_EQ(ReadFile(dir_ / "f"), data);  // the file itself is intact

  auto seq = env_.NewSequentialFile(dir_ / "f");
  ASSERT_TRUE(seq.ok());
  std::string buf(data.size(), '\0');
  size_t got = 0;
  ASSERT_TRUE((*seq)->Read(buf.size(), reinterpret_cast<uint8_t*>(buf.data()), &got).ok());
  ASSERT_EQ(got, data.size());
  int bits = 0;
  for (size_t j = 0; j < data.size(); ++j) bits += std::popcount(static_cast<uint8_t>(data[j] ^ buf[j]));
  EXPECT_EQ(bits, 1);
}

TEST_F(FaultEnvTest, BitFlipFilterAndRate) {
  const std::string data = testing::RandomBytes(6, 256);
  WriteFile(dir_ / "pack", data);
  WriteFile(dir_ / "other", data);
  env_.SetReadBitFlips(4, "pack");
  auto other = ReadFileToString(&env_, dir_ / "other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, data);
  EXPECT_EQ(env_.faults_injected(), 0u);
  auto f = env_.NewRandomAccessFile(dir_ / "pack");
  ASSERT_TRUE(f.ok());
  int flipped = 0;
  for (int i = 0; i < 400; ++i) {
    std::string buf(data.size(), '\0');
    size_t got = 0;
    ASSERT_TRUE((*f)->Read(0, buf.size(), reinterpret_cast<uint8_t*>(buf.data()), &got).ok());
    flipped += buf != data;
  }
  // One in four, give or take: far from never and far from always.
  EXPECT_GT(flipped, 50);
  EXPECT_LT(flipped, 150);
}

TEST_F(FaultEnvTest, DirectoryRenameCarriesTrackedFiles) {
  ASSERT_TRUE(Env::Default()->CreateDir(dir_ / "staging").ok());
  auto f = env_.NewWritableFile(dir_ / "staging/data");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("kept")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append(Bytes("+lost")).ok());
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(env_.SyncDir(dir_ / "staging").ok());
  ASSERT_TRUE(env_.RenameFile(dir_ / "staging", dir_ / "final").ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_EQ(ReadFile(dir_ / "final/data"), "kept");
  EXPECT_FALSE(Exists("staging"));
}

TEST_F(FaultEnvTest, DeleteIsDurableAndUntracks) {
  ASSERT_TRUE(Write("a", "A", true, true).ok());
  ASSERT_TRUE(env_.DeleteFile(dir_ / "a").ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_FALSE(Exists("a"));
}

}  // namespace
}  // namespace strata
