// Tests of the versioning layer through its public API (strata/lake.h): refs, commits, content,
// diffs, rollback, compare-and-swap between two lakes, the audit log and catalog rebuild.
#include "strata/lake.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "catalog/catalog.h"
#include "store/object_store.h"
#include "version/records.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::ReadFile;
using strata::testing::TempDir;
using strata::testing::WriteFile;

// Puts every mtime under `root` well in the past, outside the window where size and mtime prove
// nothing (a file written in the same tick as its stat may change unseen). Only files written
// since the last call are aged, each to a new time, so a rewritten file never gets its old
// mtime back and an untouched one keeps it.
void Age(const std::string& root) {
  static int64_t sec = 1600000000;
  const int64_t recent = time(nullptr) - 3600;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st;
    ASSERT_EQ(lstat(e.path().c_str(), &st), 0);
    if (st.st_mtime < recent) continue;  // aged before: keep its time, as an untouched file would
    timespec times[2] = {{0, UTIME_OMIT}, {sec++, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }
}

std::string ReadAll(Lake& lake, const std::string& spec) {
  auto rd = lake.OpenFile(spec);
  EXPECT_TRUE(rd.ok()) << spec << ": " << rd.status().ToString();
  if (!rd.ok()) return "";
  std::string out((*rd)->size(), '\0');
  size_t got = 0;
  EXPECT_TRUE((*rd)->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got).ok());
  out.resize(got);
  return out;
}

class LakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o = strata::testing::FastInitOptions();
    auto repo = Repository::Create(dir_ / "repo", "pw", o);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    lake_ = OpenLake(repo_.get());
    ASSERT_TRUE(lake_);
    src_ = dir_ / "src";
    WriteFile(src_ + "/a.txt", "alpha\n");
    WriteFile(src_ + "/big.bin", RandomBytes(1, 300000));
    WriteFile(src_ + "/train/x.bin", RandomBytes(2, 50000));
    WriteFile(src_ + "/train/y.bin", RandomBytes(3, 60000));
    WriteFile(src_ + "/test/z.bin", RandomBytes(4, 70000));
    Age(src_);
    ASSERT_TRUE(lake_->CreateDataset("fm").ok());
  }

  std::unique_ptr<Lake> OpenLake(Repository* repo, LakeOptions o = {}) {
    if (o.actor.empty()) o.actor = "tester@host";
    auto lake = Lake::Open(repo, o);
    EXPECT_TRUE(lake.ok()) << lake.status().ToString();
    return lake.ok() ? std::move(*lake) : nullptr;
  }

  CommitResult CommitDir(const std::string& target = "fm@main", const std::string& msg = "import") {
    CommitOptions o;
    o.message = msg;
    auto r = lake_->CommitDirectory(target, src_, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommitResult{};
  }

  ObjectId Head(const std::string& ref = "fm@main") {
    auto r = lake_->Resolve(ref);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->commit.id : ObjectId{};
  }

  std::string CatalogPath() { return repo_->objects()->local_state_dir() + "/catalog.db"; }
  void RemoveCatalog() {
    for (const char* s : {"", "-wal", "-shm"}) fs::remove(CatalogPath() + s);
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
  std::string src_;
};

TEST(RefSpecTest, Parses) {
  auto s = ParseRefSpec("fmnist@v1:train//x/");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->dataset, "fmnist");
  EXPECT_EQ(s->ref, "v1");
  EXPECT_EQ(s->path, "train/x");
  EXPECT_EQ(s->ToString(), "fmnist@v1:train/x");
  auto b = ParseRefSpec("a@feature/x");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ref, "feature/x");
  EXPECT_EQ(b->path, "");
  for (const char* bad : {"fmnist", "@main", "fm@", "fm@main:../etc", "f m@main", "fm@ma in"}) {
    auto r = ParseRefSpec(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("NAME@REF"), std::string::npos) << r.status().message();
  }
}

