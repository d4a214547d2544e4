// End-to-end tests of Repository: round trips of real directory trees, keys, damage of every
// kind (bit flips, missing and truncated packs, lost or damaged index files), crashes at every
// write of a put (FaultEnv), a full disk, and locks.
#include "strata/repository.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fault_env.h"
#include "store/lock.h"
#include "store/repository_impl.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::ReadFile;
using strata::testing::TempDir;
using strata::testing::WriteFile;

constexpr uint32_t kMin = 16 << 10, kAvg = 64 << 10, kMax = 256 << 10;
constexpr char kPass[] = "correct horse battery staple";

InitOptions SmallInit() { return strata::testing::FastInitOptions(); }

OpenOptions Threads(size_t n, Env* env = Env::Default()) {
  OpenOptions o;
  o.env = env;
  o.threads = n;
  return o;
}

std::unique_ptr<Repository> CreateRepo(const std::string& dir, const OpenOptions& o = Threads(2)) {
  auto r = Repository::Create(dir, kPass, SmallInit(), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::unique_ptr<Repository> OpenRepo(const std::string& dir, const OpenOptions& o = Threads(2),
                                     std::string_view pass = kPass) {
  auto r = Repository::Open(dir, pass, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

store::RepositoryImpl* Impl(Repository* r) { return dynamic_cast<store::RepositoryImpl*>(r); }

// Text-like content that compresses, mixed with random runs that do not.
std::string MixedBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  static const char* words[] = {"tensor ", "gradient ", "epoch ", "shard ", "chunk ", "model\n"};
  std::string s;
  s.reserve(n);
  while (s.size() < n) {
    if (rng() % 4 == 0) {
      s += RandomBytes(rng(), 1 + rng() % 3000);
    } else {
      for (int i = 0; i < 50; ++i) s += words[rng() % 6];
    }
  }
  s.resize(n);
  return s;
}

void SetMtime(const std::string& path, int64_t ns) {
  struct timespec t[2];
  t[0].tv_sec = 0;
  t[0].tv_nsec = UTIME_OMIT;
  int64_t sec = ns / 1'000'000'000, nsec = ns % 1'000'000'000;
  if (nsec < 0) {
    nsec += 1'000'000'000;
    --sec;
  }
  t[1].tv_sec = sec;
  t[1].tv_nsec = nsec;
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << path;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st;
}

int64_t MtimeNs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Compares two trees on disk: types, names, content, modes, mtimes, symlink targets.
void ExpectSameTree(const std::string& a, const std::string& b, bool compare_root_meta = true) {
  struct stat sa = Lstat(a), sb = Lstat(b);
  ASSERT_EQ(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT) << a << " vs " << b;
  if (compare_root_meta) {
    EXPECT_EQ(MtimeNs(sa), MtimeNs(sb)) << "mtime of " << b;
    if (!S_ISLNK(sa.st_mode)) {
      EXPECT_EQ(sa.st_mode & 07777, sb.st_mode & 07777) << "mode of " << b;
    }
  }
  if (S_ISREG(sa.st_mode)) {
    ASSERT_EQ(sa.st_size, sb.st_size) << b;
    EXPECT_TRUE(ReadFile(a) == ReadFile(b)) << "content of " << b;
  } else if (S_ISLNK(sa.st_mode)) {
    EXPECT_EQ(fs::read_symlink(a), fs::read_symlink(b)) << b;
  } else if (S_ISDIR(sa.st_mode)) {
    std::set<std::string> na, nb;
    for (const auto& e : fs::directory_iterator(a)) na.insert(e.path().filename().string());
    for (const auto& e : fs::directory_iterator(b)) nb.insert(e.path().filename().string());
    ASSERT_EQ(na, nb) << "entries of " << b;
    for (const auto& n : na) ExpectSameTree(a + "/" + n, b + "/" + n);
  }
}

// Sets modes and mtimes of a finished tree bottom-up (creating entries changes a directory's
// mtime, so directories come last).
void StampTree(const std::string& root, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    paths.push_back(it->path().string());
  }
  std::sort(paths.begin(), paths.end(), [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  paths.push_back(root);
  static const mode_t file_modes[] = {0644, 0600, 0755, 0444, 0640, 0700};
  static const mode_t dir_modes[] = {0755, 0700, 0750, 0775};
  for (const auto& p : paths) {
    struct stat st = Lstat(p);
    if (S_ISREG(st.st_mode)) chmod(p.c_str(), file_modes[rng() % 6]);
    if (S_ISDIR(st.st_mode)) chmod(p.c_str(), dir_modes[rng() % 4]);
    // Nanosecond mtimes, some before the epoch.
    int64_t ns = static_cast<int64_t>(rng() % (2'000'000'000ull * 1'000'000'000ull)) - 100'000'000'000'000'000;
    SetMtime(p, ns);
  }
}

// SequentialFile over a string, returning short reads of random sizes.
class StringSource : public SequentialFile {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    size_t take = std::min({n, data_.size() - pos_, size_t{1} + static_cast<size_t>(rng_() % 200000)});
    std::memcpy(dst, data_.data() + pos_, take);
    pos_ += take;
    *got = take;
    return Status::OK();
  }

 private:
  std::string data_;
  size_t pos_ = 0;
  std::mt19937_64 rng_{7};
};

Result<std::string> ReadAll(Repository* repo, const ObjectId& id, std::string_view path) {
  STRATA_ASSIGN_OR_RETURN(auto reader, repo->OpenFile(id, path));
  std::string out(reader->size(), '\0');
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(reader->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got));
  if (got != out.size()) return Status::Internal("short read");
  return out;
}

// Every regular file below `dir`, relative to it.
std::vector<std::string> FilesBelow(const std::string& dir) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file() && !it->is_symlink()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> PackPaths(const std::string& repo) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(repo + "/packs"); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file()) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

void FlipBit(const std::string& path, uint64_t pos, int bit) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(static_cast<std::streamoff>(pos));
  char c;
  f.read(&c, 1);
  c ^= static_cast<char>(1 << bit);
  f.seekp(static_cast<std::streamoff>(pos));
  f.write(&c, 1);
  ASSERT_TRUE(f);
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// Builds the varied source tree of the round-trip tests under `root` ("data").
void BuildSourceTree(const std::string& root) {
  WriteFile(root + "/empty", "");
  WriteFile(root + "/one", "x");
  WriteFile(root + "/min", RandomBytes(1, kMin));
  WriteFile(root + "/min_minus_1", RandomBytes(2, kMin - 1));
  WriteFile(root + "/avg", RandomBytes(3, kAvg));
  WriteFile(root + "/max", RandomBytes(4, kMax));
  WriteFile(root + "/max_plus_1", RandomBytes(5, kMax + 1));
  WriteFile(root + "/big", RandomBytes(6, 3 * kMax + 12345));
  WriteFile(root + "/text", MixedBytes(7, 700'000));
  // Zeros: content-defined chunking cuts them at max; every chunk is the same.
  WriteFile(root + "/zeros", std::string(2 * kMax + 100, '\0'));
  WriteFile(root + "/copies/big", ReadFile(root + "/big"));
  WriteFile(root + "/copies/text", ReadFile(root + "/text"));
  std::string deep = root + "/deep";
  for (int i = 0; i < 50; ++i) deep += "/d" + std::to_string(i);
  WriteFile(deep + "/leaf.txt", "at the bottom");
  WriteFile(root + "/unicode/donn\xc3\xa9" "es.txt", "accents");
  WriteFile(root + "/unicode/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "nihongo");
  WriteFile(root + "/unicode/emoji-\xf0\x9f\x8e\x89", RandomBytes(8, 5000));
  WriteFile(root + "/unicode/a b\\c\nd", "odd but legal");
  WriteFile(root + "/unicode/...", "three dots");
  fs::create_directories(root + "/emptydir");
  fs::create_directories(root + "/links");
  fs::create_symlink("../one", root + "/links/rel");
  fs::create_symlink("/nonexistent/absolute/target", root + "/links/dangling");
  fs::create_symlink("../deep", root + "/links/to_dir");
  StampTree(root, 99);
}

class RepositoryTest : public ::testing::Test {
 protected:
  std::string repo_dir() const { return dir_ / "repo"; }
  TempDir dir_;
};

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_F(RepositoryTest, PutRestoreRoundTrip) {
  const std::string src = dir_ / "data";
  BuildSourceTree(src);
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);

  PutStats stats;
  auto root = repo->PutPaths({src}, &stats);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(stats.files, FilesBelow(src).size());
  EXPECT_TRUE(stats.skipped.empty());
  // The copies and the repeated zero chunks are stored once.
  EXPECT_LT(stats.new_chunks, stats.chunks);
  uint64_t total = 0;
  for (const auto& f : FilesBelow(src)) total += fs::file_size(src + "/" + f);
  EXPECT_EQ(stats.bytes, total);
  EXPECT_LT(stats.new_bytes, total - fs::file_size(src + "/big"));

  const std::string out = dir_ / "out";
  uint64_t written = 0;
  ASSERT_TRUE(repo->Restore(*root, "", out, &written).ok());
  EXPECT_EQ(written, total);
  ExpectSameTree(src, out + "/data");

  // Restoring one subdirectory and one file.
  ASSERT_TRUE(repo->Restore(*root, "data/unicode", dir_ / "out2").ok());
  ExpectSameTree(src + "/unicode", dir_ / "out2/unicode");
  ASSERT_TRUE(repo->Restore(*root, "data/copies/big", dir_ / "out3").ok());
  ExpectSameTree(src + "/copies/big", dir_ / "out3/big");

  // The same from a fresh open (nothing cached in memory).
  repo.reset();
  repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  ASSERT_TRUE(repo->Restore(*root, "", dir_ / "out4").ok());
  ExpectSameTree(src, dir_ / "out4/data");
  auto report = repo->Verify(true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << Join(report->errors);
  EXPECT_TRUE(report->warnings.empty()) << Join(report->warnings);
  EXPECT_GT(report->objects_checked, 20u);
  // Small packs: the put spread over several.
  auto st = repo->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st->packs, 2u);
  EXPECT_EQ(st->packs, PackPaths(repo_dir()).size());
  EXPECT_EQ(st->logical_bytes, total);
}

TEST_F(RepositoryTest, ChunkBoundariesAndListing) {
  const std::string src = dir_ / "data";
  BuildSourceTree(src);
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto root = repo->PutPaths({src});
  ASSERT_TRUE(root.ok());

  auto list = repo->List(*root, "data", /*recursive=*/true);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::map<std::string, EntryInfo> by_path;
  for (const auto& e : *list) by_path[e.path] = e;
  EXPECT_EQ(by_path.size(), list->size());
  ASSERT_TRUE(by_path.count("empty"));
  EXPECT_EQ(by_path["empty"].chunks, 0u);
  EXPECT_EQ(by_path["empty"].size, 0u);
  EXPECT_EQ(by_path["one"].chunks, 1u);
  EXPECT_EQ(by_path["min"].chunks, 1u);
  EXPECT_EQ(by_path["min_minus_1"].chunks, 1u);
  EXPECT_GE(by_path["max_plus_1"].chunks, 2u);
  EXPECT_GE(by_path["big"].chunks, 4u);  // > 3 * max bytes
  EXPECT_EQ(by_path["zeros"].chunks, 3u);
  EXPECT_EQ(by_path["links/rel"].type, EntryInfo::Type::kSymlink);
  EXPECT_EQ(by_path["links/rel"].target, "../one");
  EXPECT_EQ(by_path["emptydir"].type, EntryInfo::Type::kDirectory);
  EXPECT_TRUE(by_path.count("deep/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21/d22/"
                            "d23/d24/d25/d26/d27/d28/d29/d30/d31/d32/d33/d34/d35/d36/d37/d38/d39/d40/d41/d42/d43/"
                            "d44/d45/d46/d47/d48/d49/leaf.txt"));
  EXPECT_EQ(by_path["unicode/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"].size, 7u);
  struct stat st = Lstat(src + "/text");
  EXPECT_EQ(by_path["text"].mode, st.st_mode & 07777);
  EXPECT_EQ(by_path["text"].mtime_ns, MtimeNs(st));

  // Every chunk is within [min, max], except a file's last, which may be shorter.
  auto* impl = Impl(repo.get());
  ASSERT_NE(impl, nullptr);
  for (const auto& f : FilesBelow(src)) {
    auto e = impl->Lookup(*root, "data/" + f);
    ASSERT_TRUE(e.ok()) << f;
    uint64_t sum = 0;
    for (size_t i = 0; i < e->chunks.size(); ++i) {
      EXPECT_LE(e->chunks[i].size, kMax) << f;
      if (i + 1 < e->chunks.size()) {
        EXPECT_GE(e->chunks[i].size, kMin) << f;
      }
      sum += e->chunks[i].size;
    }
    EXPECT_EQ(sum, fs::file_size(src + "/" + f)) << f;
  }
  // Non-recursive listing, and errors.
  auto top = repo->List(*root, "", false);
  ASSERT_TRUE(top.ok());
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].path, "data");
  EXPECT_EQ(repo->List(*root, "data/nope", false).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->OpenFile(*root, "data/links").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(repo->OpenFile(*root, "data/one/x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->OpenFile(*root, "data/../data/one").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RepositoryTest, DedupAcrossPuts) {
  const std::string src = dir_ / "data";
  BuildSourceTree(src);
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto first = repo->PutPaths({src});
  ASSERT_TRUE(first.ok());
  auto before = repo->Stats();
  ASSERT_TRUE(before.ok());
  size_t packs_before = PackPaths(repo_dir()).size();

  // The same tree again: the same id, nothing new stored.
  PutStats stats;
  auto second = repo->PutPaths({src}, &stats);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_GT(stats.chunks, 0u);
  EXPECT_EQ(stats.new_chunks, 0u);
  EXPECT_EQ(stats.new_bytes, 0u);
  EXPECT_EQ(stats.stored_bytes, 0u);
  EXPECT_EQ(PackPaths(repo_dir()).size(), packs_before);

  // The same content under other names and in another directory: no new data chunks, only
  // new trees.
  const std::string other = dir_ / "other";
  WriteFile(other + "/renamed_big", ReadFile(src + "/big"));
  WriteFile(other + "/sub/renamed_text", ReadFile(src + "/text"));
  auto third = repo->PutPaths({other}, &stats);
  ASSERT_TRUE(third.ok());
  // Only the three trees (root, other, other/sub) are new.
  EXPECT_EQ(stats.dirs, 3u);
  EXPECT_EQ(stats.new_chunks, 3u);
  EXPECT_LT(stats.new_bytes, 4096u);
  auto after = repo->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->data_chunks, before->data_chunks);
  EXPECT_EQ(after->unique_bytes, before->unique_bytes);
  EXPECT_GT(after->trees, before->trees);
  EXPECT_EQ(after->roots, 3u);
  EXPECT_GT(after->dedup_ratio(), 2.0);
  // The dedup also holds in a fresh session (ids come from the stored index).
  repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto fourth = repo->PutPaths({src}, &stats);
  ASSERT_TRUE(fourth.ok());
  EXPECT_EQ(*fourth, *first);
  EXPECT_EQ(stats.new_chunks, 0u);
  auto roots = repo->Roots();
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(roots->size(), 4u);
}

TEST_F(RepositoryTest, RandomAccessReads) {
  const std::string src = dir_ / "data";
  BuildSourceTree(src);
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto root = repo->PutPaths({src});
  ASSERT_TRUE(root.ok());
  std::mt19937_64 rng(5);
  for (const std::string f : {"big", "text", "max_plus_1", "one", "empty", "zeros", "copies/big"}) {
    std::string want = ReadFile(src + "/" + f);
    auto reader = repo->OpenFile(*root, "data/" + f);
    ASSERT_TRUE(reader.ok()) << f << ": " << reader.status().ToString();
    ASSERT_EQ((*reader)->size(), want.size());
    for (int i = 0; i < 150; ++i) {
      uint64_t off = want.empty() ? 0 : rng() % (want.size() + 10);
      size_t n = rng() % 4 == 0 ? rng() % (3 * kMax) : rng() % 5000;
      std::string buf(n, '\x55');
      size_t got = 12345;
      ASSERT_TRUE((*reader)->ReadAt(off, n, reinterpret_cast<uint8_t*>(buf.data()), &got).ok());
      size_t expect = off >= want.size() ? 0 : std::min<uint64_t>(n, want.size() - off);
      ASSERT_EQ(got, expect) << f << " off " << off << " n " << n;
      ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + got, want.begin() + std::min<uint64_t>(off, want.size())))
          << f << " off " << off << " n " << n;
    }
  }
}

TEST_F(RepositoryTest, PutStreamRoundTrip) {
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);
  std::string data = MixedBytes(11, 1'500'000) + RandomBytes(12, 900'000);
  StringSource in(data);
  PutStats stats;
  auto id = repo->PutStream(&in, &stats);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(stats.bytes, data.size());
  auto back = ReadAll(repo.get(), *id, "");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == data);
  EXPECT_EQ(repo->OpenFile(*id, "x").status().code(), StatusCode::kInvalidArgument);
  // A stream id resolves by prefix and is recorded as a stream root.
  auto resolved = repo->ResolveId(id->ToHex().substr(0, 10));
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(*resolved, *id);
  auto roots = repo->Roots();
  ASSERT_TRUE(roots.ok());
  ASSERT_EQ(roots->size(), 1u);
  EXPECT_TRUE((*roots)[0].is_stream);
  EXPECT_EQ((*roots)[0].id, *id);
  EXPECT_EQ((*roots)[0].bytes, data.size());

  // The same stream again adds nothing; an empty stream round trips.
  StringSource again(data);
  auto id2 = repo->PutStream(&again, &stats);
  ASSERT_TRUE(id2.ok());
  EXPECT_EQ(*id2, *id);
  EXPECT_EQ(stats.new_chunks, 0u);
  StringSource empty("");
  auto eid = repo->PutStream(&empty, &stats);
  ASSERT_TRUE(eid.ok());
  auto eback = ReadAll(repo.get(), *eid, "");
  ASSERT_TRUE(eback.ok());
  EXPECT_TRUE(eback->empty());
  // Verify walks stream roots too.
  repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto report = repo->Verify(true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << Join(report->errors);
  back = ReadAll(repo.get(), *id, "");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == data);
}

