// Tier moves (ObjectStore::MoveToTier): what the roots reach moves into archive packs, keeps its
// ids and reads back byte for byte; other objects stay in their tier; gc keeps archived objects
// archived; a crash at any point loses nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "base/fault_env.h"
#include "store/lock.h"
#include "store/object_store.h"
#include "store/repository_impl.h"
#include "testutil/testutil.h"
#include "volume/backend.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::ExpectVerifies;
using strata::testing::RandomBytes;
using strata::testing::TempDir;
using strata::testing::WriteFile;

constexpr char kPass[] = "pw";

OpenOptions Options(Env* env = Env::Default()) {
  OpenOptions o;
  o.env = env;
  o.threads = 2;
  return o;
}

// Text from a small vocabulary: zstd level 3 compresses it well, level 19 better still.
std::string Prose(uint64_t seed, size_t size) {
  static const char* kWords[] = {"tensor", "gradient", "shard", "epoch", "loss", "batch", "layer", "weight",
                                 "bias", "dataset", "label", "image", "pixel", "train", "model", "the", "of", "a"};
  std::string out;
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  while (out.size() < size) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out += kWords[x % (sizeof(kWords) / sizeof(kWords[0]))];
    out += (x >> 20) % 11 == 0 ? ".\n" : " ";
    if ((x >> 30) % 5 == 0) out += std::to_string((x >> 33) % 1000);
  }
  out.resize(size);
  return out;
}

class TierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_dir_ = dir_ / "repo";
    auto repo = Repository::Create(repo_dir_, kPass, strata::testing::FastInitOptions(), Options());
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
  }

  store::ObjectStore* store() { return repo_->objects(); }

  std::string MakeProse(const std::string& name, int files, size_t size, uint64_t seed) {
    std::string d = dir_ / name;
    for (int i = 0; i < files; ++i) WriteFile(d + "/t" + std::to_string(i) + ".txt", Prose(seed * 100 + i, size));
    return d;
  }
  std::string MakeRandom(const std::string& name, int files, size_t size, uint64_t seed) {
    std::string d = dir_ / name;
    for (int i = 0; i < files; ++i) WriteFile(d + "/r" + std::to_string(i), RandomBytes(seed * 100 + i, size));
    return d;
  }

  // Puts the directories through one batch, so their objects share packs; returns their trees.
  std::vector<ObjectId> PutShared(const std::vector<std::string>& dirs) {
    auto batch = store()->NewBatch();
    EXPECT_TRUE(batch.ok());
    std::vector<ObjectId> out;
    for (size_t i = 0; i < dirs.size(); ++i) {
      auto e = (*batch)->PutPath(dirs[i], "d" + std::to_string(i), nullptr);
      EXPECT_TRUE(e.ok()) << e.status().ToString();
      out.push_back(e->subtree);
    }
    EXPECT_TRUE((*batch)->Commit().ok());
    return out;
  }

  std::vector<std::string> PackNames(bool archive) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(repo_dir_ + "/packs")) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename();
      if (volume::IsArchivePack(name) == archive) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  void ExpectRestores(Repository* repo, const ObjectId& id, const std::string& src) {
    strata::testing::ExpectRestores(repo, id, src, dir_ / ("out" + std::to_string(restores_++)));
  }

  store::ObjectStore::TierCount Count(Repository* repo, const ObjectId& root) {
    auto c = repo->objects()->CountTiers({root});
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : store::ObjectStore::TierCount{};
  }

  TempDir dir_;
  std::string repo_dir_;
  std::unique_ptr<Repository> repo_;
  int restores_ = 0;
};