TEST_F(LakeTest, ResolvesBranchTagCommitPrefix) {
  auto c1 = CommitDir();
  ASSERT_FALSE(c1.unchanged);
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  WriteFile(src_ + "/a.txt", "alpha 2\n");
  Age(src_);
  auto c2 = CommitDir("fm@main", "second");

  auto branch = lake_->Resolve("fm@main");
  ASSERT_TRUE(branch.ok());
  EXPECT_EQ(branch->commit.id, c2.commit);
  ASSERT_TRUE(branch->ref);
  EXPECT_EQ(branch->ref->type, RefType::kBranch);

  auto tag = lake_->Resolve("fm@v1:train");
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->commit.id, c1.commit);
  EXPECT_EQ(tag->ref->type, RefType::kTag);
  EXPECT_EQ(tag->spec.path, "train");

  auto byid = lake_->Resolve("fm@" + c1.commit.ToHex().substr(0, 10));
  ASSERT_TRUE(byid.ok()) << byid.status().ToString();
  EXPECT_EQ(byid->commit.id, c1.commit);
  EXPECT_FALSE(byid->ref);
  EXPECT_EQ(byid->commit.message, "import");
  ASSERT_EQ(byid->commit.parents.size(), 1u);

  auto unknown = lake_->Resolve("fm@nosuch");
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("nosuch"), std::string::npos);
  EXPECT_EQ(lake_->Resolve("fm@abcdef0123").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lake_->Resolve("nods@main").status().code(), StatusCode::kNotFound);
  EXPECT_NE(lake_->Resolve("nods@main").status().message().find("no dataset 'nods'"), std::string::npos);

  // Ambiguous: two commit records whose ids share a prefix, put into the same catalog.
  {
    catalog::SqliteCatalogOptions co;
    co.path = CatalogPath();
    co.audit_key = repo_->objects()->audit_key();
    auto cat = catalog::OpenSqliteCatalog(co);
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    for (const char* hex : {"abcd01", "abcd02"}) {
      catalog::CommitRecord rec;
      rec.id = *ObjectId::FromHex(std::string(hex) + std::string(58, '0'));
      rec.dataset = "fm";
      rec.tree = c1.tree;
      ASSERT_TRUE((*cat)->PutCommit(rec).ok());
    }
  }
  auto ambiguous = lake_->Resolve("fm@abcd");
  EXPECT_EQ(ambiguous.status().code(), StatusCode::kInvalidArgument) << ambiguous.status().ToString();
  EXPECT_EQ(lake_->Resolve("fm@abc").status().code(), StatusCode::kNotFound);  // too short for an id
}

TEST_F(LakeTest, CommitLogShowLsCatCheckoutRoundTrip) {
  CommitOptions o;
  o.message = "import\nwith details";
  o.meta = {{"source", "unit-test"}, {"rows", "5"}};
  auto r = lake_->CommitDirectory("fm@main", src_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->put.files, 5u);

  auto log = lake_->Log("fm@main", 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);  // the commit and the dataset's root commit
  EXPECT_EQ((*log)[0].id, r->commit);
  EXPECT_EQ((*log)[0].message, "import\nwith details");
  EXPECT_EQ((*log)[0].meta.at("source"), "unit-test");
  EXPECT_EQ((*log)[0].author, "tester@host");
  EXPECT_TRUE((*log)[1].parents.empty());

  auto show = lake_->Resolve("fm@main");
  ASSERT_TRUE(show.ok());
  EXPECT_EQ(show->commit.meta.at("rows"), "5");
  EXPECT_GT(show->commit.time_ns, 0);

  auto ls = lake_->List("fm@main", false);
  ASSERT_TRUE(ls.ok());
  std::vector<std::string> names;
  for (const auto& e : *ls) names.push_back(e.path);
  EXPECT_EQ(names, (std::vector<std::string>{"a.txt", "big.bin", "test", "train"}));
  auto sub = lake_->List("fm@main:train", false);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->size(), 2u);

  EXPECT_EQ(ReadAll(*lake_, "fm@main:a.txt"), "alpha\n");
  EXPECT_EQ(ReadAll(*lake_, "fm@main:train/y.bin"), ReadFile(src_ + "/train/y.bin"));
  EXPECT_EQ(lake_->OpenFile("fm@main").status().code(), StatusCode::kInvalidArgument);

  // Sparse checkout: only the path asked for.
  std::string dest = dir_ / "out";
  uint64_t bytes = 0;
  ASSERT_TRUE(lake_->Checkout("fm@main:train", dest, &bytes).ok());
  EXPECT_EQ(bytes, 110000u);
  EXPECT_EQ(ReadFile(dest + "/train/x.bin"), ReadFile(src_ + "/train/x.bin"));
  EXPECT_FALSE(fs::exists(dest + "/test"));
  EXPECT_FALSE(fs::exists(dest + "/a.txt"));
  std::string full = dir_ / "full";
  ASSERT_TRUE(lake_->Checkout("fm@main", full).ok());
  EXPECT_EQ(testing::DiffTrees(testing::SnapshotTree(src_, false), testing::SnapshotTree(full, false)), "");
}

