// The local index cache (store/index_cache.h) and unlocked keys (store/key_cache.h): the cache
// is a hint that must never crash an open or return wrong data, however it is damaged or stale.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/endian.h"
#include "store/index_cache.h"
#include "store/key_cache.h"
#include "store/object_store.h"
#include "store/repository_impl.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::TempDir;
using strata::testing::WriteFile;

constexpr char kPass[] = "pw";

OpenOptions Options(uint64_t fold = 1) {
  OpenOptions o;
  o.threads = 1;
  o.index_cache_fold_entries = fold;  // write the cache at once (tests have few objects)
  return o;
}

std::unique_ptr<Repository> Open(const std::string& dir, uint64_t fold = 1) {
  auto r = Repository::Open(dir, kPass, Options(fold));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::string CachePath(const std::string& repo) { return repo + "/catalog/index.cache"; }

class IndexCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_ / "repo";
    ASSERT_TRUE(Repository::Create(repo_, kPass, strata::testing::FastInitOptions(), Options()).ok());
  }
  // Puts `n` files of distinct content; returns the root.
  ObjectId Put(Repository* repo, int n, uint64_t seed) {
    std::string src = dir_ / ("src" + std::to_string(seed));
    for (int i = 0; i < n; ++i) WriteFile(src + "/f" + std::to_string(i), RandomBytes(seed * 1000 + i, 3000 + i));
    auto root = repo->PutPaths({src});
    EXPECT_TRUE(root.ok()) << root.status().ToString();
    return *root;
  }
  void ExpectReadable(Repository* repo, const ObjectId& root, int n, uint64_t seed) {
    for (int i = 0; i < n; ++i) {
      std::string path = "src" + std::to_string(seed) + "/f" + std::to_string(i);
      auto r = repo->OpenFile(root, path);
      ASSERT_TRUE(r.ok()) << path << ": " << r.status().ToString();
      std::string got((*r)->size(), '\0');
      size_t n_read = 0;
      ASSERT_TRUE((*r)->ReadAt(0, got.size(), reinterpret_cast<uint8_t*>(got.data()), &n_read).ok());
      EXPECT_EQ(got, RandomBytes(seed * 1000 + i, 3000 + i)) << path;
    }
  }
  TempDir dir_;
  std::string repo_;
};

TEST_F(IndexCacheTest, WrittenAtOpenAndUsed) {
  ObjectId root;
  {
    auto repo = Open(repo_);
    root = Put(repo.get(), 20, 1);
  }
  EXPECT_FALSE(fs::exists(CachePath(repo_)));  // puts add to memory; opens write the cache
  {
    auto repo = Open(repo_);
    ASSERT_TRUE(fs::exists(CachePath(repo_)));
    auto* impl = dynamic_cast<store::RepositoryImpl*>(repo.get());
    ASSERT_NE(impl->index_.base(), nullptr);
    EXPECT_EQ(impl->index_.delta_size(), 0u);
    ExpectReadable(repo.get(), root, 20, 1);
  }
  auto cache = store::IndexCache::Open(Env::Default(), CachePath(repo_));
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  EXPECT_FALSE((*cache)->index_files().empty());
  EXPECT_GE((*cache)->size(), 21u);  // 20 chunks and at least one tree
}

TEST_F(IndexCacheTest, NewIndexFilesLoadOnTopAndFold) {
  ObjectId a, b;
  {
    auto repo = Open(repo_);
    a = Put(repo.get(), 5, 1);
  }
  { auto repo = Open(repo_); }  // writes the cache
  {
    // Another writer adds an index file the cache does not cover; with folding off it stays
    // in the delta.
    auto repo = Open(repo_, /*fold=*/0);
    b = Put(repo.get(), 5, 2);
  }
  {
    auto repo = Open(repo_, /*fold=*/0);
    auto* impl = dynamic_cast<store::RepositoryImpl*>(repo.get());
    EXPECT_GT(impl->index_.delta_size(), 0u);
    ExpectReadable(repo.get(), a, 5, 1);
    ExpectReadable(repo.get(), b, 5, 2);
  }
  {
    auto repo = Open(repo_);
    auto* impl = dynamic_cast<store::RepositoryImpl*>(repo.get());
    EXPECT_EQ(impl->index_.delta_size(), 0u);
    ExpectReadable(repo.get(), a, 5, 1);
    ExpectReadable(repo.get(), b, 5, 2);
  }
}