// ---------------------------------------------------------------------------------------------
// Opening

TEST_F(RepositoryTest, OpenErrors) {
  ASSERT_TRUE(CreateRepo(repo_dir()));
  auto wrong = Repository::Open(repo_dir(), "not the passphrase");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);

  auto missing = Repository::Open(dir_ / "nothing-here", kPass);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  fs::create_directories(dir_ / "empty");
  auto empty = Repository::Open(dir_ / "empty", kPass);
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
  WriteFile(dir_ / "afile", "hello");
  EXPECT_EQ(Repository::Open(dir_ / "afile", kPass).status().code(), StatusCode::kNotFound);
  // Create refuses a non-empty directory.
  EXPECT_EQ(Repository::Create(repo_dir(), kPass, SmallInit()).status().code(), StatusCode::kAlreadyExists);

  const std::string config_path = repo_dir() + "/config";
  const std::string original = ReadFile(config_path);
  auto j = nlohmann::json::parse(original);
  // A newer format is recognised without a key.
  j["version"] = 2;
  WriteFile(config_path, j.dump(2));
  auto newer = Repository::Open(repo_dir(), kPass);
  EXPECT_EQ(newer.status().code(), StatusCode::kUnsupported) << newer.status().ToString();
  // An edit by someone without the key fails the MAC.
  j = nlohmann::json::parse(original);
  j["compression"]["level"] = 19;
  WriteFile(config_path, j.dump(2));
  auto edited = Repository::Open(repo_dir(), kPass);
  EXPECT_EQ(edited.status().code(), StatusCode::kCorruption) << edited.status().ToString();
  j = nlohmann::json::parse(original);
  j["pack_size"] = 2 << 20;
  WriteFile(config_path, j.dump());
  EXPECT_EQ(Repository::Open(repo_dir(), kPass).status().code(), StatusCode::kCorruption);
  WriteFile(config_path, "{ not json");
  EXPECT_EQ(Repository::Open(repo_dir(), kPass).status().code(), StatusCode::kCorruption);
  // Reformatted but equal: still opens.
  WriteFile(config_path, nlohmann::json::parse(original).dump());
  EXPECT_TRUE(OpenRepo(repo_dir()));
  // Without key slots nothing opens.
  for (const auto& k : FilesIn(repo_dir() + "/keys")) fs::remove(k);
  EXPECT_FALSE(Repository::Open(repo_dir(), kPass).ok());
}