TEST_F(LakeTest, UnchangedFilesAreNotRead) {
  auto first = CommitDir();
  EXPECT_EQ(first.put.bytes, 480006u);
  // Nothing touched: every file is recognised by size and mtime, nothing is read, no commit.
  auto again = CommitDir("fm@main", "again");
  EXPECT_TRUE(again.unchanged);
  EXPECT_EQ(again.put.bytes, 0u);
  EXPECT_EQ(again.put.unchanged_files, 5u);
  EXPECT_EQ(again.commit, first.commit);
  // One file changed: only it is read.
  WriteFile(src_ + "/train/x.bin", RandomBytes(9, 50000));
  Age(src_);
  auto third = CommitDir("fm@main", "third");
  EXPECT_FALSE(third.unchanged);
  EXPECT_EQ(third.put.bytes, 50000u);
  EXPECT_EQ(third.put.unchanged_files, 4u);
  EXPECT_EQ(third.parent, first.commit);
}

TEST_F(LakeTest, ChangeListRewritesOnlyTreesOnThePath) {
  WriteFile(src_ + "/deep/a/b/c/leaf.txt", "leaf");
  for (int i = 0; i < 20; ++i) WriteFile(src_ + "/wide/f" + std::to_string(i), RandomBytes(100 + i, 1000));
  Age(src_);
  auto base = CommitDir();
  std::string newfile = dir_ / "new.txt";
  WriteFile(newfile, "brand new");

  CommitOptions o;
  o.message = "add one file deep down";
  auto r = lake_->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "deep/a/b/c/new.txt", newfile, ""}}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // root, deep, a, b, c: O(depth), independent of the 30 other files.
  EXPECT_EQ(r->trees_written, 5u);
  EXPECT_EQ(r->put.bytes, 9u);
  EXPECT_EQ(ReadAll(*lake_, "fm@main:deep/a/b/c/new.txt"), "brand new");
  EXPECT_EQ(ReadAll(*lake_, "fm@main:deep/a/b/c/leaf.txt"), "leaf");

  auto d = lake_->Diff("fm@" + base.commit.ToHex(), "fm@main");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->entries.size(), 1u);
  EXPECT_EQ(d->entries[0].kind, DiffEntry::Kind::kAdded);
  EXPECT_EQ(d->entries[0].path, "deep/a/b/c/new.txt");

  // Move (no content read) and remove, in one commit.
  auto mv = lake_->CommitChanges("fm@main",
                                 {Change{Change::Kind::kMove, "moved/big.bin", "", "big.bin"},
                                  Change{Change::Kind::kRemove, "wide/f3", "", ""}},
                                 o);
  ASSERT_TRUE(mv.ok()) << mv.status().ToString();
  EXPECT_EQ(mv->put.bytes, 0u);
  EXPECT_EQ(ReadAll(*lake_, "fm@main:moved/big.bin"), ReadFile(src_ + "/big.bin"));
  EXPECT_EQ(lake_->OpenFile("fm@main:big.bin").status().code(), StatusCode::kNotFound);
  auto wide = lake_->List("fm@main:wide", false);
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->size(), 19u);

  auto missing = lake_->CommitChanges("fm@main", {Change{Change::Kind::kRemove, "no/such", "", ""}}, o);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto through_file = lake_->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "a.txt/x", newfile, ""}}, o);
  EXPECT_EQ(through_file.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(LakeTest, DiffAddRemoveModifyRenameAndSkipsEqualSubtrees) {
  for (int d = 0; d < 10; ++d) {
    for (int f = 0; f < 5; ++f) WriteFile(src_ + "/dirs/d" + std::to_string(d) + "/f" + std::to_string(f), RandomBytes(d * 10 + f, 2000));
  }
  Age(src_);
  auto a = CommitDir();
  fs::rename(src_ + "/big.bin", src_ + "/renamed.bin");             // rename
  fs::remove(src_ + "/test/z.bin");                                   // remove
  WriteFile(src_ + "/train/x.bin", RandomBytes(77, 51000));           // modify
  WriteFile(src_ + "/dirs/d4/new.txt", "new");                        // add, deep in one of 10 dirs
  Age(src_);
  auto b = CommitDir("fm@main", "changes");

  auto d = lake_->Diff("fm@" + a.commit.ToHex(), "fm@main");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::vector<std::string> got;
  for (const auto& e : d->entries) {
    got.push_back(std::string(DiffKindName(e.kind)) + " " + (e.old_path.empty() ? "" : e.old_path + "->") + e.path);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"added dirs/d4/new.txt", "renamed big.bin->renamed.bin",
                                           "removed test/z.bin", "modified train/x.bin"}));
  for (const auto& e : d->entries) {
    if (e.kind == DiffEntry::Kind::kModified) {
      EXPECT_EQ(e.old_size, 50000u);
      EXPECT_EQ(e.new_size, 51000u);
    }
  }
  // Nine of the ten dirs/ subtrees are equal and skipped without being read.
  EXPECT_GE(d->subtrees_skipped, 9u);
  EXPECT_LE(d->trees_read, 2u * 5u);

  auto only = lake_->Diff("fm@" + a.commit.ToHex(), "fm@main", "train");
  ASSERT_TRUE(only.ok());
  ASSERT_EQ(only->entries.size(), 1u);
  EXPECT_EQ(only->entries[0].path, "train/x.bin");

  auto same = lake_->Diff("fm@main", "fm@main");
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->entries.empty());
  EXPECT_EQ(same->trees_read, 0u);
}

