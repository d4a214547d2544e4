// The lake cache: a dataset version as local shards, read back through the loader.
#include "strata/lake_cache.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "strata/loader.h"
#include "strata/repository.h"
#include "testutil/testutil.h"

namespace strata::loader {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::TempDir;

class LakeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = strata::testing::CreateTestLake(dir_ / "repo", "fm");
    ASSERT_TRUE(t.lake);
    repo_ = std::move(t.repo);
    lake_ = std::move(t.lake);
    // 50 training files of varying size with labels, a test file, and one set aside.
    auto stage = lake_->Stage("fm@main");
    ASSERT_TRUE(stage.ok());
    for (int i = 0; i < 50; ++i) {
      const std::string path = fmt::format("train/{:03d}.bin", i);
      ASSERT_TRUE((*stage)->AddBytes(path, Content(i)).ok());
      ASSERT_TRUE((*stage)->SetRecord(path, {{"label", int64_t{i % 10}}, {"source", std::string("s") + char('a' + i % 3)}}).ok());
    }
    ASSERT_TRUE((*stage)->AddBytes("test/x.bin", "x").ok());
    ASSERT_TRUE((*stage)->AddBytes(".quarantine/train/bad.bin", "bad").ok());
    ASSERT_TRUE((*stage)->Commit({.message = "import"}).ok());
  }

  static std::string Content(int i) { return RandomBytes(i + 1, 100 + 997 * i); }

  LakeCacheOptions Options() {
    LakeCacheOptions o;
    o.dir = dir_ / "cache";
    o.columns = {"label"};
    o.shard_size = 16 << 10;  // several shards
    return o;
  }

  // Every record the loader reads from the entry, by path: (label, data).
  std::map<std::string, std::pair<int64_t, std::string>> ReadAll(const LakeCacheEntry& e,
                                                                std::optional<shard::Key> key = {}) {
    LoaderOptions lo;
    lo.shards = e.shards;
    lo.key = key;
    lo.batch_size = 7;
    lo.seed = 3;
    auto loader = Loader::Open(lo);
    EXPECT_TRUE(loader.ok()) << loader.status().ToString();
    std::map<std::string, std::pair<int64_t, std::string>> out;
    if (!loader.ok()) return out;
    EXPECT_TRUE((*loader)->Start({3, 0, 0}).ok());
    for (;;) {
      auto b = (*loader)->Next();
      EXPECT_TRUE(b.ok()) << b.status().ToString();
      if (!b.ok() || *b == nullptr) break;
      const Batch& batch = **b;
      const Column* path = batch.Find("path");
      const Column* data = batch.Find("data");
      const Column* label = batch.Find("label");
      EXPECT_TRUE(path && data && label);
      if (!path || !data || !label) break;
      auto value = [&](const Column* c, size_t i) {
        const uint64_t* off = reinterpret_cast<const uint64_t*>(batch.data() + c->offsets_offset);
        return std::string(reinterpret_cast<const char*>(batch.data() + c->offset + off[i]), off[i + 1] - off[i]);
      };
      const int64_t* labels = reinterpret_cast<const int64_t*>(batch.data() + label->offset);
      for (size_t i = 0; i < batch.size(); ++i) {
        EXPECT_TRUE(out.emplace(value(path, i), std::make_pair(labels[i], value(data, i))).second) << "read twice";
      }
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
};

TEST_F(LakeCacheTest, BuildsOnceAndTheLoaderReadsEveryFileOnce) {
  auto e = CacheLakeVersion(lake_.get(), "fm@main:train", Options());
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(e->built);
  EXPECT_EQ(e->records, 50u);
  EXPECT_GT(e->shards.size(), 1u);
  auto got = ReadAll(*e);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    auto it = got.find(fmt::format("train/{:03d}.bin", i));
    ASSERT_NE(it, got.end()) << i;
    EXPECT_EQ(it->second.first, i % 10);
    EXPECT_EQ(it->second.second, Content(i));
  }
  // Found again without building, by any spec that names the same version.
  auto again = CacheLakeVersion(lake_.get(), "fm@" + e->commit.ToHex().substr(0, 12) + ":train", Options());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->built);
  EXPECT_EQ(again->shards, e->shards);
  EXPECT_EQ(again->schema, e->schema);
}

