// Storage tiers of dataset versions (Lake::MoveToTier, ListArchived): the catalog follows the
// data, audit entries are written, a rebuilt catalog knows the archive state, and bringing one
// version back leaves what it shares with another archived version archived.
#include <filesystem>

#include <gtest/gtest.h>

#include "store/object_store.h"
#include "strata/lake.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::TempDir;
using strata::testing::WriteFile;

std::string Text(int seed, size_t n) {
  std::string out;
  while (out.size() < n) out += "label " + std::to_string(seed) + " sample " + std::to_string(out.size() % 977) + "\n";
  out.resize(n);
  return out;
}

class TierLakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto repo = Repository::Create(dir_ / "repo", "pw", strata::testing::FastInitOptions());
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    lake_ = OpenLake();
    ASSERT_TRUE(lake_);
    ASSERT_TRUE(lake_->CreateDataset("fm").ok());
    src_ = dir_ / "src";
    WriteFile(src_ + "/shared.txt", Text(1, 200'000));
    WriteFile(src_ + "/v1.txt", Text(2, 150'000));
    WriteFile(src_ + "/noise.bin", RandomBytes(3, 100'000));
    Commit("one");
    ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
    fs::remove(src_ + "/v1.txt");
    WriteFile(src_ + "/v2.txt", Text(4, 150'000));
    Commit("two");
    ASSERT_TRUE(lake_->CreateRef("fm@v2", "fm@main", RefType::kTag).ok());
  }

  std::unique_ptr<Lake> OpenLake() {
    LakeOptions o;
    o.actor = "tester@host";
    auto lake = Lake::Open(repo_.get(), o);
    EXPECT_TRUE(lake.ok()) << lake.status().ToString();
    return lake.ok() ? std::move(*lake) : nullptr;
  }

  void Commit(const std::string& msg) {
    CommitOptions o;
    o.message = msg;
    auto r = lake_->CommitDirectory("fm@main", src_, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  store::ObjectStore::TierCount Count(const std::string& spec) {
    auto r = lake_->Resolve(spec);
    EXPECT_TRUE(r.ok());
    auto c = repo_->objects()->CountTiers({r->commit.id, r->commit.tree});
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : store::ObjectStore::TierCount{};
  }

  std::string Read(const std::string& spec) { return strata::testing::ReadLakeFile(*lake_, spec); }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
  std::string src_;
};

TEST_F(TierLakeTest, ArchiveRecordsAuditsAndRestoreKeepsWhatOtherArchivedVersionsShare) {
  auto v1 = lake_->MoveToTier("fm@v1", StorageTier::kArchive);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_FALSE(v1->unchanged);
  EXPECT_GT(v1->objects_moved, 0u);
  EXPECT_GT(v1->stored_before, 100'000u);  // noise.bin is stored raw in both tiers
  EXPECT_GT(v1->stored_after, 100'000u);
  EXPECT_EQ(Count("fm@v1").hot_objects, 0u);
  EXPECT_EQ(Read("fm@v1:v1.txt"), Text(2, 150'000));

  auto listed = lake_->ListArchived("fm");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].commit, v1->commit);
  EXPECT_EQ((*listed)[0].tier, StorageTier::kArchive);
  EXPECT_EQ((*listed)[0].objects, v1->objects_moved);
  EXPECT_EQ((*listed)[0].refs, std::vector<std::string>{"v1"});

  // Archiving again is a no-op with nothing recorded.
  auto audit_before = lake_->AuditLog(0, 1000);
  ASSERT_TRUE(audit_before.ok());
  auto again = lake_->MoveToTier("fm@v1", StorageTier::kArchive);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->unchanged);
  EXPECT_EQ(again->objects_moved, 0u);
  EXPECT_EQ(lake_->AuditLog(0, 1000)->size(), audit_before->size());
  EXPECT_EQ(audit_before->back().action, "archive");

  // v2 shares shared.txt (already archived) and noise.bin: both versions archived.
  auto v2 = lake_->MoveToTier("fm@v2", StorageTier::kArchive);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_GT(v2->objects_in_tier, 0u);
  EXPECT_EQ(lake_->ListArchived("")->size(), 2u);

  // Restoring v1 leaves v2 wholly archived.
  auto back = lake_->MoveToTier("fm@v1", StorageTier::kHot);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_GT(back->objects_kept, 0u);
  EXPECT_EQ(Count("fm@v2").hot_objects, 0u);
  EXPECT_GT(Count("fm@v1").hot_objects, 0u);
  listed = lake_->ListArchived("fm");
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].commit, v2->commit);
  EXPECT_EQ(lake_->AuditLog(0, 1000)->back().action, "restore");
  EXPECT_EQ(Read("fm@v1:v1.txt"), Text(2, 150'000));
  EXPECT_EQ(Read("fm@v2:v2.txt"), Text(4, 150'000));

  // The catalog can be rebuilt from the repository alone, archive state included.
  lake_.reset();
  auto rebuilt = Lake::RebuildCatalog(repo_.get());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_TRUE(rebuilt->warnings.empty());
  lake_ = OpenLake();
  ASSERT_TRUE(lake_);
  listed = lake_->ListArchived("fm");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].commit, v2->commit);
  auto audit = lake_->VerifyAudit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok) << audit->message;
}

TEST_F(TierLakeTest, DryRunAndErrors) {
  TierOptions dry;
  dry.dry_run = true;
  auto r = lake_->MoveToTier("fm@v1", StorageTier::kArchive, dry);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->dry_run);
  EXPECT_GT(r->objects_moved, 0u);
  EXPECT_EQ(Count("fm@v1").archive_objects, 0u);
  EXPECT_TRUE(lake_->ListArchived("fm")->empty());

  EXPECT_EQ(lake_->MoveToTier("nope@v1", StorageTier::kArchive).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lake_->MoveToTier("fm@nope", StorageTier::kArchive).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lake_->ListArchived("nope").status().code(), StatusCode::kNotFound);
  // Restoring what was never archived does nothing.
  auto hot = lake_->MoveToTier("fm@v1", StorageTier::kHot);
  ASSERT_TRUE(hot.ok());
  EXPECT_TRUE(hot->unchanged);
}

TEST_F(TierLakeTest, DeletingTheDatasetDropsItsRows) {
  ASSERT_TRUE(lake_->MoveToTier("fm@v2", StorageTier::kArchive).ok());
  ASSERT_TRUE(lake_->DeleteDataset("fm").ok());
  auto all = lake_->ListArchived("");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

}  // namespace
}  // namespace strata