TEST_F(LakeTest, ResetAndRevert) {
  auto c1 = CommitDir();
  WriteFile(src_ + "/a.txt", "changed");
  Age(src_);
  auto c2 = CommitDir("fm@main", "change a");
  WriteFile(src_ + "/other.txt", "other");
  Age(src_);
  auto c3 = CommitDir("fm@main", "add other");

  // Revert c2: a.txt goes back, other.txt (from c3) stays.
  auto rv = lake_->Revert("fm@main", "fm@" + c2.commit.ToHex().substr(0, 12), {});
  ASSERT_TRUE(rv.ok()) << rv.status().ToString();
  EXPECT_EQ(rv->parent, c3.commit);
  EXPECT_EQ(ReadAll(*lake_, "fm@main:a.txt"), "alpha\n");
  EXPECT_EQ(ReadAll(*lake_, "fm@main:other.txt"), "other");
  auto head = lake_->Resolve("fm@main");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->commit.meta.at("revert"), c2.commit.ToHex());
  EXPECT_EQ(head->commit.message.rfind("Revert \"change a\"", 0), 0u);
  // Reverting it again conflicts: a.txt is no longer what c2 made it.
  EXPECT_EQ(lake_->Revert("fm@main", "fm@" + c2.commit.ToHex(), {}).status().code(), StatusCode::kFailedPrecondition);

  // Reset: the branch points at c1 again; nothing is deleted (c3 still resolves).
  auto old = lake_->Reset("fm@main", "fm@" + c1.commit.ToHex());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(*old, rv->commit);
  EXPECT_EQ(Head(), c1.commit);
  EXPECT_EQ(ReadAll(*lake_, "fm@" + c3.commit.ToHex() + ":other.txt"), "other");
  auto audit = lake_->AuditLog(1, 1000);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->back().action, "reset");
  EXPECT_EQ(audit->back().target, "fm@main");
  EXPECT_NE(audit->back().details.find(c1.commit.ToHex()), std::string::npos);

  // Tags never move.
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  EXPECT_EQ(lake_->Reset("fm@v1", "fm@" + c3.commit.ToHex()).status().code(), StatusCode::kFailedPrecondition);
}