TEST_F(LakeCacheTest, TheWholeTreeLeavesOutQuarantineAndStrataFiles) {
  LakeCacheOptions o = Options();
  o.columns.clear();
  auto e = CacheLakeVersion(lake_.get(), "fm@main", o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->records, 51u);  // 50 train + test/x.bin
}

TEST_F(LakeCacheTest, ANewCommitGetsANewEntryAndOldOnesAreEvictedBeyondTheLimit) {
  auto first = CacheLakeVersion(lake_.get(), "fm@main:train", Options());
  ASSERT_TRUE(first.ok());
  auto stage = lake_->Stage("fm@main");
  ASSERT_TRUE(stage.ok());
  ASSERT_TRUE((*stage)->AddBytes("train/new.bin", "new").ok());
  ASSERT_TRUE((*stage)->SetRecord("train/new.bin", {{"label", int64_t{3}}}).ok());
  ASSERT_TRUE((*stage)->Commit({.message = "one more"}).ok());
  LakeCacheOptions o = Options();
  o.max_bytes = 1;  // keep only the entry asked for
  auto second = CacheLakeVersion(lake_.get(), "fm@main:train", o);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->built);
  EXPECT_EQ(second->records, 51u);
  EXPECT_NE(second->dir, first->dir);
  EXPECT_EQ(second->evicted, 1u);
  EXPECT_FALSE(fs::exists(first->dir));
  EXPECT_EQ(ReadAll(*second).size(), 51u);
}

TEST_F(LakeCacheTest, SealedEntriesNeedTheKeyAndAnotherKeyRebuilds) {
  LakeCacheOptions o = Options();
  o.key = shard::Key{};
  o.key->fill(7);
  auto e = CacheLakeVersion(lake_.get(), "fm@main:train", o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(ReadAll(*e, o.key).size(), 50u);
  LoaderOptions lo;
  lo.shards = e->shards;
  EXPECT_FALSE(Loader::Open(lo).ok());  // no key: refused
  o.key->fill(8);
  auto other = CacheLakeVersion(lake_.get(), "fm@main:train", o);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_TRUE(other->built);
  EXPECT_EQ(ReadAll(*other, o.key).size(), 50u);
}

TEST_F(LakeCacheTest, BadColumnsAndDamagedEntriesAreHandled) {
  LakeCacheOptions o = Options();
  o.columns = {"label", "nope"};
  auto bad = CacheLakeVersion(lake_.get(), "fm@main:train", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'nope'"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("train/000.bin"), std::string::npos) << bad.status().ToString();
  // Nothing was left behind.
  for (const auto& f : fs::directory_iterator(o.dir)) EXPECT_TRUE(f.path().filename().string().ends_with(".lock")) << f.path();

  auto e = CacheLakeVersion(lake_.get(), "fm@main:train", Options());
  ASSERT_TRUE(e.ok());
  fs::resize_file(e->shards[1], 100);  // damaged: rebuilt on the next use
  // What a build killed midway leaves: removed by the next build of that entry.
  const std::string killed = o.dir + "/." + fs::path(e->dir).filename().string() + ".tmp-1";
  strata::testing::WriteFile(killed + "/shard-00000.shard.tmp", "partial");
  auto again = CacheLakeVersion(lake_.get(), "fm@main:train", Options());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->built);
  EXPECT_EQ(ReadAll(*again).size(), 50u);
  EXPECT_FALSE(fs::exists(killed));
}

}  // namespace
}  // namespace strata::loader
