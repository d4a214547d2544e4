// Merges, retention and garbage collection through the public Lake API: fast-forward, clean
// three-way merges, conflicts under each strategy; which commits each retention rule keeps;
// gc after forget frees space while every kept (and tagged) commit still reads back exactly.
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

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

class MergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o = strata::testing::FastInitOptions();
    auto repo = Repository::Create(dir_ / "repo", "pw", o);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    lake_ = Open();
    ASSERT_TRUE(lake_);
    ASSERT_TRUE(lake_->CreateDataset("fm").ok());
  }

  std::unique_ptr<Lake> Open() {
    LakeOptions o;
    o.actor = "tester@host";
    auto lake = Lake::Open(repo_.get(), o);
    EXPECT_TRUE(lake.ok()) << lake.status().ToString();
    return lake.ok() ? std::move(*lake) : nullptr;
  }

  // One commit of a change list: path -> content (nullopt removes it).
  ObjectId Commit(const std::string& branch, const std::map<std::string, std::optional<std::string>>& files,
                  int64_t time_ns = 0, const std::string& msg = "change") {
    std::vector<Change> changes;
    for (const auto& [path, content] : files) {
      if (!content) {
        changes.push_back(Change{Change::Kind::kRemove, path, "", ""});
        continue;
      }
      std::string src = dir_ / ("in" + std::to_string(counter_++));
      WriteFile(src, *content);
      changes.push_back(Change{Change::Kind::kAdd, path, src, ""});
    }
    CommitOptions o;
    o.message = msg;
    o.time_ns = time_ns;
    auto r = lake_->CommitChanges(branch, changes, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->commit : ObjectId();
  }

  ObjectId Head(const std::string& ref) {
    auto r = lake_->Resolve(ref);
    EXPECT_TRUE(r.ok()) << ref << ": " << r.status().ToString();
    return r.ok() ? r->commit.id : ObjectId();
  }

  // The file's content, or "<absent>".
  std::string Read(const std::string& spec) {
    auto rd = lake_->OpenFile(spec);
    if (!rd.ok()) return "<absent>";
    std::string out((*rd)->size(), '\0');
    size_t got = 0;
    EXPECT_TRUE((*rd)->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got).ok());
    out.resize(got);
    return out;
  }

  std::string LastAuditAction() {
    auto log = lake_->AuditLog(1, SIZE_MAX);
    EXPECT_TRUE(log.ok());
    return log.ok() && !log->empty() ? log->back().action : "";
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
  int counter_ = 0;
};