// Two lakes on one repository commit on the same head: one wins, the other gets kAborted with
// "moved from" and its objects are simply unreferenced; with retry it rebases when the two
// changes touch different paths.
TEST_F(LakeTest, ConcurrentCommitsOneWinsOtherAbortsAndRetryRebases) {
  CommitDir();
  auto a = OpenLake(repo_.get());
  auto b = OpenLake(repo_.get());
  ASSERT_TRUE(a && b);
  std::string fa = dir_ / "fa", fb = dir_ / "fb";
  WriteFile(fa, "from a");
  WriteFile(fb, "from b");
  ObjectId h = Head();
  CommitOptions o;
  o.message = "race";
  o.expected_head = h;  // both read the head before either swapped

  auto won = a->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "train/a.txt", fa, ""}}, o);
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  auto lost = b->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "test/b.txt", fb, ""}}, o);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kAborted);
  EXPECT_NE(lost.status().message().find("moved from " + h.Short() + " to " + won->commit.Short()), std::string::npos)
      << lost.status().message();
  EXPECT_EQ(Head(), won->commit);  // nothing lost: the winner's commit stands

  // --retry: b's change touches test/, a's touched train/: rebased onto a's commit.
  o.retry = true;
  auto rebased = b->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "test/b.txt", fb, ""}}, o);
  ASSERT_TRUE(rebased.ok()) << rebased.status().ToString();
  EXPECT_EQ(rebased->attempts, 2);
  EXPECT_EQ(rebased->parent, won->commit);
  EXPECT_EQ(ReadAll(*lake_, "fm@main:train/a.txt"), "from a");
  EXPECT_EQ(ReadAll(*lake_, "fm@main:test/b.txt"), "from b");
  EXPECT_EQ(ReadAll(*lake_, "fm@main:test/z.bin"), ReadFile(src_ + "/test/z.bin"));

  // Overlapping changes are not rebased: the caller must decide.
  o.expected_head = won->commit;  // stale again
  auto clash = b->CommitChanges("fm@main", {Change{Change::Kind::kAdd, "test/b.txt", fa, ""}}, o);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), StatusCode::kAborted);
  EXPECT_NE(clash.status().message().find("both changes touch 'test/b.txt'"), std::string::npos)
      << clash.status().message();
  EXPECT_EQ(Head(), rebased->commit);
}

TEST_F(LakeTest, ProtectedRefsCannotBeDeleted) {
  CommitDir();
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  ASSERT_TRUE(lake_->CreateRef("fm@dev", "fm@main", RefType::kBranch).ok());
  EXPECT_EQ(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(lake_->ProtectRef("fm@v1", true).ok());
  ASSERT_TRUE(lake_->ProtectRef("fm@dev", true).ok());
  Status s = lake_->DeleteRef("fm@v1");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("protected"), std::string::npos);
  EXPECT_EQ(lake_->DeleteRef("fm@dev").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(lake_->DeleteDataset("fm").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(lake_->ProtectRef("fm@dev", false).ok());
  EXPECT_TRUE(lake_->DeleteRef("fm@dev").ok());
  EXPECT_EQ(lake_->Resolve("fm@dev").status().code(), StatusCode::kNotFound);
  auto refs = lake_->ListRefs("fm");
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[1].name, "v1");
  EXPECT_TRUE((*refs)[1].is_protected);
}

TEST_F(LakeTest, AuditLogRecordsEveryChangeAndVerifies) {
  CommitDir();
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  ASSERT_TRUE(lake_->RecordEvent("key.add", "key 1234", R"({"label":"ci"})").ok());
  auto log = lake_->AuditLog(1, 100);
  ASSERT_TRUE(log.ok());
  std::vector<std::string> actions;
  for (const auto& e : *log) actions.push_back(e.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"dataset.create", "branch.create", "commit", "tag.create", "key.add"}));
  for (const auto& e : *log) EXPECT_EQ(e.actor, "tester@host");
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  EXPECT_EQ(check->entries, 5u);
  EXPECT_EQ(check->recorded_seq, 5u);  // every entry is mirrored in the repository
}