TEST_F(RepositoryTest, CreateRejectsBadOptions) {
  InitOptions o = SmallInit();
  o.chunk_avg = 60000;  // not a power of two
  EXPECT_FALSE(Repository::Create(dir_ / "a", kPass, o).ok());
  o = SmallInit();
  o.compression_level = 23;
  EXPECT_FALSE(Repository::Create(dir_ / "b", kPass, o).ok());
  o = SmallInit();
  o.pack_size = 1000;
  EXPECT_FALSE(Repository::Create(dir_ / "c", kPass, o).ok());
  EXPECT_FALSE(Repository::Create(dir_ / "d", "", SmallInit()).ok());
}

TEST_F(RepositoryTest, KeySlots) {
  const std::string src = dir_ / "data";
  WriteFile(src + "/f", RandomBytes(1, 100000));
  auto repo = CreateRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto root = repo->PutPaths({src});
  ASSERT_TRUE(root.ok());
  auto keys = repo->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_TRUE((*keys)[0].current);
  EXPECT_EQ((*keys)[0].label, "test");
  const std::string first_id = (*keys)[0].id;

  // The last slot cannot go, even when asked to allow the current one.
  EXPECT_EQ(repo->RemoveKey(first_id, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(repo->RemoveKey("0000000000000000").code(), StatusCode::kNotFound);
  EXPECT_FALSE(repo->AddKey("", "empty").ok());

  auto second_id = repo->AddKey("second passphrase", "laptop");
  ASSERT_TRUE(second_id.ok()) << second_id.status().ToString();
  EXPECT_NE(*second_id, first_id);
  keys = repo->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);

  // Both passphrases open the repository and read the same data.
  auto via_second = OpenRepo(repo_dir(), Threads(1), "second passphrase");
  ASSERT_TRUE(via_second);
  auto data = ReadAll(via_second.get(), *root, "data/f");
  ASSERT_TRUE(data.ok());
  EXPECT_TRUE(*data == ReadFile(src + "/f"));
  keys = via_second->ListKeys();
  ASSERT_TRUE(keys.ok());
  for (const auto& k : *keys) EXPECT_EQ(k.current, k.id == *second_id) << k.id;

  // The current slot is protected unless explicitly allowed.
  EXPECT_EQ(via_second->RemoveKey(*second_id).code(), StatusCode::kFailedPrecondition);

  // Changing the passphrase rewrites only the current slot.
  ASSERT_TRUE(via_second->ChangePassphrase("third passphrase").ok());
  EXPECT_EQ(Repository::Open(repo_dir(), "second passphrase").status().code(), StatusCode::kUnauthenticated);
  auto via_third = OpenRepo(repo_dir(), Threads(1), "third passphrase");
  ASSERT_TRUE(via_third);
  EXPECT_TRUE(OpenRepo(repo_dir(), Threads(1), kPass));
  keys = via_third->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  std::string third_id;
  for (const auto& k : *keys) {
    if (k.current) third_id = k.id;
    EXPECT_NE(k.id, *second_id);  // the old slot is gone
  }
  ASSERT_FALSE(third_id.empty());
  EXPECT_EQ(FilesIn(repo_dir() + "/keys").size(), 2u);

  // Removing the first slot (not current here) works; then the first passphrase is rejected
  // and the remaining slot, now the last, cannot be removed.
  ASSERT_TRUE(via_third->RemoveKey(first_id).ok());
  EXPECT_EQ(Repository::Open(repo_dir(), kPass).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(via_third->RemoveKey(third_id, true).code(), StatusCode::kFailedPrecondition);
  auto last = OpenRepo(repo_dir(), Threads(1), "third passphrase");
  ASSERT_TRUE(last);
  data = ReadAll(last.get(), *root, "data/f");
  ASSERT_TRUE(data.ok());
  EXPECT_TRUE(*data == ReadFile(src + "/f"));
}

// ---------------------------------------------------------------------------------------------
// Damage

TEST_F(RepositoryTest, EveryBitFlipInAPackIsDetected) {
  const std::string src = dir_ / "data";
  WriteFile(src + "/random", RandomBytes(21, 600'000));
  WriteFile(src + "/text", MixedBytes(22, 500'000));
  WriteFile(src + "/small", "tiny file");
  WriteFile(src + "/sub/more", MixedBytes(23, 100'000));
  auto repo = CreateRepo(repo_dir(), Threads(1));
  ASSERT_TRUE(repo);
  auto root = repo->PutPaths({src});
  ASSERT_TRUE(root.ok());
  const std::vector<std::string> files = FilesBelow(src);
  std::map<std::string, std::string> want;
  for (const auto& f : files) want[f] = ReadFile(src + "/" + f);

  // The pack with the most objects: it holds data chunks and, with one thread, the trees.
  auto* impl = Impl(repo.get());
  auto listings = impl->index_.Packs();
  ASSERT_FALSE(listings.empty());
  auto target = *std::max_element(listings.begin(), listings.end(), [](const auto& a, const auto& b) {
    return a.entries.size() < b.entries.size();
  });
  ASSERT_GE(target.entries.size(), 5u);
  const std::string pack_path = repo_dir() + "/packs/" + target.pack.substr(0, 2) + "/" + target.pack;
  const uint64_t size = fs::file_size(pack_path);
  const uint64_t data_end = target.entries.back().offset + target.entries.back().stored_size;

  std::set<uint64_t> positions;
  for (uint64_t i = 0; i < 16; ++i) positions.insert(i);                // header
  for (uint64_t i = size - 16; i < size; ++i) positions.insert(i);      // trailer
  for (uint64_t i = 0; i < 200; ++i) positions.insert(i * size / 200 + (i * 7919) % 97 % (size / 200));
  for (const auto& e : target.entries) {                                 // each object's ends
    positions.insert(e.offset);
    positions.insert(e.offset + e.stored_size - 1);
  }
  positions.insert(data_end);             // first and last byte of the sealed index
  positions.insert(size - 17);
  positions.erase(positions.upper_bound(size - 1), positions.end());

  std::mt19937_64 rng(3);
  int in_objects = 0;
  for (uint64_t pos : positions) {
    SCOPED_TRACE("flipped byte " + std::to_string(pos) + " of " + std::to_string(size));
    const int bit = static_cast<int>(rng() % 8);
    FlipBit(pack_path, pos, bit);
    const bool in_object = pos >= store::kPackHeaderSize && pos < data_end;
    auto report = repo->Verify(/*read_data=*/true);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_FALSE(report->ok());
    bool names_pack = false;
    for (const auto& e : report->errors) names_pack |= e.find(target.pack) != std::string::npos;
    EXPECT_TRUE(names_pack) << Join(report->errors);
    if (!in_object) {
      // Header, index and trailer are checked even without reading the data.
      auto quick = repo->Verify(false);
      ASSERT_TRUE(quick.ok());
      EXPECT_FALSE(quick->ok());
    } else {
      ++in_objects;
      // Reads never return wrong bytes, and the damaged object makes some read fail.
      bool any_error = false;
      for (const auto& f : files) {
        auto got = ReadAll(repo.get(), *root, "data/" + f);
        if (!got.ok()) {
          any_error = true;
          EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << got.status().ToString();
        } else {
          EXPECT_TRUE(*got == want[f]) << "wrong bytes returned for " << f;
        }
      }
      EXPECT_TRUE(any_error) << "damage inside an object went unnoticed by reads";
    }
    FlipBit(pack_path, pos, bit);  // restore
  }
  EXPECT_GT(in_objects, 150);
  // Restored: clean again.
  auto report = repo->Verify(true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << Join(report->errors);
}


// A repository with one put of a small tree, for the damage tests below.
class DamageTest : public RepositoryTest {
 protected:
  void SetUp() override {
    src_ = dir_ / "data";
    WriteFile(src_ + "/a", RandomBytes(31, 900'000));
    WriteFile(src_ + "/b", MixedBytes(32, 800'000));
    WriteFile(src_ + "/c/d", RandomBytes(33, 300'000));
    auto repo = CreateRepo(repo_dir());
    ASSERT_TRUE(repo);
    auto root = repo->PutPaths({src_});
    ASSERT_TRUE(root.ok());
    root_ = *root;
    ASSERT_GE(PackPaths(repo_dir()).size(), 2u);
  }

  // Reads every file through `repo`; true if all read back identical.
  ::testing::AssertionResult AllFilesReadBack(Repository* repo) {
    for (const auto& f : FilesBelow(src_)) {
      auto got = ReadAll(repo, root_, "data/" + f);
      if (!got.ok()) return ::testing::AssertionFailure() << f << ": " << got.status().ToString();
      if (*got != ReadFile(src_ + "/" + f)) return ::testing::AssertionFailure() << f << ": wrong bytes";
    }
    return ::testing::AssertionSuccess();
  }

  std::string src_;
  ObjectId root_;
};

TEST_F(DamageTest, MissingPackIsNamed) {
  const std::string victim = PackPaths(repo_dir())[0];
  const std::string name = fs::path(victim).filename().string();
  fs::remove(victim);
  auto repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto report = repo->Verify(false);
  ASSERT_TRUE(report.ok());
  ASSERT_FALSE(report->ok());
  bool named = false;
  for (const auto& e : report->errors) named |= e.find(name) != std::string::npos && e.find("missing") != std::string::npos;
  EXPECT_TRUE(named) << Join(report->errors);
  EXPECT_FALSE(AllFilesReadBack(repo.get()));
  // Restore fails rather than writing a partial tree silently.
  EXPECT_FALSE(repo->Restore(root_, "", dir_ / "out").ok());
}

TEST_F(DamageTest, TruncatedPackIsReported) {
  // A pack of file data, larger than every cut: cutting a small pack (trees) to 100,000 bytes
  // would only remove its trailer, and its objects would still read back through the index.
  std::vector<std::string> packs = PackPaths(repo_dir());
  const std::string victim = *std::max_element(packs.begin(), packs.end(), [](const auto& a, const auto& b) {
    return fs::file_size(a) < fs::file_size(b);
  });
  ASSERT_GT(fs::file_size(victim), 100'000u);
  for (uint64_t keep : {uint64_t{0}, uint64_t{10}, uint64_t{100'000}}) {
    SCOPED_TRACE("kept " + std::to_string(keep));
    const std::string saved = ReadFile(victim);
    const std::string name = fs::path(victim).filename().string();
    fs::resize_file(victim, std::min<uint64_t>(keep, saved.size() - 1));
    auto repo = OpenRepo(repo_dir());
    ASSERT_TRUE(repo);
    for (bool read_data : {false, true}) {
      auto report = repo->Verify(read_data);
      ASSERT_TRUE(report.ok());
      ASSERT_FALSE(report->ok());
      bool named = false;
      for (const auto& e : report->errors) named |= e.find(name) != std::string::npos;
      EXPECT_TRUE(named) << Join(report->errors);
    }
    EXPECT_FALSE(AllFilesReadBack(repo.get()));
    // Cutting only the trailer's last byte is caught too.
    WriteFile(victim, saved.substr(0, saved.size() - 1));
    auto report = repo->Verify(false);
    ASSERT_TRUE(report.ok());
    EXPECT_FALSE(report->ok());
    WriteFile(victim, saved);
    report = repo->Verify(true);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->ok()) << Join(report->errors);
  }
}

TEST_F(DamageTest, DeletedIndexIsRebuiltByRepair) {
  for (const auto& f : FilesIn(repo_dir() + "/index")) fs::remove(f);
  auto repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  EXPECT_EQ(repo->OpenFile(root_, "data/a").status().code(), StatusCode::kNotFound);
  auto report = repo->Verify(false);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok());  // the root's trees are not indexed
  EXPECT_EQ(report->warnings.size(), PackPaths(repo_dir()).size()) << Join(report->warnings);

  auto repaired = repo->RepairIndex();
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_TRUE(repaired->ok()) << Join(repaired->errors);
  EXPECT_EQ(repaired->packs_checked, PackPaths(repo_dir()).size());
  EXPECT_EQ(FilesIn(repo_dir() + "/index").size(), 1u);
  EXPECT_TRUE(AllFilesReadBack(repo.get()));
  // Durable: a fresh open sees it.
  repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  EXPECT_TRUE(AllFilesReadBack(repo.get()));
  report = repo->Verify(true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << Join(report->errors);
  EXPECT_TRUE(report->warnings.empty()) << Join(report->warnings);
}

TEST_F(DamageTest, CorruptedIndexFailsOpenWithAdvice) {
  auto index_files = FilesIn(repo_dir() + "/index");
  ASSERT_EQ(index_files.size(), 1u);
  FlipBit(index_files[0], fs::file_size(index_files[0]) / 2, 3);
  auto failed = Repository::Open(repo_dir(), kPass);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kCorruption);
  EXPECT_NE(failed.status().message().find("strata repair index"), std::string::npos) << failed.status().ToString();

  fs::remove(index_files[0]);
  auto repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto repaired = repo->RepairIndex();
  ASSERT_TRUE(repaired.ok());
  EXPECT_TRUE(repaired->ok());
  EXPECT_TRUE(AllFilesReadBack(repo.get()));
  repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  EXPECT_TRUE(AllFilesReadBack(repo.get()));
}

TEST_F(DamageTest, RepairSkipsADamagedPackAndSaysSo) {
  for (const auto& f : FilesIn(repo_dir() + "/index")) fs::remove(f);
  const std::string victim = PackPaths(repo_dir())[0];
  fs::resize_file(victim, fs::file_size(victim) - 3);
  auto repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  auto repaired = repo->RepairIndex();
  ASSERT_TRUE(repaired.ok());
  ASSERT_EQ(repaired->errors.size(), 1u);
  EXPECT_NE(repaired->errors[0].find(fs::path(victim).filename().string()), std::string::npos);
}

TEST_F(DamageTest, ReadBitFlipsNeverReturnWrongData) {
  // Bit flips on the read path (a flaky disk or cable) are caught like flips at rest.
  FaultEnv env(Env::Default(), 17);
  auto repo = OpenRepo(repo_dir(), Threads(1, &env));
  ASSERT_TRUE(repo);
  env.SetReadBitFlips(1, "/packs/");
  int errors = 0;
  for (const auto& f : FilesBelow(src_)) {
    auto got = ReadAll(repo.get(), root_, "data/" + f);
    if (got.ok()) {
      EXPECT_TRUE(*got == ReadFile(src_ + "/" + f)) << f;
    } else {
      ++errors;
      EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(env.faults_injected(), 0u);
  env.SetReadBitFlips(0);
  EXPECT_TRUE(AllFilesReadBack(repo.get()));
}

// ---------------------------------------------------------------------------------------------
// Crashes and a full disk

class CrashTest : public RepositoryTest {
 protected:
  void SetUp() override {
    a_ = dir_ / "A";
    WriteFile(a_ + "/one", RandomBytes(41, 200'000));
    WriteFile(a_ + "/two/three", MixedBytes(42, 150'000));
    b_ = dir_ / "B";
    WriteFile(b_ + "/big", RandomBytes(43, 1'300'000));
    WriteFile(b_ + "/text", MixedBytes(44, 300'000));
    WriteFile(b_ + "/dup-of-A", ReadFile(a_ + "/one"));
    template_ = dir_ / "template";
    auto repo = CreateRepo(template_);
    ASSERT_TRUE(repo);
    auto a = repo->PutPaths({a_});
    ASSERT_TRUE(a.ok());
    a_root_ = *a;
  }

  // A fresh copy of the repository holding only A.
  std::string FreshCopy(int n) {
    std::string dir = dir_ / ("repo" + std::to_string(n));
    fs::copy(template_, dir, fs::copy_options::recursive);
    return dir;
  }

  // After a failed or interrupted put of B: the repository verifies, A is intact, and B is
  // either wholly there (a root naming it, every byte restorable) or not at all.
  void CheckConsistent(const std::string& dir, bool b_must_exist) {
    auto repo = OpenRepo(dir);
    ASSERT_TRUE(repo);
    auto report = repo->Verify(true);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok()) << Join(report->errors);
    ASSERT_TRUE(repo->Restore(a_root_, "", dir + "-outA").ok());
    ExpectSameTree(a_, dir + "-outA/A");
    auto roots = repo->Roots();
    ASSERT_TRUE(roots.ok());
    ASSERT_TRUE(roots->size() == 1 || roots->size() == 2) << roots->size();
    // Roots sort by time, and both may fall in the same second.
    std::vector<ObjectId> others;
    for (const auto& r : *roots) {
      if (r.id != a_root_) others.push_back(r.id);
    }
    ASSERT_EQ(others.size() + 1, roots->size()) << "A's root is missing";
    if (b_must_exist) {
      ASSERT_EQ(roots->size(), 2u);
    }
    if (roots->size() == 2) {
      ASSERT_TRUE(repo->Restore(others[0], "", dir + "-outB").ok());
      ExpectSameTree(b_, dir + "-outB/B");
    }
    // Cleanup leaves nothing for verify to warn about, and loses nothing.
    auto removed = repo->CleanLeftovers();
    ASSERT_TRUE(removed.ok()) << removed.status().ToString();
    EXPECT_EQ(*removed, report->warnings.size() + leftover_temps_);
    EXPECT_TRUE(FilesIn(dir + "/tmp").empty());
    report = repo->Verify(true);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->ok()) << Join(report->errors);
    EXPECT_TRUE(report->warnings.empty()) << Join(report->warnings);
    ASSERT_TRUE(repo->Restore(a_root_, "", dir + "-outA2").ok());
    ExpectSameTree(a_, dir + "-outA2/A");
    fs::remove_all(dir);
    fs::remove_all(dir + "-outA");
    fs::remove_all(dir + "-outA2");
    fs::remove_all(dir + "-outB");
  }

  std::string a_, b_, template_;
  ObjectId a_root_;
  size_t leftover_temps_ = 0;
};

TEST_F(CrashTest, CrashAtEveryWriteOfAPut) {
  int crashes = 0, b_survived = 0;
  for (int n = 0;; ++n) {
    SCOPED_TRACE("writes allowed before the fault: " + std::to_string(n));
    ASSERT_LT(n, 1000) << "the put never completed";
    const std::string dir = FreshCopy(n);
    FaultEnv env(Env::Default(), static_cast<uint64_t>(n));
    env.SetTornWrites(n % 2 == 1);
    Result<ObjectId> put = Status::Internal("not run");
    {
      auto repo = OpenRepo(dir, Threads(1, &env));
      ASSERT_TRUE(repo);
      env.FailWritesAfter(n);
      put = repo->PutPaths({b_});
    }
    const bool faulted = env.faults_injected() > 0;
    if (!faulted) {
      ASSERT_TRUE(put.ok()) << put.status().ToString();
    }
    ASSERT_TRUE(env.SimulateCrash().ok());
    // The crashed process is gone, so its lock (which it could not delete) would be stale.
    for (const auto& l : FilesIn(dir + "/locks")) fs::remove(l);
    leftover_temps_ = FilesIn(dir + "/tmp").size();
    CheckConsistent(dir, put.ok());
    if (HasFatalFailure()) return;
    if (put.ok()) ++b_survived;
    if (!faulted) break;
    ++crashes;
  }
  // The loop covered the whole put: lock, pack appends, syncs, renames, index, root.
  EXPECT_GT(crashes, 30);
  EXPECT_GE(b_survived, 1);
}

TEST_F(CrashTest, CrashAtEveryWriteOfAStream) {
  const std::string data = ReadFile(b_ + "/big");
  for (int n = 0;; n += 3) {
    SCOPED_TRACE("writes allowed before the fault: " + std::to_string(n));
    ASSERT_LT(n, 1000);
    const std::string dir = FreshCopy(n);
    FaultEnv env(Env::Default(), static_cast<uint64_t>(n));
    Result<ObjectId> put = Status::Internal("not run");
    {
      auto repo = OpenRepo(dir, Threads(2, &env));
      ASSERT_TRUE(repo);
      env.FailWritesAfter(n);
      StringSource in(data);
      put = repo->PutStream(&in);
    }
    const bool faulted = env.faults_injected() > 0;
    ASSERT_TRUE(env.SimulateCrash().ok());
    for (const auto& l : FilesIn(dir + "/locks")) fs::remove(l);
    auto repo = OpenRepo(dir);
    ASSERT_TRUE(repo);
    auto report = repo->Verify(true);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->ok()) << Join(report->errors);
    auto roots = repo->Roots();
    ASSERT_TRUE(roots.ok());
    if (put.ok()) {
      ASSERT_EQ(roots->size(), 2u);
    }
    if (roots->size() == 2) {
      auto back = ReadAll(repo.get(), (*roots)[0].is_stream ? (*roots)[0].id : (*roots)[1].id, "");
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_TRUE(*back == data);
    }
    ASSERT_TRUE(repo->CleanLeftovers().ok());
    report = repo->Verify(false);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->ok() && report->warnings.empty()) << Join(report->errors) << Join(report->warnings);
    repo.reset();
    fs::remove_all(dir);
    if (!faulted) break;
  }
}

TEST_F(CrashTest, FullDiskFailsCleanly) {
  int n = 0;
  for (int64_t limit : {int64_t{0}, int64_t{50}, int64_t{4096}, int64_t{300'000}, int64_t{900'000},
                        int64_t{1'200'000}}) {
    SCOPED_TRACE("space left: " + std::to_string(limit));
    const std::string dir = FreshCopy(100 + n++);
    FaultEnv env(Env::Default(), static_cast<uint64_t>(limit));
    env.SetTornWrites(n % 2 == 0);
    auto repo = OpenRepo(dir, Threads(2, &env));
    ASSERT_TRUE(repo);
    env.SetSpaceLimit(limit);
    auto put = repo->PutPaths({b_});
    ASSERT_FALSE(put.ok());
    EXPECT_EQ(put.status().code(), StatusCode::kNoSpace) << put.status().ToString();
    // The same session recovers once space is freed: nothing from the failed put is assumed
    // stored.
    env.SetSpaceLimit(-1);
    auto again = repo->PutPaths({b_});
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    repo.reset();
    leftover_temps_ = FilesIn(dir + "/tmp").size();
    EXPECT_EQ(leftover_temps_, 0u);  // the failed writers removed their temporaries
    CheckConsistent(dir, /*b_must_exist=*/true);
    if (HasFatalFailure()) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Locks

std::string LockJson(const std::string& host, int64_t pid, bool exclusive, int64_t expires) {
  return nlohmann::json{{"host", host}, {"pid", pid}, {"exclusive", exclusive}, {"created", 1}, {"expires", expires}}.dump();
}

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

int64_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status;
  waitpid(pid, &status, 0);
  return pid;
}

TEST_F(RepositoryTest, LocksConflictAndStaleOnesAreRemoved) {
  ASSERT_TRUE(CreateRepo(repo_dir()));
  auto backend = volume::OpenLocalBackend(Env::Default(), repo_dir());
  ASSERT_TRUE(backend.ok());
  volume::Backend* b = backend->get();
  {
    auto shared1 = store::RepositoryLock::Acquire(b, false);
    ASSERT_TRUE(shared1.ok());
    auto shared2 = store::RepositoryLock::Acquire(b, false);
    ASSERT_TRUE(shared2.ok()) << "shared locks must coexist";
    auto excl = store::RepositoryLock::Acquire(b, true);
    ASSERT_FALSE(excl.ok());
    EXPECT_EQ(excl.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(excl.status().message().find(std::to_string(getpid())), std::string::npos) << excl.status().ToString();
    EXPECT_EQ(FilesIn(repo_dir() + "/locks").size(), 2u);  // the failed attempt withdrew its lock
  }
  EXPECT_TRUE(FilesIn(repo_dir() + "/locks").empty());  // released on destruction
  {
    auto excl = store::RepositoryLock::Acquire(b, true);
    ASSERT_TRUE(excl.ok());
    EXPECT_EQ(store::RepositoryLock::Acquire(b, false).status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(store::RepositoryLock::Acquire(b, true).status().code(), StatusCode::kFailedPrecondition);
  }

  // Stale: a dead process on this host; an expired lease elsewhere; unparseable.
  const int64_t now = time(nullptr);
  WriteFile(repo_dir() + "/locks/deadpid", LockJson(Hostname(), DeadPid(), true, now + 1000));
  WriteFile(repo_dir() + "/locks/expired", LockJson("some-other-host", 1, true, now - 10));
  WriteFile(repo_dir() + "/locks/garbage", "{\"host\": 5");
  {
    auto excl = store::RepositoryLock::Acquire(b, true);
    ASSERT_TRUE(excl.ok()) << excl.status().ToString();
    EXPECT_EQ(FilesIn(repo_dir() + "/locks").size(), 1u);
  }
  EXPECT_TRUE(FilesIn(repo_dir() + "/locks").empty());

  // Live: another host's unexpired lock, and a live process here, block an exclusive lock and
  // are left alone.
  WriteFile(repo_dir() + "/locks/remote", LockJson("some-other-host", 1, false, now + 1000));
  auto excl = store::RepositoryLock::Acquire(b, true);
  EXPECT_EQ(excl.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(repo_dir() + "/locks/remote"));
  fs::remove(repo_dir() + "/locks/remote");
  WriteFile(repo_dir() + "/locks/alive", LockJson(Hostname(), getppid(), true, now + 1000));
  // A put (shared) is refused while someone holds the repository exclusively.
  auto repo = OpenRepo(repo_dir());
  ASSERT_TRUE(repo);
  WriteFile(dir_ / "data/f", "x");
  auto put = repo->PutPaths({dir_ / "data"});
  EXPECT_EQ(put.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(repo->CleanLeftovers().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(repo_dir() + "/locks/alive"));
  fs::remove(repo_dir() + "/locks/alive");
  EXPECT_TRUE(repo->PutPaths({dir_ / "data"}).ok());
}

TEST(LockParseTest, MalformedLocksAreErrors) {
  EXPECT_TRUE(store::RepositoryLock::ParseLock(LockJson("h", 1, true, 5)).ok());
  for (const std::string bad : {"", "[]", "{}", "{\"host\":1,\"pid\":1,\"exclusive\":true,\"expires\":1}",
                                "{\"host\":\"h\",\"pid\":1.5,\"exclusive\":true,\"expires\":1}",
                                "{\"host\":\"h\",\"pid\":1,\"exclusive\":1,\"expires\":1}",
                                "{\"host\":\"h\",\"pid\":1,\"exclusive\":true}"}) {
    EXPECT_FALSE(store::RepositoryLock::ParseLock(bad).ok()) << bad;
  }
  // An odd optional field does not throw.
  auto odd = store::RepositoryLock::ParseLock(
      "{\"host\":\"h\",\"pid\":1,\"exclusive\":true,\"expires\":1,\"created\":\"yesterday\"}");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->created_unix, 0);
  auto l = store::RepositoryLock::ParseLock(LockJson("h", 1, false, 100));
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(store::RepositoryLock::IsStale(*l, 101));
  EXPECT_FALSE(store::RepositoryLock::IsStale(*l, 99));
}

}  // namespace
}  // namespace strata