TEST_F(MergeTest, FastForwardAndUpToDate) {
  Commit("fm@main", {{"a.txt", "a"}});
  ASSERT_TRUE(lake_->CreateRef("fm@dev", "fm@main", RefType::kBranch).ok());
  ObjectId dev = Commit("fm@dev", {{"b.txt", "b"}});
  ObjectId main_before = Head("fm@main");

  auto r = lake_->Merge("fm@dev", "fm@main", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->fast_forward);
  EXPECT_FALSE(r->up_to_date);
  EXPECT_EQ(r->base, main_before);
  EXPECT_EQ(r->parent, main_before);
  EXPECT_EQ(r->commit, dev);
  EXPECT_EQ(Head("fm@main"), dev);
  EXPECT_EQ(LastAuditAction(), "merge");

  // Both ways round, there is now nothing to merge.
  for (auto [src, dst] : {std::pair{"fm@dev", "fm@main"}, std::pair{"fm@main", "fm@dev"}}) {
    auto again = lake_->Merge(src, dst, {});
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->up_to_date);
    EXPECT_EQ(again->commit, dev);
  }
  // An older commit of the branch is already merged too.
  auto old = lake_->Merge("fm@" + main_before.ToHex().substr(0, 12), "fm@main", {});
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->up_to_date);

  // Tags don't move; other datasets can't be merged.
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  EXPECT_EQ(lake_->Merge("fm@dev", "fm@v1", {}).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(lake_->CreateDataset("other").ok());
  EXPECT_EQ(lake_->Merge("other@main", "fm@main", {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MergeTest, CleanThreeWayMerge) {
  Commit("fm@main", {{"a.txt", "a"}, {"keep/k.txt", "k"}, {"train/x.bin", RandomBytes(1, 100000)},
                     {"test/z.bin", RandomBytes(2, 50000)}, {"same.txt", "s"}});
  ObjectId base = Head("fm@main");
  ASSERT_TRUE(lake_->CreateRef("fm@dev", "fm@main", RefType::kBranch).ok());
  ObjectId ours = Commit("fm@main", {{"a.txt", "a from main"}, {"same.txt", "both"}, {"train/m.bin", "main"}});
  std::string added = RandomBytes(3, 70000);
  ObjectId theirs = Commit("fm@dev", {{"train/new.bin", added}, {"test/z.bin", std::nullopt}, {"same.txt", "both"}});

  auto conflicts = lake_->MergeConflicts("fm@dev", "fm@main");
  ASSERT_TRUE(conflicts.ok()) << conflicts.status().ToString();
  EXPECT_TRUE(conflicts->empty());

  MergeOptions o;
  o.message = "merge dev";
  auto r = lake_->Merge("fm@dev", "fm@main", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->fast_forward);
  EXPECT_FALSE(r->up_to_date);
  EXPECT_EQ(r->base, base);
  EXPECT_TRUE(r->conflicts.empty());
  // Only the root and train/ (both sides added files there) are rewritten; test/ is taken from
  // dev and keep/ from main, by id.
  EXPECT_EQ(r->trees_written, 2u);
  EXPECT_EQ(Head("fm@main"), r->commit);

  auto head = lake_->Resolve("fm@main");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->commit.parents, (std::vector<ObjectId>{ours, theirs}));
  EXPECT_EQ(head->commit.message, "merge dev");
  EXPECT_EQ(head->commit.meta["merge_base"], base.ToHex());
  EXPECT_EQ(Read("fm@main:a.txt"), "a from main");
  EXPECT_EQ(Read("fm@main:same.txt"), "both");
  EXPECT_EQ(Read("fm@main:train/m.bin"), "main");
  EXPECT_EQ(Read("fm@main:train/new.bin"), added);
  EXPECT_EQ(Read("fm@main:train/x.bin"), RandomBytes(1, 100000));
  EXPECT_EQ(Read("fm@main:test/z.bin"), "<absent>");
  EXPECT_EQ(Read("fm@main:keep/k.txt"), "k");
  EXPECT_EQ(LastAuditAction(), "merge");

  // Merging back is now a fast-forward of dev.
  auto back = lake_->Merge("fm@main", "fm@dev", {});
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->fast_forward);
  EXPECT_EQ(Head("fm@dev"), r->commit);

  // History shows the merge commit, then its first parent.
  auto log = lake_->Log("fm@main", 2);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[1].id, ours);
}

TEST_F(MergeTest, ConflictsUnderEachStrategy) {
  std::string big = RandomBytes(1, 80000);
  Commit("fm@main", {{"a.txt", "a"}, {"big.bin", big}, {"dir/ok.txt", "ok"}});
  ObjectId base = Head("fm@main");
  ASSERT_TRUE(lake_->CreateRef("fm@dev", "fm@main", RefType::kBranch).ok());
  ObjectId ours = Commit("fm@main", {{"a.txt", "main"}, {"big.bin", std::nullopt}, {"new.txt", "main new"},
                                     {"d", "a file"}, {"dir/main.txt", "m"}});
  std::string big2 = RandomBytes(2, 80000);
  Commit("fm@dev", {{"a.txt", "dev"}, {"big.bin", big2}, {"new.txt", "dev new"}, {"d/x.txt", "in a dir"},
                    {"dir/dev.txt", "d"}});
  ObjectId theirs = Head("fm@dev");

  const std::vector<std::pair<std::string, std::string>> want = {
      {"a.txt", "modify/modify"}, {"big.bin", "delete/modify"}, {"d", "file/directory"}, {"new.txt", "add/add"}};

  // fail: nothing changes, every conflict is named.
  auto failed = lake_->Merge("fm@dev", "fm@main", {});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kFailedPrecondition);
  for (const auto& [path, kind] : want) {
    EXPECT_NE(failed.status().message().find(path + " (" + kind + ")"), std::string::npos) << failed.status().message();
  }
  EXPECT_EQ(Head("fm@main"), ours);
  EXPECT_NE(LastAuditAction(), "merge");
  auto listed = lake_->MergeConflicts("fm@dev", "fm@main");
  ASSERT_TRUE(listed.ok());
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& c : *listed) got.emplace_back(c.path, c.kind);
  EXPECT_EQ(got, want);

  // ours: the destination's side of each conflict, the source's other changes.
  MergeOptions o;
  o.strategy = MergeStrategy::kOurs;
  auto r = lake_->Merge("fm@dev", "fm@main", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->base, base);
  EXPECT_EQ(r->conflicts.size(), want.size());
  EXPECT_EQ(Read("fm@main:a.txt"), "main");
  EXPECT_EQ(Read("fm@main:big.bin"), "<absent>");
  EXPECT_EQ(Read("fm@main:new.txt"), "main new");
  EXPECT_EQ(Read("fm@main:d"), "a file");
  EXPECT_EQ(Read("fm@main:dir/main.txt"), "m");
  EXPECT_EQ(Read("fm@main:dir/dev.txt"), "d");
  EXPECT_EQ(Read("fm@main:dir/ok.txt"), "ok");

  // theirs, from the same starting point.
  ASSERT_TRUE(lake_->Reset("fm@main", "fm@" + ours.ToHex()).ok());
  o.strategy = MergeStrategy::kTheirs;
  auto t = lake_->Merge("fm@dev", "fm@main", o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(Read("fm@main:a.txt"), "dev");
  EXPECT_EQ(Read("fm@main:big.bin"), big2);
  EXPECT_EQ(Read("fm@main:new.txt"), "dev new");
  EXPECT_EQ(Read("fm@main:d/x.txt"), "in a dir");
  EXPECT_EQ(Read("fm@main:dir/main.txt"), "m");
  auto head = lake_->Resolve("fm@main");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->commit.parents, (std::vector<ObjectId>{ours, theirs}));
  EXPECT_EQ(head->commit.meta["merge_strategy"], "theirs");

  EXPECT_EQ(ParseMergeStrategy("theirs").value(), MergeStrategy::kTheirs);
  EXPECT_EQ(ParseMergeStrategy("both").status().code(), StatusCode::kInvalidArgument);
}