TEST_F(TierTest, ArchiveMovesOnlyWhatTheRootsReachAndRestoreBringsItBack) {
  std::string text = MakeProse("text", 3, 300'000, 1);
  std::string noise = MakeRandom("noise", 2, 200'000, 2);
  auto ids = PutShared({text, noise});
  const ObjectId text_id = ids[0], noise_id = ids[1];
  ASSERT_TRUE(PackNames(true).empty());
  const auto hot_before = Count(repo_.get(), text_id);
  EXPECT_EQ(hot_before.archive_objects, 0u);

  auto moved = store()->MoveToTier({text_id}, StorageTier::kArchive, {});
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->objects_moved, hot_before.hot_objects);
  EXPECT_EQ(moved->objects_reachable, hot_before.hot_objects);
  EXPECT_EQ(moved->stored_before, hot_before.hot_bytes);
  EXPECT_LT(moved->stored_after, moved->stored_before) << "level 19 should beat level 3 on text";
  EXPECT_GE(moved->packs_rewritten, 1u);
  EXPECT_GT(moved->objects_copied, 0u) << "noise shared the packs and is copied, not moved";
  EXPECT_FALSE(PackNames(true).empty());

  // Ids are unchanged: the same tree ids read back the same bytes.
  auto text_tiers = Count(repo_.get(), text_id);
  EXPECT_EQ(text_tiers.hot_objects, 0u);
  EXPECT_EQ(text_tiers.archive_objects, moved->objects_moved);
  EXPECT_EQ(text_tiers.archive_bytes, moved->stored_after);
  auto noise_tiers = Count(repo_.get(), noise_id);
  EXPECT_EQ(noise_tiers.archive_objects, 0u) << "what the roots do not reach stays hot";
  ExpectRestores(repo_.get(), text_id, text);
  ExpectRestores(repo_.get(), noise_id, noise);
  ExpectVerifies(repo_.get());

  // Moving again does nothing.
  const auto packs = PackNames(true);
  auto again = store()->MoveToTier({text_id}, StorageTier::kArchive, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->objects_moved, 0u);
  EXPECT_EQ(again->objects_in_tier, moved->objects_moved);
  EXPECT_EQ(again->packs_rewritten, 0u);
  EXPECT_EQ(PackNames(true), packs);

  // Another process sees the same, then restores to hot.
  repo_.reset();
  auto reopened = Repository::Open(repo_dir_, kPass, Options());
  ASSERT_TRUE(reopened.ok());
  repo_ = std::move(*reopened);
  ExpectRestores(repo_.get(), text_id, text);
  auto back = store()->MoveToTier({text_id}, StorageTier::kHot, {});
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->objects_moved, moved->objects_moved);
  EXPECT_EQ(back->stored_before, moved->stored_after);
  EXPECT_TRUE(PackNames(true).empty());
  EXPECT_EQ(Count(repo_.get(), text_id).archive_objects, 0u);
  ExpectRestores(repo_.get(), text_id, text);
  ExpectRestores(repo_.get(), noise_id, noise);
  ExpectVerifies(repo_.get());
}