TEST_F(IndexCacheTest, ConcurrentWritersAddingIndexFiles) {
  ObjectId base;
  {
    auto repo = Open(repo_);
    base = Put(repo.get(), 3, 1);
  }
  // Writers and openers in parallel threads, each with its own repository handle: every open
  // may rewrite the cache while others add index files or read it.
  std::vector<std::thread> threads;
  std::vector<ObjectId> roots(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto repo = Open(repo_);
      if (!repo) return;
      roots[t] = Put(repo.get(), 4, 10 + t);
      for (int i = 0; i < 3; ++i) Open(repo_);
    });
  }
  for (auto& t : threads) t.join();
  auto repo = Open(repo_);
  ExpectReadable(repo.get(), base, 3, 1);
  for (int t = 0; t < 4; ++t) ExpectReadable(repo.get(), roots[t], 4, 10 + t);
}

// Every put writes an index file; an open that finds kIndexCacheFoldFiles of them outside the
// cache rewrites them as one and deletes them (under a shared lock), while other threads put,
// open and read.
TEST_F(IndexCacheTest, ManySmallIndexFilesAreCompacted) {
  constexpr uint64_t kFoldByFilesOnly = uint64_t{1} << 40;
  constexpr int kThreads = 4, kPutsEach = 15;
  std::vector<std::thread> threads;
  std::vector<std::vector<ObjectId>> roots(kThreads, std::vector<ObjectId>(kPutsEach));
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPutsEach; ++i) {
        auto repo = Open(repo_, kFoldByFilesOnly);
        if (!repo) return;
        roots[t][i] = Put(repo.get(), 1, 100 * (t + 1) + i);
        if (i > 0) ExpectReadable(repo.get(), roots[t][i - 1], 1, 100 * (t + 1) + i - 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto repo = Open(repo_, kFoldByFilesOnly);
  ASSERT_TRUE(repo);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPutsEach; ++i) ExpectReadable(repo.get(), roots[t][i], 1, 100 * (t + 1) + i);
  }
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(repo_ + "/index")) files += e.is_regular_file();
  EXPECT_LT(files, static_cast<size_t>(kThreads * kPutsEach) - store::kIndexCacheFoldFiles + 8);
  // Racing folds may leave a cache naming compacted files (stale: the open above read the
  // index files instead); the next open that folds writes one naming only files that exist.
  ASSERT_TRUE(Open(repo_, /*fold=*/1));
  auto cache = store::IndexCache::Open(Env::Default(), CachePath(repo_));
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  for (const auto& f : (*cache)->index_files()) EXPECT_TRUE(fs::exists(repo_ + "/index/" + f)) << f;
  // gc reads what the compacted files list (every put's root keeps its data).
  store::GcOptions o;
  o.grace_seconds = 0;
  auto report = repo->objects()->CollectGarbage(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  repo = Open(repo_, kFoldByFilesOnly);
  ASSERT_TRUE(repo);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPutsEach; ++i) ExpectReadable(repo.get(), roots[t][i], 1, 100 * (t + 1) + i);
  }
}

TEST_F(IndexCacheTest, StaleAfterGcIsRebuilt) {
  ObjectId keep, drop;
  {
    auto repo = Open(repo_);
    keep = Put(repo.get(), 5, 1);
    drop = Put(repo.get(), 5, 2);
    auto roots = repo->Roots();
    ASSERT_TRUE(roots.ok());
    for (const auto& r : *roots) {
      if (r.id == drop) fs::remove(repo_ + "/roots/" + r.name);
    }
  }
  { auto repo = Open(repo_); }
  auto before = store::IndexCache::Open(Env::Default(), CachePath(repo_));
  ASSERT_TRUE(before.ok());
  {
    auto repo = Open(repo_);
    store::GcOptions o;
    o.grace_seconds = 0;
    auto report = repo->objects()->CollectGarbage(o);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_GT(report->packs_deleted + report->packs_repacked, 0u);
    ExpectReadable(repo.get(), keep, 5, 1);
  }
  // The old cache names index files gc deleted: it is stale, and the open rebuilds it.
  for (const auto& f : (*before)->index_files()) EXPECT_FALSE(fs::exists(repo_ + "/index/" + f)) << f;
  {
    auto repo = Open(repo_);
    ExpectReadable(repo.get(), keep, 5, 1);
    EXPECT_FALSE(repo->OpenFile(drop, "src2/f0").ok());
    auto after = store::IndexCache::Open(Env::Default(), CachePath(repo_));
    ASSERT_TRUE(after.ok());
    for (const auto& f : (*after)->index_files()) EXPECT_TRUE(fs::exists(repo_ + "/index/" + f)) << f;
  }
}