// --- retention ---

constexpr int64_t kDay = 86400;
constexpr int64_t kNs = 1'000'000'000;

class RetentionTest : public MergeTest {
 protected:
  void SetUp() override {
    MergeTest::SetUp();
    // A Monday well after now (the dataset's first commit is "now"), so weeks start on day 0.
    int64_t t = (time(nullptr) / kDay + 30) * kDay;
    while (((t / kDay) + 3) % 7 != 0) t += kDay;
    day0_ = t;
    // (day, hour) of each commit, oldest first; every one replaces data.bin.
    const std::pair<int, int> when[] = {{0, 9}, {0, 15}, {1, 10}, {3, 8}, {3, 20}, {8, 12}, {40, 7}, {40, 18}};
    for (size_t i = 0; i < std::size(when); ++i) {
      content_.push_back(RandomBytes(100 + i, 120000));
      ids_.push_back(Commit("fm@main", {{"data.bin", content_.back()}, {"n.txt", std::to_string(i)}},
                            (day0_ + when[i].first * kDay + when[i].second * 3600) * kNs, "c" + std::to_string(i)));
    }
    // c2 is tagged.
    ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@" + ids_[2].ToHex(), RefType::kTag).ok());
  }

  // The commits a policy keeps, by index into ids_ (the dataset's root commit is -1).
  std::set<int> Kept(const RetentionPolicy& p, ForgetReport* out = nullptr) {
    EXPECT_TRUE(lake_->SetRetentionPolicy("fm", p).ok());
    auto r = lake_->Forget("fm", /*dry_run=*/true);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    std::set<int> kept;
    for (const auto& d : r->decisions) {
      int index = -1;
      for (size_t i = 0; i < ids_.size(); ++i) {
        if (ids_[i] == d.commit) index = static_cast<int>(i);
      }
      if (d.keep) kept.insert(index);
    }
    EXPECT_EQ(r->decisions.size(), ids_.size() + 1);
    if (out) *out = *r;
    return kept;
  }

  int64_t day0_ = 0;
  std::vector<std::string> content_;
  std::vector<ObjectId> ids_;
};