TEST_F(LakeTest, CatalogDeletedIsRebuiltWithSameRefsAndLog) {
  CommitDir();
  ASSERT_TRUE(lake_->CreateRef("fm@v1", "fm@main", RefType::kTag).ok());
  ASSERT_TRUE(lake_->ProtectRef("fm@v1", true).ok());
  WriteFile(src_ + "/a.txt", "two");
  Age(src_);
  CommitDir("fm@main", "second");
  ASSERT_TRUE(lake_->CreateDataset("other").ok());
  ASSERT_TRUE(lake_->CreateDataset("gone").ok());
  ASSERT_TRUE(lake_->DeleteDataset("gone").ok());
  auto refs_before = lake_->ListRefs("fm");
  auto log_before = lake_->Log("fm@main", 100);
  ASSERT_TRUE(refs_before.ok() && log_before.ok());
  lake_.reset();

  RemoveCatalog();
  auto refused = Lake::Open(repo_.get());
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find("catalog rebuild"), std::string::npos) << refused.status().message();

  auto report = Lake::RebuildCatalog(repo_.get());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->warnings.empty()) << report->warnings[0];
  EXPECT_EQ(report->datasets, 2u);
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  auto refs = lake_->ListRefs("fm");
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), refs_before->size());
  for (size_t i = 0; i < refs->size(); ++i) {
    EXPECT_EQ((*refs)[i].name, (*refs_before)[i].name);
    EXPECT_EQ((*refs)[i].target, (*refs_before)[i].target);
    EXPECT_EQ((*refs)[i].is_protected, (*refs_before)[i].is_protected);
  }
  auto log = lake_->Log("fm@main", 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), log_before->size());
  for (size_t i = 0; i < log->size(); ++i) {
    EXPECT_EQ((*log)[i].id, (*log_before)[i].id);
    EXPECT_EQ((*log)[i].message, (*log_before)[i].message);
  }
  auto ds = lake_->ListDatasets();
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(*ds, (std::vector<std::string>{"fm", "other"}));
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  // Work goes on; a second loss and rebuild replays both chains.
  WriteFile(src_ + "/a.txt", "three");
  Age(src_);
  auto third = CommitDir("fm@main", "third");
  lake_.reset();
  RemoveCatalog();
  ASSERT_TRUE(Lake::RebuildCatalog(repo_.get()).ok());
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  EXPECT_EQ(Head(), third.commit);
  auto prefix = lake_->Resolve("fm@" + (*log_before)[1].id.ToHex().substr(0, 8));
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
}

TEST_F(LakeTest, CatalogReplacedByOlderCopyIsDetected) {
  CommitDir();
  lake_.reset();
  std::string saved = dir_ / "old-catalog.db";
  fs::copy_file(CatalogPath(), saved);  // closed: the WAL is checkpointed into the file
  lake_ = OpenLake(repo_.get());
  WriteFile(src_ + "/a.txt", "newer");
  Age(src_);
  CommitDir("fm@main", "newer");
  lake_.reset();
  RemoveCatalog();
  fs::copy_file(saved, CatalogPath());

  auto opened = Lake::Open(repo_.get());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kCorruption);
  EXPECT_NE(opened.status().message().find("older copy"), std::string::npos) << opened.status().message();
  // `audit verify` opens anyway and names the problem.
  LakeOptions o;
  o.allow_inconsistent_catalog = true;
  auto lake = OpenLake(repo_.get(), o);
  ASSERT_TRUE(lake);
  auto check = lake->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->ok);
  EXPECT_EQ(check->problem, "truncated");
}