// Damage of every kind: truncation at many points, flipped bytes everywhere (the entries are
// not checksummed: a wrong location must fail authentication and rebuild), garbage, empty.
TEST_F(IndexCacheTest, DamagedCacheNeverCrashesOrLies) {
  ObjectId root;
  {
    auto repo = Open(repo_);
    root = Put(repo.get(), 8, 1);
  }
  { auto repo = Open(repo_); }
  std::string good = strata::testing::ReadFile(CachePath(repo_));
  ASSERT_GT(good.size(), 100u);
  std::vector<std::string> variants = {"", "garbage", good.substr(0, good.size() / 2), good.substr(0, good.size() - 1)};
  for (size_t pos = 0; pos < good.size(); pos += std::max<size_t>(1, good.size() / 97)) {
    std::string v = good;
    v[pos] ^= 0x5a;
    variants.push_back(v);
  }
  // Entries whose offsets point at another object of the same pack: plausible, wrong.
  for (size_t i = 0; i < variants.size(); ++i) {
    WriteFile(CachePath(repo_), variants[i]);
    auto repo = Repository::Open(repo_, kPass, Options(/*fold=*/0));
    ASSERT_TRUE(repo.ok()) << "variant " << i << ": " << repo.status().ToString();
    ExpectReadable(repo->get(), root, 8, 1);
  }
}

TEST_F(IndexCacheTest, WrongLocationsRebuildFromIndexFiles) {
  ObjectId root;
  {
    auto repo = Open(repo_);
    root = Put(repo.get(), 8, 1);
  }
  { auto repo = Open(repo_); }
  std::string bytes = strata::testing::ReadFile(CachePath(repo_));
  auto cache = store::IndexCache::Parse(AsBytes(bytes));
  ASSERT_TRUE(cache.ok());
  // Swap the offsets of the first two entries (same layout, valid fields, wrong places).
  auto e0 = (*cache)->At(0);
  auto e1 = (*cache)->At(1);
  ASSERT_TRUE(e0 && e1);
  size_t entries = bytes.size() - store::kIndexCacheTrailerSize - store::kIndexCacheFanoutSize -
                   (*cache)->size() * store::kIndexCacheEntrySize;
  std::string off0 = bytes.substr(entries + 40, 16), off1 = bytes.substr(entries + 56 + 40, 16);
  bytes.replace(entries + 40, 16, off1);
  bytes.replace(entries + 56 + 40, 16, off0);
  WriteFile(CachePath(repo_), bytes);
  auto repo = Repository::Open(repo_, kPass, Options(/*fold=*/0));
  ASSERT_TRUE(repo.ok());
  ExpectReadable(repo->get(), root, 8, 1);
  EXPECT_NE(strata::testing::ReadFile(CachePath(repo_)), bytes);  // replaced by a rebuilt one
}

