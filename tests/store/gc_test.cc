// Garbage collection (ObjectStore::CollectGarbage): what no root reaches goes, what a root
// reaches restores byte for byte, and a crash at any point loses nothing live.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "base/endian.h"
#include "base/fault_env.h"
#include "store/lock.h"
#include "store/object_store.h"
#include "store/repository_impl.h"
#include "store/tree_pages.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::ExpectVerifies;
using strata::testing::RandomBytes;
using strata::testing::TempDir;
using strata::testing::WriteFile;

constexpr char kPass[] = "pw";

InitOptions SmallInit() { return strata::testing::FastInitOptions(); }

OpenOptions Options(Env* env = Env::Default()) {
  OpenOptions o;
  o.env = env;
  o.threads = 1;  // one pack at a time: which objects share a pack is predictable
  return o;
}

std::unique_ptr<Repository> OpenRepo(const std::string& dir, Env* env = Env::Default()) {
  auto r = Repository::Open(dir, kPass, Options(env));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

store::GcOptions Gc(std::vector<ObjectId> roots = {}) {
  store::GcOptions o;
  o.roots = std::move(roots);
  o.grace_seconds = 0;
  return o;
}

class StringSource : public SequentialFile {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    *got = std::min(n, data_.size() - pos_);
    std::memcpy(dst, data_.data() + pos_, *got);
    pos_ += *got;
    return Status::OK();
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_dir_ = dir_ / "repo";
    auto repo = Repository::Create(repo_dir_, kPass, SmallInit(), Options());
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
  }

  store::ObjectStore* store() { return repo_->objects(); }

  // The repository's files, less the local index cache (and the local state directory holding
  // it): derived state that any open or gc may rewrite (docs/FORMAT.md, "Index cache")
  // without changing the repository.
  std::map<std::string, uint64_t> RepoFiles() {
    auto files = strata::testing::ListTree(repo_dir_);
    for (auto it = files.begin(); it != files.end();) {
      if (it->first == "catalog" || it->first.rfind("catalog/index.cache", 0) == 0) it = files.erase(it);
      else ++it;
    }
    return files;
  }

  // A directory of `files` random files of `size` bytes each, seeded by `seed`.
  std::string MakeDir(const std::string& name, int files, size_t size, uint64_t seed) {
    std::string d = dir_ / name;
    for (int i = 0; i < files; ++i) WriteFile(d + "/f" + std::to_string(i), RandomBytes(seed * 1000 + i, size));
    return d;
  }

  // Puts `path` (a recorded put root); returns the tree id and the root's name.
  ObjectId Put(const std::string& path, std::string* root_name = nullptr) {
    auto before = repo_->Roots();
    EXPECT_TRUE(before.ok());
    auto id = repo_->PutPaths({path});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    auto after = repo_->Roots();
    EXPECT_TRUE(after.ok());
    for (const auto& r : *after) {
      bool old = std::any_of(before->begin(), before->end(), [&](const RootInfo& b) { return b.name == r.name; });
      if (!old && root_name) *root_name = r.name;
    }
    return *id;
  }

  // What the layer above will do with a ref it deletes: the put root goes away.
  void RemoveRoot(const std::string& name) { ASSERT_TRUE(fs::remove(repo_dir_ + "/roots/" + name)); }

  uint64_t StoredBytes() {
    uint64_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(repo_dir_ + "/packs")) {
      if (e.is_regular_file()) total += e.file_size();
    }
    return total;
  }

  std::vector<std::string> PackFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(repo_dir_ + "/packs")) {
      if (e.is_regular_file()) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Restores tree `id` (the content of directory `src`) and expects it byte for byte.
  void ExpectRestores(Repository* repo, const ObjectId& id, const std::string& src, const std::string& sub = "") {
    strata::testing::ExpectRestores(repo, id, src, dir_ / ("out" + std::to_string(restores_++)), sub);
  }

  // Puts the contents of `keep` and `drop` through one batch, so their objects share packs.
  // Returns the two directory tree ids; no put root names them.
  std::pair<ObjectId, ObjectId> PutShared(const std::string& keep, const std::string& drop) {
    auto batch = store()->NewBatch();
    EXPECT_TRUE(batch.ok());
    auto a = (*batch)->PutPath(keep, "keep", nullptr);
    auto b = (*batch)->PutPath(drop, "drop", nullptr);
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE((*batch)->Commit().ok());
    return {a->subtree, b->subtree};
  }

  TempDir dir_;
  std::string repo_dir_;
  std::unique_ptr<Repository> repo_;
  int restores_ = 0;
};