TEST_F(RetentionTest, EachRuleKeepsTheRightCommits) {
  // Heads (c7) and the tag (c2) always; then each rule on its own.
  EXPECT_EQ(Kept({}), (std::set<int>{2, 7}));
  EXPECT_EQ(Kept({.keep_last = 3}), (std::set<int>{2, 5, 6, 7}));
  // The newest commit of each of the last 3 days that have commits: days 40, 8, 3.
  EXPECT_EQ(Kept({.keep_daily = 3}), (std::set<int>{2, 4, 5, 7}));
  EXPECT_EQ(Kept({.keep_daily = 100}), (std::set<int>{-1, 1, 2, 4, 5, 7}));
  // Weeks: day 40 (week 5), day 8 (week 1), days 0-3 (week 0).
  EXPECT_EQ(Kept({.keep_weekly = 2}), (std::set<int>{2, 5, 7}));
  EXPECT_EQ(Kept({.keep_weekly = 3}), (std::set<int>{2, 4, 5, 7}));
  // Day 40 is in another month than day 8; c5 is the newest commit before that month.
  EXPECT_EQ(Kept({.keep_monthly = 1}), (std::set<int>{2, 7}));
  EXPECT_EQ(Kept({.keep_monthly = 2}), (std::set<int>{2, 5, 7}));

  ForgetReport report;
  Kept({.keep_last = 1, .keep_daily = 2}, &report);
  ASSERT_FALSE(report.decisions.empty());
  EXPECT_EQ(report.decisions[0].commit, ids_[7]);
  std::set<std::string> reasons(report.decisions[0].reasons.begin(), report.decisions[0].reasons.end());
  EXPECT_TRUE(reasons.count("head of main"));
  EXPECT_TRUE(reasons.count("last"));
  // A dry run changes nothing.
  EXPECT_EQ(Head("fm@" + ids_[0].ToHex().substr(0, 12)), ids_[0]);
}

TEST_F(RetentionTest, ForgetThenGcFreesSpaceAndKeepsWhatIsKept) {
  EXPECT_EQ(lake_->Forget("fm", false).status().code(), StatusCode::kFailedPrecondition);  // no policy
  RetentionPolicy policy{.keep_last = 1, .keep_daily = 2};
  ASSERT_TRUE(lake_->SetRetentionPolicy("fm", policy).ok());
  auto got = lake_->GetRetentionPolicy("fm");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, policy);

  // Without forget, gc keeps every commit's data.
  LakeGcOptions gc;
  gc.grace_seconds = 0;
  auto before = lake_->CollectGarbage(gc);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->commits_live, ids_.size() + 1);
  EXPECT_EQ(before->trees_live, ids_.size() + 1);
  for (size_t i = 0; i < ids_.size(); ++i) EXPECT_EQ(Read("fm@" + ids_[i].ToHex() + ":data.bin"), content_[i]);

  auto f = lake_->Forget("fm", false);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const std::set<size_t> kept = {2, 5, 7};  // tag, daily (day 8), head/last/daily (day 40)
  EXPECT_EQ(f->kept, kept.size());
  EXPECT_EQ(f->forgotten, ids_.size() + 1 - kept.size());
  EXPECT_EQ(LastAuditAction(), "forget");

  // Forgotten commits no longer resolve by id; log stops before them.
  auto gone = lake_->Resolve("fm@" + ids_[6].ToHex().substr(0, 12));
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_NE(gone.status().message().find("forgotten"), std::string::npos);
  auto log = lake_->Log("fm@main", 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].parents[0], ids_[6]);
  auto log5 = lake_->Log("fm@" + ids_[5].ToHex(), 100);
  ASSERT_TRUE(log5.ok());
  EXPECT_EQ(log5->size(), 1u);

  auto after = lake_->CollectGarbage(gc);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GT(after->bytes_freed, 5 * 100000u);  // five forgotten versions of data.bin, at least
  EXPECT_EQ(after->commits_live, ids_.size() + 1);  // commit objects stay: lineage survives
  EXPECT_EQ(after->trees_live, kept.size());
  EXPECT_LT(after->objects_live, after->objects_total);
  EXPECT_EQ(LastAuditAction(), "gc");

  // Every kept commit reads back exactly; the tagged one included.
  for (size_t i : kept) EXPECT_EQ(Read("fm@" + ids_[i].ToHex() + ":data.bin"), content_[i]) << i;
  EXPECT_EQ(Read("fm@v1:data.bin"), content_[2]);
  std::string out = dir_ / "out";
  ASSERT_TRUE(lake_->Checkout("fm@main", out).ok());
  EXPECT_EQ(strata::testing::ReadFile(out + "/data.bin"), content_[7]);
  // The forgotten commits' objects are still there, their content is not.
  EXPECT_TRUE(repo_->objects()->Contains(ids_[6]));
  auto verify = repo_->Verify(true);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok()) << (verify->errors.empty() ? "" : verify->errors[0]);

  // Forget again: nothing new to forget; gc: nothing new to free.
  auto again = lake_->Forget("fm", false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->forgotten, 0u);
  auto gc2 = lake_->CollectGarbage(gc);
  ASSERT_TRUE(gc2.ok());
  EXPECT_EQ(gc2->bytes_freed, 0u);

  // New commits after a forget are live until the next forget judges them.
  ObjectId next = Commit("fm@main", {{"data.bin", "next"}});
  ASSERT_TRUE(lake_->CollectGarbage(gc).ok());
  EXPECT_EQ(Read("fm@" + ids_[7].ToHex() + ":data.bin"), content_[7]);
  EXPECT_EQ(Read("fm@main:data.bin"), "next");

  // The policy and the forgotten set survive a catalog rebuild.
  lake_.reset();
  std::string db = repo_->objects()->local_state_dir() + "/catalog.db";
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(db + s);
  auto rebuilt = Lake::RebuildCatalog(repo_.get());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_TRUE(rebuilt->warnings.empty()) << rebuilt->warnings[0];
  lake_ = Open();
  ASSERT_TRUE(lake_);
  got = lake_->GetRetentionPolicy("fm");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, policy);
  EXPECT_EQ(lake_->Resolve("fm@" + ids_[6].ToHex().substr(0, 12)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Head("fm@main"), next);
  auto gc3 = lake_->CollectGarbage(gc);
  ASSERT_TRUE(gc3.ok()) << gc3.status().ToString();
  EXPECT_EQ(gc3->trees_live, kept.size() + 1);
}