TEST(IndexCacheFormat, RoundTripAndMerge) {
  TempDir dir;
  std::string path = dir / "c";
  auto entry = [](uint8_t first, uint8_t second, uint64_t offset) {
    store::PackEntry e;
    e.id.bytes[0] = first;
    e.id.bytes[1] = second;
    e.kind = store::ObjectKind::kTree;
    e.offset = offset;
    e.stored_size = 100;
    e.raw_size = 50;
    return e;
  };
  std::vector<store::PackListing> l1 = {{"p1", {entry(9, 1, 16), entry(3, 1, 116)}}, {"p2", {entry(3, 1, 16)}}};
  ASSERT_TRUE(store::WriteIndexCache(Env::Default(), path, nullptr, l1, {"i1"}).ok());
  auto c1 = store::IndexCache::Open(Env::Default(), path);
  ASSERT_TRUE(c1.ok()) << c1.status().ToString();
  EXPECT_EQ((*c1)->size(), 2u);  // the duplicate id keeps its first copy
  auto pos = (*c1)->Find(entry(3, 1, 0).id);
  ASSERT_TRUE(pos);
  EXPECT_EQ((*c1)->packs()[(*c1)->At(*pos)->first], "p1");
  EXPECT_EQ((*c1)->At(*pos)->second.offset, 116u);
  std::vector<store::PackListing> l2 = {{"p3", {entry(3, 1, 16), entry(200, 0, 16)}}};
  ASSERT_TRUE(store::WriteIndexCache(Env::Default(), path + "2", c1->get(), l2, {"i1", "i2"}).ok());
  auto c2 = store::IndexCache::Open(Env::Default(), path + "2");
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ((*c2)->size(), 3u);
  EXPECT_EQ((*c2)->packs().size(), 3u);
  EXPECT_EQ((*c2)->packs()[(*c2)->At(*(*c2)->Find(entry(3, 1, 0).id))->first], "p1");  // the base wins
  EXPECT_EQ((*c2)->index_files(), (std::vector<std::string>{"i1", "i2"}));
  EXPECT_FALSE((*c2)->Find(entry(4, 1, 0).id));
}

TEST(IndexCacheFormat, KWayMergeOfRuns) {
  TempDir dir;
  auto entry = [](uint32_t n, uint64_t offset) {
    store::PackEntry e;
    e.id.bytes[0] = static_cast<uint8_t>(n * 37);
    e.id.bytes[1] = static_cast<uint8_t>(n);
    e.id.bytes[2] = static_cast<uint8_t>(n >> 8);
    e.kind = store::ObjectKind::kData;
    e.offset = offset;
    e.stored_size = 64;
    e.raw_size = 10;
    return e;
  };
  // Three runs with overlapping ids and pack tables of their own, then a delta.
  std::vector<std::unique_ptr<store::IndexCache>> runs;
  for (uint32_t r = 0; r < 3; ++r) {
    store::PackListing l{"run" + std::to_string(r), {}};
    for (uint32_t n = r * 100; n < r * 100 + 150; ++n) l.entries.push_back(entry(n, 16 + r));
    std::string p = dir / ("run" + std::to_string(r));
    ASSERT_TRUE(store::WriteIndexCache(Env::Default(), p, nullptr, {l}, {}).ok());
    auto c = store::IndexCache::Open(Env::Default(), p);
    ASSERT_TRUE(c.ok());
    runs.push_back(std::move(*c));
  }
  store::PackListing delta{"delta", {}};
  for (uint32_t n = 340; n < 400; ++n) delta.entries.push_back(entry(n, 99));
  std::vector<const store::IndexCache*> sources;
  for (const auto& r : runs) sources.push_back(r.get());
  std::string out = dir / "merged";
  ASSERT_TRUE(store::WriteIndexCache(Env::Default(), out, sources, {delta}, {"a", "b"}).ok());
  auto m = store::IndexCache::Open(Env::Default(), out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->size(), 400u);
  EXPECT_EQ((*m)->packs().size(), 4u);
  for (uint32_t n = 0; n < 400; ++n) {
    auto pos = (*m)->Find(entry(n, 0).id);
    ASSERT_TRUE(pos) << n;
    auto at = (*m)->At(*pos);
    ASSERT_TRUE(at);
    // The earliest source holding an id wins.
    uint32_t want_run = n < 100 ? 0 : n < 150 ? 0 : n < 250 ? 1 : n < 350 ? 2 : 3;
    if (n >= 150 && n < 200) want_run = 1;
    if (n >= 250 && n < 300) want_run = 2;
    EXPECT_EQ((*m)->packs()[at->first], want_run < 3 ? "run" + std::to_string(want_run) : "delta") << n;
  }
  for (uint64_t i = 1; i < (*m)->size(); ++i) {
    EXPECT_LT(std::memcmp((*m)->IdAt(i - 1).bytes.data(), (*m)->IdAt(i).bytes.data(), ObjectId::kSize), 0);
  }
}

// --- unlocked keys ---