TEST_F(LakeTest, CatalogOfAnotherChainIsDetected) {
  CommitDir();
  lake_.reset();
  // A catalog made afresh (an attacker's, or another repository's) with as many entries.
  RemoveCatalog();
  {
    auto fresh = Lake::Open(repo_.get());
    // The repository has records, and the catalog is missing: refused.
    ASSERT_FALSE(fresh.ok());
  }
  ASSERT_TRUE(Lake::RebuildCatalog(repo_.get()).ok());
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok() && check->ok);
}

TEST_F(LakeTest, UnrecordedCatalogChangeIsRecordedOnNextOpen) {
  // A process that died between the catalog's swap and its record: simulated by deleting the
  // newest record file, as if it had never been written.
  CommitDir();
  lake_.reset();
  std::string records = dir_ / "repo/records";
  ASSERT_TRUE(fs::exists(records)) << "records directory layout changed";
  fs::path newest;
  fs::file_time_type t{};
  size_t count = 0;
  for (const auto& e : fs::recursive_directory_iterator(records)) {
    if (!e.is_regular_file()) continue;
    ++count;
    if (e.last_write_time() >= t) t = e.last_write_time(), newest = e.path();
  }
  ASSERT_GT(count, 0u);
  fs::remove(newest);
  lake_ = OpenLake(repo_.get());  // catches up
  ASSERT_TRUE(lake_);
  size_t after = 0;
  for (const auto& e : fs::recursive_directory_iterator(records)) after += e.is_regular_file();
  EXPECT_EQ(after, count);
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  EXPECT_EQ(check->recorded_seq, check->head_seq);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// Opening reads the newest ref event only (its name carries (epoch, seq)): an older record
// that is damaged goes unnoticed until something reads every record (a rebuild).
TEST_F(LakeTest, OpenReadsOnlyTheNewestRecord) {
  CommitDir();
  ASSERT_TRUE(lake_->CreateRef("fm@b1", "fm@main", RefType::kBranch).ok());
  ASSERT_TRUE(lake_->CreateRef("fm@b2", "fm@main", RefType::kBranch).ok());
  lake_.reset();
  auto names = repo_->objects()->RecordNames();
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  ASSERT_GE(names->size(), 3u);
  ASSERT_TRUE(version::ParseRefEventName(names->front()).has_value()) << names->front();
  std::string oldest = dir_ / ("repo/records/" + names->front());
  std::string bytes = strata::testing::ReadFile(oldest);
  bytes[bytes.size() / 2] ^= 1;
  strata::testing::WriteFile(oldest, bytes);
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  lake_.reset();
  auto rebuilt = Lake::RebuildCatalog(repo_.get());
  EXPECT_EQ(rebuilt.status().code(), StatusCode::kCorruption);
}

// Records written before names carried their key are still read (all of them) at open.
TEST_F(LakeTest, RecordsWithoutKeyedNamesAreStillRead) {
  CommitDir();
  lake_.reset();
  auto names = repo_->objects()->RecordNames();
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  for (const auto& name : *names) {
    // Rewrite every event under a random (keyless) name, as an older strata wrote it.
    auto plain = repo_->objects()->ReadRecord(name);
    ASSERT_TRUE(plain.ok());
    ASSERT_TRUE(repo_->objects()->AppendRecord(*plain).ok());
    fs::remove(dir_ / ("repo/records/" + name));
  }
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  EXPECT_EQ(check->recorded_seq, check->head_seq);
  auto after = repo_->objects()->RecordNames();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), names->size());  // nothing re-recorded
  // New changes are recorded under keyed names on top.
  ASSERT_TRUE(lake_->CreateRef("fm@b1", "fm@main", RefType::kBranch).ok());
  lake_.reset();
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok() && check->ok);
}