TEST_F(GcTest, DataOfARemovedRootDisappears) {
  std::string a = MakeDir("a", 3, 200'000, 1);
  std::string b = MakeDir("b", 4, 500'000, 2);
  std::string a_root, b_root;
  ObjectId a_id = Put(a, &a_root);
  ObjectId b_id = Put(b, &b_root);
  const std::string stream = RandomBytes(3, 700'000);
  StringSource in(stream);
  auto stream_id = repo_->PutStream(&in);
  ASSERT_TRUE(stream_id.ok());
  auto b_chunks = repo_->List(b_id, "b", false);
  ASSERT_TRUE(b_chunks.ok());

  // Nothing is dead yet: gc changes nothing.
  auto files_before = RepoFiles();
  auto first = store()->CollectGarbage(Gc());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->objects_live, first->objects_total);
  EXPECT_EQ(first->packs_deleted + first->packs_repacked, 0u);
  EXPECT_EQ(RepoFiles(), files_before);

  const uint64_t before = StoredBytes();
  RemoveRoot(b_root);
  auto report = store()->CollectGarbage(Gc());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_LT(report->objects_live, report->objects_total);
  EXPECT_GT(report->packs_deleted, 0u);
  EXPECT_GE(report->bytes_freed, 2'000'000u);
  EXPECT_EQ(StoredBytes() + report->bytes_freed, before);
  EXPECT_FALSE(store()->Contains(b_id));
  EXPECT_FALSE(repo_->OpenFile(b_id, "b/f0").ok());

  // The kept put roots (a tree and a stream) read back, also after reopening.
  ExpectRestores(repo_.get(), a_id, a, "a");
  repo_.reset();
  auto repo = OpenRepo(repo_dir_);
  ASSERT_TRUE(repo);
  EXPECT_FALSE(repo->objects()->Contains(b_id));
  ExpectRestores(repo.get(), a_id, a, "a");
  auto reader = repo->OpenFile(*stream_id, "");
  ASSERT_TRUE(reader.ok());
  std::string back(stream.size(), '\0');
  size_t got = 0;
  ASSERT_TRUE((*reader)->ReadAt(0, back.size(), reinterpret_cast<uint8_t*>(back.data()), &got).ok());
  EXPECT_EQ(got, stream.size());
  EXPECT_TRUE(back == stream);
  ExpectVerifies(repo.get());
}

TEST_F(GcTest, PassedRootsKeepCommitsTreesAndEveryPageOfLargeDirectories) {
  // A directory too large for one tree object: an index page over leaf pages.
  std::string big = dir_ / "big";
  for (int i = 0; i < 3000; ++i) WriteFile(big + "/n" + std::to_string(i), std::to_string(i) + "\n");
  WriteFile(big + "/data", RandomBytes(5, 300'000));
  std::string other = MakeDir("other", 2, 400'000, 6);

  ObjectId tree, commit, dead_tree, dead_commit;
  {
    auto batch = store()->NewBatch();
    ASSERT_TRUE(batch.ok());
    auto e = (*batch)->PutPath(big, "big", nullptr);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    tree = e->subtree;
    commit = (*batch)->Put(store::ObjectKind::kCommit, "commit of big: tree " + tree.ToHex());
    auto d = (*batch)->PutPath(other, "other", nullptr);
    ASSERT_TRUE(d.ok());
    dead_tree = d->subtree;
    dead_commit = (*batch)->Put(store::ObjectKind::kCommit, "commit of other");
    ASSERT_TRUE((*batch)->Commit().ok());
  }
  // The directory really is paged.
  auto impl = dynamic_cast<store::RepositoryImpl*>(repo_.get());
  auto root_bytes = impl->ReadObject(tree, store::ObjectKind::kTree);
  ASSERT_TRUE(root_bytes.ok());
  ASSERT_TRUE(store::IsTreeIndex(strata::AsBytes(*root_bytes)));

  // Threshold 0: a pack with any dead byte is rewritten, so a page gc failed to mark is lost.
  store::GcOptions o = Gc({commit, tree});
  o.repack_threshold = 0;
  auto report = store()->CollectGarbage(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GT(report->packs_repacked + report->packs_deleted, 0u);
  EXPECT_FALSE(store()->Contains(dead_tree));
  EXPECT_FALSE(store()->Contains(dead_commit));

  repo_.reset();
  auto repo = OpenRepo(repo_dir_);
  ASSERT_TRUE(repo);
  auto bytes = repo->objects()->Read(commit, store::ObjectKind::kCommit);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(*bytes, "commit of big: tree " + tree.ToHex());
  auto listed = repo->objects()->ReadTree(tree);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->entries.size(), 3001u);
  ExpectRestores(repo.get(), tree, big);
  ExpectVerifies(repo.get());

  // Without the roots the same objects are garbage.
  auto again = repo->objects()->CollectGarbage(Gc());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->objects_live, 0u);
  EXPECT_FALSE(repo->objects()->Contains(commit));
  EXPECT_FALSE(repo->objects()->Contains(tree));
  EXPECT_TRUE(PackFiles().empty());
}

TEST_F(GcTest, PartiallyDeadPacksAreRepacked) {
  std::string keep = MakeDir("keep", 2, 200'000, 7);
  std::string drop = MakeDir("drop", 3, 400'000, 8);
  auto [keep_id, drop_id] = PutShared(keep, drop);

  // Below the threshold nothing is rewritten (packs holding only drop's data still go).
  store::GcOptions lazy = Gc({keep_id});
  lazy.repack_threshold = 0.99;
  auto none = store()->CollectGarbage(lazy);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->packs_repacked, 0u);
  EXPECT_EQ(none->bytes_rewritten, 0u);
  ExpectRestores(repo_.get(), keep_id, keep);

  const uint64_t before = StoredBytes();
  const auto packs_before = PackFiles();

  auto report = store()->CollectGarbage(Gc({keep_id}));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->packs_repacked, 1u);
  EXPECT_GT(report->bytes_rewritten, 400'000u);  // keep's content moved
  EXPECT_LT(report->bytes_rewritten, 1'000'000u);
  EXPECT_EQ(StoredBytes() + report->bytes_freed, before);
  EXPECT_LT(StoredBytes(), 600'000u);
  for (const auto& p : PackFiles()) {
    EXPECT_EQ(std::count(packs_before.begin(), packs_before.end(), p), 0) << "old pack " << p << " survived";
  }
  EXPECT_FALSE(store()->Contains(drop_id));
  EXPECT_TRUE(store()->Contains(keep_id));
  ExpectRestores(repo_.get(), keep_id, keep);
  ExpectVerifies(repo_.get());

  // A second run finds nothing left to do.
  auto again = store()->CollectGarbage(Gc({keep_id}));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->packs_deleted + again->packs_repacked, 0u);
  EXPECT_EQ(again->objects_live, again->objects_total);
  repo_.reset();
  auto repo = OpenRepo(repo_dir_);
  ASSERT_TRUE(repo);
  ExpectRestores(repo.get(), keep_id, keep);
}

TEST_F(GcTest, DryRunChangesNothingAndPredictsTheRealRun) {
  std::string keep = MakeDir("keep", 2, 200'000, 9);
  std::string drop = MakeDir("drop", 3, 400'000, 10);
  std::string gone = MakeDir("gone", 2, 300'000, 11);
  auto [keep_id, drop_id] = PutShared(keep, drop);
  std::string gone_root;
  Put(gone, &gone_root);
  RemoveRoot(gone_root);

  const auto files = RepoFiles();
  store::GcOptions o = Gc({keep_id});
  o.dry_run = true;
  auto dry = store()->CollectGarbage(o);
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_TRUE(dry->dry_run);
  EXPECT_EQ(RepoFiles(), files);
  EXPECT_TRUE(store()->Contains(drop_id));
  EXPECT_GT(dry->packs_deleted, 0u);
  EXPECT_GT(dry->packs_repacked, 0u);

  o.dry_run = false;
  auto real = store()->CollectGarbage(o);
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  EXPECT_FALSE(real->dry_run);
  EXPECT_EQ(real->objects_total, dry->objects_total);
  EXPECT_EQ(real->objects_live, dry->objects_live);
  EXPECT_EQ(real->packs_deleted, dry->packs_deleted);
  EXPECT_EQ(real->packs_repacked, dry->packs_repacked);
  EXPECT_EQ(real->bytes_rewritten, dry->bytes_rewritten);
  EXPECT_EQ(real->bytes_freed, dry->bytes_freed);
  ExpectRestores(repo_.get(), keep_id, keep);
  ExpectVerifies(repo_.get());
}

TEST_F(GcTest, GraceProtectsYoungPacks) {
  std::string b = MakeDir("b", 2, 300'000, 12);
  std::string b_root;
  ObjectId b_id = Put(b, &b_root);
  RemoveRoot(b_root);

  store::GcOptions o = Gc();
  o.grace_seconds = 3600;
  const auto files = RepoFiles();
  auto report = store()->CollectGarbage(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->objects_live, 0u);
  EXPECT_EQ(report->packs_deleted + report->packs_repacked, 0u);
  EXPECT_EQ(report->bytes_freed, 0u);
  EXPECT_EQ(RepoFiles(), files);
  EXPECT_TRUE(store()->Contains(b_id));

  // Two hours later the same packs go.
  for (const auto& p : PackFiles()) {
    fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::hours(2));
  }
  report = store()->CollectGarbage(o);
  ASSERT_TRUE(report.ok());
  EXPECT_GT(report->packs_deleted, 0u);
  EXPECT_FALSE(store()->Contains(b_id));
  EXPECT_TRUE(PackFiles().empty());
}

TEST_F(GcTest, MissingReachableObjectMakesGcRefuse) {
  std::string a = MakeDir("a", 2, 200'000, 13);
  std::string b = MakeDir("b", 2, 200'000, 14);
  std::string b_root;
  Put(b, &b_root);
  RemoveRoot(b_root);  // there is garbage to collect, which gc must not touch either
  ObjectId broken;
  {
    // A tree naming a chunk that was never stored.
    store::Tree t;
    store::TreeEntry e;
    e.name = "lost";
    e.size = 5;
    e.chunks.push_back({store()->Hash("never stored"), 5});
    t.entries.push_back(e);
    auto batch = store()->NewBatch();
    ASSERT_TRUE(batch.ok());
    broken = (*batch)->PutTree(t);
    ASSERT_TRUE((*batch)->Commit().ok());
  }
  const auto files = RepoFiles();
  auto report = store()->CollectGarbage(Gc({broken}));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kCorruption);
  EXPECT_NE(report.status().message().find("strata verify"), std::string::npos) << report.status().ToString();
  EXPECT_EQ(RepoFiles(), files);

  // A root that is not there at all is refused the same way.
  report = store()->CollectGarbage(Gc({store()->Hash("no such commit")}));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kCorruption);

  // So is a put root whose pack file vanished.
  ObjectId a_id = Put(a);
  auto loc = dynamic_cast<store::RepositoryImpl*>(repo_.get())->index_.Find(a_id);
  ASSERT_TRUE(loc);
  std::string victim = repo_dir_ + "/packs/" + loc->pack.substr(0, 2) + "/" + loc->pack;
  ASSERT_TRUE(fs::remove(victim));
  const auto files2 = RepoFiles();
  report = store()->CollectGarbage(Gc());
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kCorruption) << report.status().ToString();
  EXPECT_EQ(RepoFiles(), files2);
}

TEST_F(GcTest, RefusesWhileAWriterHoldsTheLock) {
  std::string b = MakeDir("b", 1, 300'000, 15);
  std::string b_root;
  ObjectId b_id = Put(b, &b_root);
  RemoveRoot(b_root);
  {
    auto batch = store()->NewBatch();  // a put in progress: a shared lock
    ASSERT_TRUE(batch.ok());
    auto report = store()->CollectGarbage(Gc());
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(report.status().message().find("locked"), std::string::npos) << report.status().ToString();
    EXPECT_TRUE(store()->Contains(b_id));
  }
  {
    // And while gc runs (it holds the exclusive lock), a put is refused.
    auto impl = dynamic_cast<store::RepositoryImpl*>(repo_.get());
    auto lock = store::RepositoryLock::Acquire(impl->backend_.get(), /*exclusive=*/true);
    ASSERT_TRUE(lock.ok());
    auto put = repo_->PutPaths({b});
    EXPECT_EQ(put.status().code(), StatusCode::kFailedPrecondition);
  }
  auto report = store()->CollectGarbage(Gc());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(store()->Contains(b_id));
}

TEST_F(GcTest, InvalidThresholdIsRejected) {
  store::GcOptions o = Gc();
  o.repack_threshold = 1.5;
  EXPECT_EQ(store()->CollectGarbage(o).status().code(), StatusCode::kInvalidArgument);
}

// A crash at every write of a gc: afterwards every live object reads back, verify passes, and
// the next gc finishes the job.
TEST_F(GcTest, CrashAtEveryWriteLosesNothingLive) {
  std::string a = MakeDir("a", 2, 150'000, 16);
  std::string gone = MakeDir("gone", 2, 250'000, 17);
  std::string keep = MakeDir("keep", 2, 200'000, 18);
  std::string drop = MakeDir("drop", 2, 450'000, 19);
  std::string gone_root;
  ObjectId a_id = Put(a);
  Put(gone, &gone_root);
  auto [keep_id, drop_id] = PutShared(keep, drop);
  RemoveRoot(gone_root);
  repo_.reset();
  const std::string template_dir = repo_dir_;

  int crashes = 0;
  for (int n = 0;; ++n) {
    SCOPED_TRACE("writes allowed before the fault: " + std::to_string(n));
    ASSERT_LT(n, 500) << "gc never completed";
    std::string dir = dir_ / ("crash" + std::to_string(n));
    fs::copy(template_dir, dir, fs::copy_options::recursive);
    FaultEnv env(Env::Default(), static_cast<uint64_t>(n));
    env.SetTornWrites(n % 2 == 1);
    Result<store::GcReport> gc = Status::Internal("not run");
    {
      auto repo = OpenRepo(dir, &env);
      ASSERT_TRUE(repo);
      env.FailWritesAfter(n);
      gc = repo->objects()->CollectGarbage(Gc({keep_id}));
    }
    const bool faulted = env.faults_injected() > 0;
    if (!faulted) {
      ASSERT_TRUE(gc.ok()) << gc.status().ToString();
    }
    ASSERT_TRUE(env.SimulateCrash().ok());
    // The crashed process is gone, so its lock (which it could not delete) would be stale.
    std::vector<fs::path> locks;
    for (const auto& l : fs::directory_iterator(dir + "/locks")) locks.push_back(l.path());
    for (const auto& l : locks) fs::remove(l);

    auto repo = OpenRepo(dir);
    ASSERT_TRUE(repo);
    ExpectVerifies(repo.get(), /*allow_warnings=*/true);  // leftovers at worst
    ExpectRestores(repo.get(), a_id, a, "a");
    ExpectRestores(repo.get(), keep_id, keep);
    // The next gc, without faults, completes the work and leaves nothing behind.
    auto after = repo->objects()->CollectGarbage(Gc({keep_id}));
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_FALSE(repo->objects()->Contains(drop_id));
    ExpectVerifies(repo.get());
    ExpectRestores(repo.get(), keep_id, keep);
    if (HasFatalFailure()) return;
    repo.reset();
    fs::remove_all(dir);
    if (!faulted) break;
    ++crashes;
  }
  // The loop covered the whole gc: lock, new packs, index, deletions.
  EXPECT_GT(crashes, 15);
}

}  // namespace
}  // namespace strata