class KeyCacheTest : public IndexCacheTest {
 protected:
  void SetUp() override {
    IndexCacheTest::SetUp();
    runtime_ = dir_ / "run";
    ASSERT_EQ(::mkdir(runtime_.c_str(), 0700), 0);
    old_ = std::getenv("XDG_RUNTIME_DIR") ? std::getenv("XDG_RUNTIME_DIR") : "";
    ::setenv("XDG_RUNTIME_DIR", runtime_.c_str(), 1);
  }
  void TearDown() override {
    if (old_.empty()) ::unsetenv("XDG_RUNTIME_DIR");
    else ::setenv("XDG_RUNTIME_DIR", old_.c_str(), 1);
  }
  std::string runtime_, old_;
};

TEST_F(KeyCacheTest, UnlockOpensWithoutPassphraseUntilLocked) {
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kNotFound);
  ObjectId root;
  {
    auto repo = Open(repo_);
    root = Put(repo.get(), 2, 1);
    ASSERT_TRUE(repo->Unlock(60).ok());
  }
  struct stat st;
  ASSERT_EQ(::stat((runtime_ + "/strata").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto unlocked = Repository::OpenUnlocked(repo_, Options());
  ASSERT_TRUE(unlocked.ok()) << unlocked.status().ToString();
  ExpectReadable(unlocked->get(), root, 2, 1);
  for (const auto& e : fs::directory_iterator(runtime_ + "/strata")) {
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
  }
  ASSERT_TRUE(Repository::Lock(repo_).ok());
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kNotFound);
}

TEST_F(KeyCacheTest, ExpiredEntryIsRefusedAndRemoved) {
  std::string id;
  {
    auto repo = Open(repo_);
    ASSERT_TRUE(repo->Unlock(60).ok());
  }
  for (const auto& e : fs::directory_iterator(runtime_ + "/strata")) id = e.path().stem().string();
  auto k = store::LoadCachedKeys(id, time(nullptr));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  k->expires_unix = time(nullptr) - 1;
  ASSERT_TRUE(store::SaveCachedKeys(*k).ok());
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(runtime_ + "/strata/" + id + ".keys"));
}

TEST_F(KeyCacheTest, UnsafePermissionsAreRefused) {
  {
    auto repo = Open(repo_);
    ASSERT_TRUE(repo->Unlock(60).ok());
  }
  std::string file;
  for (const auto& e : fs::directory_iterator(runtime_ + "/strata")) file = e.path().string();
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kPermissionDenied);
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  ASSERT_TRUE(Repository::OpenUnlocked(repo_, Options()).ok());
  ASSERT_EQ(::chmod((runtime_ + "/strata").c_str(), 0755), 0);
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kPermissionDenied);
  ASSERT_EQ(::chmod((runtime_ + "/strata").c_str(), 0700), 0);
  // A symlink in place of the file is not followed.
  std::string target = dir_ / "elsewhere";
  fs::rename(file, target);
  fs::create_symlink(target, file);
  EXPECT_NE(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kOk);
  if (::getuid() == 0) {
    // Owned by someone else (only root can arrange it here).
    fs::remove(file);
    fs::rename(target, file);
    ASSERT_EQ(::chown(file.c_str(), 12345, 12345), 0);
    EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kPermissionDenied);
  }
}

TEST_F(KeyCacheTest, RemovedKeySlotIsNotHonoured) {
  std::string first_slot;
  {
    auto repo = Open(repo_);
    auto keys = repo->ListKeys();
    ASSERT_TRUE(keys.ok());
    first_slot = (*keys)[0].id;
    ASSERT_TRUE(repo->AddKey("other", "second").ok());
    ASSERT_TRUE(repo->Unlock(60).ok());  // made with the first slot
  }
  // Keep a copy of the entry, remove the slot with the other passphrase, put the copy back:
  // the entry names a slot that is gone, so it is refused.
  std::string file;
  for (const auto& e : fs::directory_iterator(runtime_ + "/strata")) file = e.path().string();
  std::string saved = strata::testing::ReadFile(file);
  {
    auto repo = Repository::Open(repo_, "other", Options());
    ASSERT_TRUE(repo.ok());
    ASSERT_TRUE((*repo)->RemoveKey(first_slot).ok());
  }
  EXPECT_FALSE(fs::exists(file));  // removing a slot drops the entry
  WriteFile(file, saved);
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  EXPECT_EQ(Repository::OpenUnlocked(repo_, Options()).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