// An open merges kRecordMergeWidth or more one-event records into a segment and deletes them;
// everything that reads records (open, audit verify, catch-up, rebuild) reads segments too.
TEST_F(LakeTest, ManySmallRecordsAreMergedIntoSegments) {
  CommitDir();
  const int kRefs = 2 * static_cast<int>(version::kRecordMergeWidth) + 5;
  for (int i = 0; i < kRefs; ++i) {
    ASSERT_TRUE(lake_->CreateRef("fm@b" + std::to_string(i), "fm@main", RefType::kBranch).ok());
    if (i % 20 == 19) lake_ = OpenLake(repo_.get());  // merges at open, as each command would
  }
  lake_ = OpenLake(repo_.get());
  auto names = repo_->objects()->RecordNames();
  ASSERT_TRUE(names.ok());
  size_t segments = 0;
  for (const auto& n : *names) {
    auto range = version::ParseRefEventName(n);
    ASSERT_TRUE(range.has_value()) << n;
    if (range->size() > 1) ++segments;
  }
  EXPECT_GE(segments, 1u);
  EXPECT_LT(names->size(), version::kRecordMergeWidth + 2 * segments);
  auto check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  EXPECT_EQ(check->recorded_seq, check->head_seq);

  // A change the catalog has but no record (a crash between the two) is still caught up.
  catalog::SqliteCatalogOptions co;
  co.path = dir_ / "repo/catalog/catalog.db";
  co.audit_key = repo_->objects()->audit_key();
  {
    auto cat = catalog::OpenSqliteCatalog(co);
    ASSERT_TRUE(cat.ok());
    ASSERT_TRUE((*cat)->AppendAudit(catalog::AuditEntry{"t", "note", "", "{}"}).ok());
  }
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  check = lake_->VerifyAudit();
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << check->message;
  EXPECT_EQ(check->recorded_seq, check->head_seq);

  // The catalog rebuilt from the records (segments and single events) has every branch.
  lake_.reset();
  auto rebuilt = Lake::RebuildCatalog(repo_.get());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  lake_ = OpenLake(repo_.get());
  ASSERT_TRUE(lake_);
  auto refs = lake_->ListRefs("fm");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->size(), static_cast<size_t>(kRefs) + 1);
}

TEST(RecordsTest, SegmentNamesAndContent) {
  version::RecordRange r{2, 17, 40};
  std::string name = version::RefSegmentKey(r) + "-00ff";
  auto parsed = version::ParseRefEventName(name);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->epoch, 2u);
  EXPECT_EQ(parsed->first, 17u);
  EXPECT_EQ(parsed->last, 40u);
  EXPECT_FALSE(version::ParseRefEventName("g0000000000000002s0000000000000028t0000000000000011-x"));  // last < first
  auto single = version::ParseRefEventName(version::RefEventKey(1, 9) + "-ab");
  ASSERT_TRUE(single.has_value());
  EXPECT_EQ(single->size(), 1u);

  std::vector<version::RefEvent> events(3);
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].epoch = 2;
    events[i].seq = 17 + i;
    events[i].op = std::string(version::kOpEvent);
  }
  auto decoded = version::DecodeRefEvents(version::EncodeRefSegment(events));
  ASSERT_TRUE(decoded.ok());
  ASSERT_EQ(decoded->size(), 3u);
  EXPECT_EQ((*decoded)[2].seq, 19u);
  events[2].seq = 30;  // a gap: the name's range would claim entries the segment lacks
  EXPECT_EQ(version::DecodeRefEvents(version::EncodeRefSegment(events)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(version::DecodeRefEvents(R"({"type":"strata.ref-events","v":1,"events":[]})").status().code(),
            StatusCode::kCorruption);
  EXPECT_TRUE(version::DecodeRefEvents(R"({"type":"other"})")->empty());
}

TEST(RecordsTest, SeqSetMergesRanges) {
  version::SeqSet s;
  s.Add(5, 5);
  s.Add(7, 9);
  EXPECT_TRUE(s.Contains(5));
  EXPECT_FALSE(s.Contains(6));
  EXPECT_EQ(s.FirstMissing(1), 1u);
  EXPECT_EQ(s.FirstMissing(5), 6u);
  EXPECT_EQ(s.FirstMissing(8), 10u);
  s.Add(6, 6);  // joins [5,5] and [7,9]
  EXPECT_EQ(s.FirstMissing(5), 10u);
  s.Add(1, 20);
  EXPECT_EQ(s.min(), 1u);
  EXPECT_EQ(s.max(), 20u);
  EXPECT_EQ(s.FirstMissing(3), 21u);
}

}  // namespace
}  // namespace strata