TEST_F(RetentionTest, NoKeepTaggedDeletesUnprotectedTags) {
  ASSERT_TRUE(lake_->CreateRef("fm@v2", "fm@" + ids_[3].ToHex(), RefType::kTag).ok());
  ASSERT_TRUE(lake_->ProtectRef("fm@v2", true).ok());
  ASSERT_TRUE(lake_->CreateRef("fm@v3", "fm@" + ids_[6].ToHex(), RefType::kTag).ok());
  ASSERT_TRUE(lake_->SetRetentionPolicy("fm", {.keep_last = 2, .keep_tagged = false}).ok());
  auto f = lake_->Forget("fm", false);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  // v1 (c2) is kept by no rule: deleted. v2 is protected, v3's commit is kept by keep-last.
  EXPECT_EQ(f->tags_deleted, (std::vector<std::string>{"v1"}));
  EXPECT_EQ(lake_->Resolve("fm@v1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Head("fm@v2"), ids_[3]);
  EXPECT_EQ(Head("fm@v3"), ids_[6]);
  LakeGcOptions gc;
  gc.grace_seconds = 0;
  ASSERT_TRUE(lake_->CollectGarbage(gc).ok());
  EXPECT_EQ(Read("fm@v2:data.bin"), content_[3]);
  EXPECT_EQ(Read("fm@v3:data.bin"), content_[6]);
}

TEST_F(MergeTest, GcRefusedWhileAWriterRunsAndFreesDeletedBranches) {
  Commit("fm@main", {{"a.txt", "a"}});
  ASSERT_TRUE(lake_->CreateRef("fm@dev", "fm@main", RefType::kBranch).ok());
  std::string big = RandomBytes(9, 300000);
  Commit("fm@dev", {{"big.bin", big}});
  {
    auto batch = repo_->objects()->NewBatch();
    ASSERT_TRUE(batch.ok());
    auto r = lake_->CollectGarbage({.grace_seconds = 0});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(r.status().message().find("put or commit"), std::string::npos) << r.status().message();
  }
  auto dry = lake_->CollectGarbage({.dry_run = true, .grace_seconds = 0});
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ(dry->bytes_freed, 0u);
  ASSERT_TRUE(lake_->DeleteRef("fm@dev").ok());
  auto dry2 = lake_->CollectGarbage({.dry_run = true, .grace_seconds = 0});
  ASSERT_TRUE(dry2.ok());
  EXPECT_GT(dry2->bytes_freed, 200000u);
  EXPECT_TRUE(dry2->dry_run);
  EXPECT_NE(LastAuditAction(), "gc");  // a dry run records nothing
  auto r = lake_->CollectGarbage({.grace_seconds = 0});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes_freed, dry2->bytes_freed);
  EXPECT_EQ(Read("fm@main:a.txt"), "a");
}

}  // namespace
}  // namespace strata