TEST_F(TierTest, DryRunReportsAndChangesNothing) {
  std::string text = MakeProse("text", 2, 200'000, 3);
  auto ids = PutShared({text});
  auto before = strata::testing::ListTree(repo_dir_ + "/packs");
  store::TierMoveOptions o;
  o.dry_run = true;
  auto r = store()->MoveToTier({ids[0]}, StorageTier::kArchive, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->dry_run);
  EXPECT_GT(r->objects_moved, 0u);
  EXPECT_EQ(strata::testing::ListTree(repo_dir_ + "/packs"), before);
}

TEST_F(TierTest, GcKeepsArchivedObjectsInArchivePacks) {
  std::string keep = MakeProse("keep", 2, 250'000, 4);
  std::string drop = MakeProse("drop", 3, 400'000, 5);
  auto ids = PutShared({keep, drop});
  // Both archived together, so their objects share archive packs.
  auto moved = store()->MoveToTier(ids, StorageTier::kArchive, {});
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  ASSERT_TRUE(PackNames(false).empty()) << "nothing else was in the hot packs";
  const auto archive_before = PackNames(true);

  store::GcOptions gc;
  gc.roots = {ids[0]};
  gc.grace_seconds = 0;
  auto report = store()->CollectGarbage(gc);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->packs_repacked, 1u);
  EXPECT_FALSE(store()->Contains(ids[1]));
  EXPECT_TRUE(PackNames(false).empty()) << "gc moved archived objects to a hot pack"
                                        << strata::testing::JoinLines(PackNames(false));
  EXPECT_NE(PackNames(true), archive_before);
  EXPECT_EQ(Count(repo_.get(), ids[0]).hot_objects, 0u);
  ExpectRestores(repo_.get(), ids[0], keep);
  ExpectVerifies(repo_.get());
}

TEST_F(TierTest, MissingRootChangesNothing) {
  std::string text = MakeProse("text", 1, 100'000, 6);
  auto ids = PutShared({text});
  ObjectId unknown = store()->Hash("not stored");
  auto r = store()->MoveToTier({ids[0], unknown}, StorageTier::kArchive, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_TRUE(PackNames(true).empty());
}

TEST_F(TierTest, RefusedWhileAWriterHoldsTheLock) {
  std::string text = MakeProse("text", 1, 100'000, 7);
  auto ids = PutShared({text});
  auto batch = store()->NewBatch();
  ASSERT_TRUE(batch.ok());
  (*batch)->Put(store::ObjectKind::kCommit, "pending");
  auto r = store()->MoveToTier({ids[0]}, StorageTier::kArchive, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
}

TEST_F(TierTest, CrashAtEveryWriteLosesNothing) {
  std::string text = MakeProse("text", 2, 300'000, 8);
  std::string noise = MakeRandom("noise", 2, 150'000, 9);
  auto ids = PutShared({text, noise});
  repo_.reset();
  const std::string template_dir = repo_dir_;

  int crashes = 0;
  for (int n = 0;; ++n) {
    SCOPED_TRACE("writes allowed before the fault: " + std::to_string(n));
    ASSERT_LT(n, 500) << "the move never completed";
    std::string dir = dir_ / ("crash" + std::to_string(n));
    fs::copy(template_dir, dir, fs::copy_options::recursive);
    FaultEnv env(Env::Default(), static_cast<uint64_t>(n));
    env.SetTornWrites(n % 2 == 1);
    Result<store::TierMoveReport> moved = Status::Internal("not run");
    {
      auto repo = Repository::Open(dir, kPass, Options(&env));
      ASSERT_TRUE(repo.ok());
      env.FailWritesAfter(n);
      moved = (*repo)->objects()->MoveToTier({ids[0]}, StorageTier::kArchive, {});
    }
    const bool faulted = env.faults_injected() > 0;
    if (!faulted) {
      ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    }
    ASSERT_TRUE(env.SimulateCrash().ok());
    std::vector<fs::path> locks;
    for (const auto& l : fs::directory_iterator(dir + "/locks")) locks.push_back(l.path());
    for (const auto& l : locks) fs::remove(l);

    auto opened = Repository::Open(dir, kPass, Options());
    ASSERT_TRUE(opened.ok());
    auto repo = std::move(*opened);
    ExpectVerifies(repo.get(), /*allow_warnings=*/true);  // leftovers at worst
    ExpectRestores(repo.get(), ids[0], text);
    ExpectRestores(repo.get(), ids[1], noise);
    // Running the move again finishes it.
    auto after = repo->objects()->MoveToTier({ids[0]}, StorageTier::kArchive, {});
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_EQ(Count(repo.get(), ids[0]).hot_objects, 0u);
    EXPECT_EQ(Count(repo.get(), ids[1]).archive_objects, 0u);
    ExpectRestores(repo.get(), ids[0], text);
    if (HasFatalFailure()) return;
    repo.reset();
    fs::remove_all(dir);
    if (!faulted) break;
    ++crashes;
  }
  EXPECT_GT(crashes, 10);
}

}  // namespace
}  // namespace strata
