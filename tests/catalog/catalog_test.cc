#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/aead.h"
#include "testutil/testutil.h"

namespace strata::catalog {
namespace {

ObjectId IdOf(uint64_t n) {
  std::string s = "commit-" + std::to_string(n);
  ObjectId id;
  id.bytes = crypto::Sha256({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  return id;
}

// An id whose hex form starts with `prefix` (the rest from `n`), to build prefix collisions.
ObjectId IdWithPrefix(std::string_view prefix, uint64_t n) {
  std::string hex = std::string(prefix) + IdOf(n).ToHex().substr(prefix.size());
  return *ObjectId::FromHex(hex);
}

crypto::Key256 TestKey(uint8_t first) {
  crypto::Key256 key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(first + i);
  return key;
}

AuditEntry By(std::string actor) { return AuditEntry{std::move(actor), "", "", ""}; }

// Runs SQL on the database file directly, bypassing the catalog: an attacker's edit.
void Tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << " in: " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  SqliteCatalogOptions Options() {
    SqliteCatalogOptions o;
    o.path = path_;
    o.audit_key = TestKey(1);
    return o;
  }
  void Reopen() {
    cat_.reset();
    auto c = OpenSqliteCatalog(Options());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cat_ = std::move(*c);
  }
  void MakeDataset(const std::string& name) {
    ASSERT_TRUE(cat_->CreateDataset(name, By("test")).ok());
  }
  CommitRecord Commit(uint64_t n, std::vector<ObjectId> parents, std::string ds = "ds") {
    CommitRecord c;
    c.id = IdOf(n);
    c.dataset = std::move(ds);
    c.parents = std::move(parents);
    c.tree = IdOf(1'000'000 + n);
    c.author = "ada@host";
    c.time_unix = 1'700'000'000 + static_cast<int64_t>(n);
    c.message = "commit " + std::to_string(n);
    c.meta = {{"step", std::to_string(n)}};
    return c;
  }

  testing::TempDir dir_;
  std::string path_ = dir_ / "catalog.db";
  std::unique_ptr<Catalog> cat_;
};

// ---------------------------------------------------------------------------- names, datasets

TEST(NameTest, DatasetNameRules) {
  for (std::string ok : std::vector<std::string>{"fmnist", "a", "A-b_c.d9", "x.", std::string(128, 'n')}) {
    EXPECT_TRUE(ValidateDatasetName(ok).ok()) << ok;
  }
  for (std::string bad : std::vector<std::string>{"", ".hidden", "a/b", "a b", "a@b", "a:b", "caf\xc3\xa9",
                          std::string(129, 'n')}) {
    Status s = ValidateDatasetName(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(NameTest, RefNameRules) {
  for (std::string ok : std::vector<std::string>{"main", "v1.0", "feature/x", "a/b/c"}) {
    EXPECT_TRUE(ValidateRefName(ok).ok()) << ok;
  }
  for (std::string bad : std::vector<std::string>{"", "/x", "x/", "a//b", "a/../b", ".x", "a/.b", "a@b", "a:b"}) {
    EXPECT_EQ(ValidateRefName(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(CatalogTest, DatasetsCreateListGetDelete) {
  EXPECT_TRUE(cat_->CreateDataset("zeta", By("t")).ok());
  EXPECT_TRUE(cat_->CreateDataset("alpha", By("t")).ok());
  EXPECT_EQ(cat_->CreateDataset("alpha", By("t")).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(cat_->CreateDataset(".bad", By("t")).code(), StatusCode::kInvalidArgument);

  auto list = cat_->ListDatasets();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "alpha");
  EXPECT_EQ((*list)[1].name, "zeta");
  EXPECT_GT((*list)[0].created_unix_ms, 0);

  EXPECT_TRUE(cat_->GetDataset("zeta").ok());
  EXPECT_EQ(cat_->GetDataset("nope").status().code(), StatusCode::kNotFound);

  // Deleting takes the refs and commit records with it.
  ASSERT_TRUE(cat_->CreateRef("zeta", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->PutCommit(Commit(1, {}, "zeta")).ok());
  ASSERT_TRUE(cat_->DeleteDataset("zeta", By("t")).ok());
  EXPECT_EQ(cat_->GetDataset("zeta").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cat_->GetCommit(IdOf(1)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cat_->DeleteDataset("zeta", By("t")).code(), StatusCode::kNotFound);
  ASSERT_TRUE(cat_->CreateDataset("zeta", By("t")).ok());
  auto refs = cat_->ListRefs("zeta");
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

TEST_F(CatalogTest, DatasetWithProtectedRefIsNotDeleted) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->SetRefProtected("ds", "main", true, By("t")).ok());
  Status s = cat_->DeleteDataset("ds", By("t"));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("main"), std::string::npos) << s.message();
  EXPECT_TRUE(cat_->GetDataset("ds").ok());
  ASSERT_TRUE(cat_->SetRefProtected("ds", "main", false, By("t")).ok());
  EXPECT_TRUE(cat_->DeleteDataset("ds", By("t")).ok());
}

// ---------------------------------------------------------------------------- refs

TEST_F(CatalogTest, RefsCreateGetList) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->CreateRef("ds", "v1", RefKind::kTag, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->CreateRef("ds", "feature/x", RefKind::kBranch, IdOf(2), By("t")).ok());
  // One namespace: a tag can't take a branch's name.
  Status dup = cat_->CreateRef("ds", "main", RefKind::kTag, IdOf(2), By("t"));
  EXPECT_EQ(dup.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(dup.message().find("branch ds@main already exists"), std::string::npos)
      << dup.message();
  EXPECT_EQ(cat_->CreateRef("ds", "a//b", RefKind::kBranch, IdOf(2), By("t")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cat_->CreateRef("nope", "main", RefKind::kBranch, IdOf(2), By("t")).code(),
            StatusCode::kNotFound);

  auto main = cat_->GetRef("ds", "main");
  ASSERT_TRUE(main.ok());
  EXPECT_EQ(main->kind, RefKind::kBranch);
  EXPECT_EQ(main->target, IdOf(1));
  EXPECT_FALSE(main->is_protected);

  auto all = cat_->ListRefs("ds");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "feature/x");
  EXPECT_EQ((*all)[1].name, "main");
  EXPECT_EQ((*all)[2].name, "v1");
  auto tags = cat_->ListRefs("ds", RefKind::kTag);
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 1u);
  EXPECT_EQ((*tags)[0].name, "v1");

  Status missing = cat_->GetRef("ds", "dev").status();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  Status no_ds = cat_->GetRef("other", "main").status();
  EXPECT_EQ(no_ds.code(), StatusCode::kNotFound);
  EXPECT_NE(no_ds.message().find("no dataset named 'other'"), std::string::npos);
  EXPECT_EQ(cat_->ListRefs("other").status().code(), StatusCode::kNotFound);
}

TEST_F(CatalogTest, BranchUpdateIsCompareAndSwap) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->UpdateBranch("ds", "main", IdOf(1), IdOf(2), By("t")).ok());

  // A committer that still believes main is at 1 loses and is told where main went.
  Status s = cat_->UpdateBranch("ds", "main", IdOf(1), IdOf(3), By("t"));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_NE(s.message().find("branch ds@main moved from " + IdOf(1).Short() + " to " +
                             IdOf(2).Short()),
            std::string::npos)
      << s.message();
  EXPECT_EQ(cat_->GetRef("ds", "main")->target, IdOf(2));
  EXPECT_EQ(cat_->UpdateBranch("ds", "dev", IdOf(1), IdOf(3), By("t")).code(),
            StatusCode::kNotFound);
}

TEST_F(CatalogTest, TagsAreImmutable) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "v1", RefKind::kTag, IdOf(1), By("t")).ok());
  Status s = cat_->UpdateBranch("ds", "v1", IdOf(1), IdOf(2), By("t"));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("immutable"), std::string::npos);
  EXPECT_EQ(cat_->GetRef("ds", "v1")->target, IdOf(1));
  // Deleting an unprotected tag is allowed (a new one may then take the name).
  EXPECT_TRUE(cat_->DeleteRef("ds", "v1", By("t")).ok());
  EXPECT_EQ(cat_->GetRef("ds", "v1").status().code(), StatusCode::kNotFound);
}

TEST_F(CatalogTest, ProtectedRefsCannotBeDeleted) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->CreateRef("ds", "v1", RefKind::kTag, IdOf(1), By("t")).ok());
  ASSERT_TRUE(cat_->SetRefProtected("ds", "main", true, By("t")).ok());
  ASSERT_TRUE(cat_->SetRefProtected("ds", "v1", true, By("t")).ok());
  EXPECT_TRUE(cat_->GetRef("ds", "main")->is_protected);
  EXPECT_EQ(cat_->DeleteRef("ds", "main", By("t")).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(cat_->DeleteRef("ds", "v1", By("t")).code(), StatusCode::kFailedPrecondition);
  // Protection guards against deletion, not against committing.
  EXPECT_TRUE(cat_->UpdateBranch("ds", "main", IdOf(1), IdOf(2), By("t")).ok());
  ASSERT_TRUE(cat_->SetRefProtected("ds", "main", false, By("t")).ok());
  EXPECT_TRUE(cat_->DeleteRef("ds", "main", By("t")).ok());
}

TEST_F(CatalogTest, RefCreationIsFast) {
  MakeDataset("ds");
  constexpr int kN = 200;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(
        cat_->CreateRef("ds", "b" + std::to_string(i), RefKind::kBranch, IdOf(1), By("t")).ok());
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ timing ] create branch (with audit entry, fsync'd): %.3f ms each\n", ms / kN);
}

// Two writers (separate connections, as separate processes would have) race to move a branch
// from the same commit: exactly one wins each round and the others get kAborted.
TEST_F(CatalogTest, ConcurrentCompareAndSwapThreadsExactlyOneWins) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(0), By("t")).ok());
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  std::vector<std::unique_ptr<Catalog>> cats;
  for (int t = 0; t < kThreads; ++t) {
    auto c = OpenSqliteCatalog(Options());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cats.push_back(std::move(*c));
  }
  ObjectId current = IdOf(0);
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> ready{0};
    std::vector<Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready++;
        while (ready.load() < kThreads) std::this_thread::yield();
        results[t] = cats[t]->UpdateBranch("ds", "main", current, IdOf(100 * (round + 1) + t),
                                           By("thread" + std::to_string(t)));
      });
    }
    for (auto& th : threads) th.join();
    int winners = 0, winner = -1;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        winners++;
        winner = t;
      } else {
        EXPECT_EQ(results[t].code(), StatusCode::kAborted) << results[t].ToString();
      }
    }
    ASSERT_EQ(winners, 1) << "round " << round;
    current = IdOf(100 * (round + 1) + winner);
    EXPECT_EQ(cat_->GetRef("ds", "main")->target, current);
  }
  auto report = cat_->VerifyAudit();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->message;
  EXPECT_EQ(report->entries, 2u + kRounds);  // dataset, branch, one update per round
}

TEST_F(CatalogTest, ConcurrentCompareAndSwapProcessesExactlyOneWins) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(0), By("t")).ok());
  cat_.reset();  // no open connection is carried across fork()

  constexpr int kProcs = 4;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      auto c = OpenSqliteCatalog(Options());
      if (!c.ok()) _exit(3);
      char byte;
      if (read(go[0], &byte, 1) != 0) _exit(4);  // EOF: the parent closed its end, start
      Status s = (*c)->UpdateBranch("ds", "main", IdOf(0), IdOf(500 + p), By("proc"));
      _exit(s.ok() ? 0 : s.code() == StatusCode::kAborted ? 1 : 2);
    }
    pids.push_back(pid);
  }
  close(go[0]);
  usleep(100'000);  // let every child open the catalog and block on the pipe
  close(go[1]);
  int winners = 0, losers = 0, winner = -1;
  for (int p = 0; p < kProcs; ++p) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[p], &status, 0), pids[p]);
    ASSERT_TRUE(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == 0) {
      winners++;
      winner = p;
    } else if (code == 1) {
      losers++;
    } else {
      ADD_FAILURE() << "child " << p << " exited with " << code;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(losers, kProcs - 1);
  Reopen();
  EXPECT_EQ(cat_->GetRef("ds", "main")->target, IdOf(500 + winner));
}

// A writer waits for another process's transaction instead of failing at once, and fails with a
// retryable error when the wait exceeds the busy timeout.
TEST_F(CatalogTest, BusyWritersWaitThenFailRetryably) {
  MakeDataset("ds");
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  SqliteCatalogOptions impatient = Options();
  impatient.busy_timeout_ms = 100;
  auto c = OpenSqliteCatalog(impatient);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Status s = (*c)->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t"));
  EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
  EXPECT_TRUE(s.retryable());
  EXPECT_NE(s.message().find("create a ref"), std::string::npos) << s.message();

  // Readers are not blocked by a writer (WAL).
  EXPECT_TRUE((*c)->GetDataset("ds").ok());

  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  EXPECT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  release.join();
  sqlite3_close(other);
}

// ---------------------------------------------------------------------------- commits

TEST_F(CatalogTest, CommitRecordsRoundTripAndAreIdempotent) {
  MakeDataset("ds");
  CommitRecord c = Commit(2, {IdOf(1), IdOf(7)});
  c.meta = {{"lr", "0.001"}, {"source", "s3://raw"}};
  ASSERT_TRUE(cat_->PutCommit(c).ok());
  ASSERT_TRUE(cat_->PutCommit(c).ok());
  auto got = cat_->GetCommit(c.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, c.id);
  EXPECT_EQ(got->dataset, "ds");
  EXPECT_EQ(got->parents, c.parents);
  EXPECT_EQ(got->tree, c.tree);
  EXPECT_EQ(got->author, c.author);
  EXPECT_EQ(got->time_unix, c.time_unix);
  EXPECT_EQ(got->message, c.message);
  EXPECT_EQ(got->meta, c.meta);
  EXPECT_EQ(cat_->GetCommit(IdOf(99)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cat_->PutCommit(Commit(3, {}, "nope")).code(), StatusCode::kNotFound);

  // A batch is all or nothing.
  std::vector<CommitRecord> batch = {Commit(10, {}), Commit(11, {}, "nope")};
  EXPECT_FALSE(cat_->PutCommits(batch).ok());
  EXPECT_EQ(cat_->GetCommit(IdOf(10)).status().code(), StatusCode::kNotFound);
}

TEST_F(CatalogTest, LogOf10kCommits) {
  MakeDataset("ds");
  constexpr int kN = 10'000;
  std::vector<CommitRecord> commits;
  for (int i = 0; i < kN; ++i) {
    std::vector<ObjectId> parents;
    if (i > 0) parents.push_back(IdOf(i - 1));
    if (i % 100 == 50) parents.push_back(IdOf(900'000 + i));  // a merge: second parent
    commits.push_back(Commit(i, parents));
  }
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(cat_->PutCommits(commits).ok());
  auto t1 = std::chrono::steady_clock::now();
  auto log = cat_->Log(IdOf(kN - 1), 1'000'000);
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_EQ(log->size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ((*log)[i].id, IdOf(kN - 1 - i)) << i;
  }
  EXPECT_TRUE((*log)[kN - 1].parents.empty());
  EXPECT_EQ((*log)[kN - 1 - 50].parents.size(), 2u);
  std::printf("[ timing ] record %d commits: %.1f ms; log of %d commits: %.1f ms\n", kN,
              std::chrono::duration<double, std::milli>(t1 - t0).count(), kN,
              std::chrono::duration<double, std::milli>(t2 - t1).count());

  auto head = cat_->Log(IdOf(kN - 1), 5);
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size(), 5u);
  EXPECT_EQ((*head)[4].id, IdOf(kN - 5));
  auto mid = cat_->Log(IdOf(100), 1000);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->size(), 101u);
  EXPECT_EQ(cat_->Log(IdOf(kN + 5), 10).status().code(), StatusCode::kNotFound);
}

TEST_F(CatalogTest, LogStopsAtUnrecordedParent) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->PutCommits({Commit(1, {IdOf(0)}), Commit(2, {IdOf(1)})}).ok());
  auto log = cat_->Log(IdOf(2), 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[1].id, IdOf(1));
}

TEST_F(CatalogTest, ResolveCommitPrefix) {
  MakeDataset("ds");
  MakeDataset("other");
  CommitRecord a = Commit(1, {}), b = Commit(2, {}), c = Commit(3, {}), d = Commit(4, {}, "other");
  a.id = IdWithPrefix("abcd00", 1);
  b.id = IdWithPrefix("abcd01", 2);
  c.id = IdWithPrefix("abce", 3);
  d.id = IdWithPrefix("beef", 4);
  ASSERT_TRUE(cat_->PutCommits({a, b, c, d}).ok());

  auto amb = cat_->ResolveCommitPrefix("ds", "abcd");
  EXPECT_EQ(amb.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(amb.status().message().find("ambiguous"), std::string::npos);
  EXPECT_NE(amb.status().message().find(a.id.Short()), std::string::npos);
  EXPECT_EQ(*cat_->ResolveCommitPrefix("ds", "abcd00"), a.id);
  EXPECT_EQ(*cat_->ResolveCommitPrefix("ds", "ABCD01"), b.id);
  EXPECT_EQ(*cat_->ResolveCommitPrefix("ds", "abce"), c.id);
  EXPECT_EQ(*cat_->ResolveCommitPrefix("ds", a.id.ToHex()), a.id);
  EXPECT_EQ(cat_->ResolveCommitPrefix("ds", "ffff").status().code(), StatusCode::kNotFound);
  // Scoped to the dataset.
  EXPECT_EQ(cat_->ResolveCommitPrefix("ds", "beef").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*cat_->ResolveCommitPrefix("other", "beef"), d.id);
  EXPECT_EQ(cat_->ResolveCommitPrefix("ds", "abc").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cat_->ResolveCommitPrefix("ds", "main").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, FileMetadata) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->PutCommit(Commit(1, {})).ok());
  FileMeta m{IdOf(1), "train/0001.png", {"cat", "verified"}, "s3://raw/0001.png"};
  ASSERT_TRUE(cat_->PutFileMeta(m).ok());
  auto got = cat_->GetFileMeta(IdOf(1), "train/0001.png");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->labels, m.labels);
  EXPECT_EQ(got->source, m.source);
  m.labels = {"dog"};
  ASSERT_TRUE(cat_->PutFileMeta(m).ok());
  EXPECT_EQ(cat_->GetFileMeta(IdOf(1), "train/0001.png")->labels, m.labels);
  EXPECT_EQ(cat_->GetFileMeta(IdOf(1), "nope").status().code(), StatusCode::kNotFound);
  m.commit = IdOf(2);
  EXPECT_EQ(cat_->PutFileMeta(m).code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------- audit

TEST_F(CatalogTest, EveryChangeIsAuditedInItsTransaction) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("ada")).ok());
  ASSERT_TRUE(cat_->UpdateBranch("ds", "main", IdOf(1), IdOf(2),
                                 AuditEntry{"bob", "merge", "", R"({"from":"dev"})"})
                  .ok());
  ASSERT_TRUE(cat_->AppendAudit({"gc", "gc", "repository", R"({"packs":3})"}).ok());
  auto head = cat_->Head();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, 4u);

  // A refused change leaves no entry, and an entry that can't be written blocks the change.
  EXPECT_FALSE(cat_->UpdateBranch("ds", "main", IdOf(1), IdOf(3), By("eve")).ok());
  EXPECT_EQ(cat_->CreateRef("ds", "dev", RefKind::kBranch, IdOf(1),
                            AuditEntry{"eve", "", "", "not json"})
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cat_->GetRef("ds", "dev").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*cat_->Head(), *head);

  auto log = cat_->ListAudit(1, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 4u);
  EXPECT_EQ((*log)[0].action, "dataset.create");
  EXPECT_EQ((*log)[1].action, "branch.create");
  EXPECT_EQ((*log)[1].target, "ds@main");
  EXPECT_EQ((*log)[1].actor, "ada");
  EXPECT_EQ((*log)[2].action, "merge");
  EXPECT_EQ((*log)[2].target, "ds@main");
  auto details = nlohmann::json::parse((*log)[2].details);
  EXPECT_EQ(details["from"], "dev");
  EXPECT_EQ(details["old"], IdOf(1).ToHex());
  EXPECT_EQ(details["new"], IdOf(2).ToHex());
  EXPECT_EQ((*log)[3].action, "gc");
  EXPECT_TRUE((*log)[0].prev_hash.IsZero());
  for (size_t i = 1; i < log->size(); ++i) EXPECT_EQ((*log)[i].prev_hash, (*log)[i - 1].hash);
  EXPECT_EQ((*log)[3].hash, head->hash);
  EXPECT_EQ(cat_->ListAudit(3, 1)->at(0).seq, 3u);

  auto report = cat_->VerifyAudit(*head);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->message;
  EXPECT_EQ(report->entries, 4u);
  EXPECT_EQ(report->head, *head);
}

class AuditTamperTest : public CatalogTest {
 protected:
  void SetUp() override {
    CatalogTest::SetUp();
    MakeDataset("ds");
    ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(0), By("t")).ok());
    for (int i = 1; i <= 8; ++i) {
      ASSERT_TRUE(cat_->UpdateBranch("ds", "main", IdOf(i - 1), IdOf(i), By("t")).ok());
    }
    head_ = *cat_->Head();
    ASSERT_EQ(head_.seq, 10u);
    auto report = cat_->VerifyAudit(head_);
    ASSERT_TRUE(report.ok() && report->ok());
    cat_.reset();
  }
  AuditVerifyReport VerifyAfter(const std::string& sql) {
    Tamper(path_, sql);
    Reopen();
    auto report = cat_->VerifyAudit(head_);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : AuditVerifyReport{};
  }
  AuditHead head_;
};

TEST_F(AuditTamperTest, EditedEntryIsDetected) {
  auto r = VerifyAfter("UPDATE audit SET actor = 'mallory' WHERE seq = 5");
  EXPECT_EQ(r.problem, AuditVerifyReport::Problem::kEdited);
  EXPECT_EQ(r.first_bad_seq, 5u);
  EXPECT_NE(r.message.find("entry 5 was edited"), std::string::npos) << r.message;
  EXPECT_EQ(r.entries, 4u);
}

TEST_F(AuditTamperTest, EditedDetailsAreDetected) {
  auto r = VerifyAfter("UPDATE audit SET details = replace(details, 'new', 'NEW') WHERE seq = 7");
  EXPECT_EQ(r.problem, AuditVerifyReport::Problem::kEdited);
  EXPECT_EQ(r.first_bad_seq, 7u);
}

TEST_F(AuditTamperTest, DeletedEntryIsDetected) {
  auto r = VerifyAfter("DELETE FROM audit WHERE seq = 4");
  EXPECT_EQ(r.problem, AuditVerifyReport::Problem::kRemoved);
  EXPECT_EQ(r.first_bad_seq, 4u);
  EXPECT_NE(r.message.find("entry 4 was removed"), std::string::npos) << r.message;
}

TEST_F(AuditTamperTest, DeletedAndRenumberedEntryIsDetected) {
  auto r = VerifyAfter(
      "DELETE FROM audit WHERE seq = 4; UPDATE audit SET seq = seq - 1 WHERE seq > 4");
  EXPECT_NE(r.problem, AuditVerifyReport::Problem::kNone);
  EXPECT_EQ(r.first_bad_seq, 4u);
}

TEST_F(AuditTamperTest, ReorderedPairIsDetected) {
  auto r = VerifyAfter(
      "UPDATE audit SET seq = -1 WHERE seq = 6;"
      "UPDATE audit SET seq = 6 WHERE seq = 7;"
      "UPDATE audit SET seq = 7 WHERE seq = -1");
  EXPECT_EQ(r.problem, AuditVerifyReport::Problem::kReordered);
  EXPECT_EQ(r.first_bad_seq, 6u);
  EXPECT_NE(r.message.find("entry 6 does not follow entry 5"), std::string::npos) << r.message;
}

// Removing the newest entries leaves a valid chain: only the head the repository recorded
// reveals it.
TEST_F(AuditTamperTest, TruncatedTailIsDetectedWithTheRecordedHead) {
  auto r = VerifyAfter("DELETE FROM audit WHERE seq >= 9");
  EXPECT_EQ(r.problem, AuditVerifyReport::Problem::kTruncated);
  EXPECT_EQ(r.first_bad_seq, 9u);
  auto unanchored = cat_->VerifyAudit();
  ASSERT_TRUE(unanchored.ok());
  EXPECT_TRUE(unanchored->ok());
}

TEST_F(AuditTamperTest, ReplacedCatalogIsDetected) {
  // Another catalog with the same key and as many entries: internally consistent, but not the
  // log the repository recorded.
  std::filesystem::remove(path_);
  std::filesystem::remove(path_ + "-wal");
  std::filesystem::remove(path_ + "-shm");
  Reopen();
  MakeDataset("ds");
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(cat_->AppendAudit({"x", "noop", "", ""}).ok());
  auto r = cat_->VerifyAudit(head_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problem, AuditVerifyReport::Problem::kReplaced);
  EXPECT_EQ(r->first_bad_seq, 10u);
}

TEST_F(AuditTamperTest, WrongKeyFailsAtFirstEntry) {
  SqliteCatalogOptions o = Options();
  o.audit_key = TestKey(2);
  auto c = OpenSqliteCatalog(o);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->VerifyAudit();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problem, AuditVerifyReport::Problem::kEdited);
  EXPECT_EQ(r->first_bad_seq, 1u);
}

// ---------------------------------------------------------------------------- the file

TEST_F(CatalogTest, GarbageFileIsCorruptionWithRebuildHint) {
  cat_.reset();
  std::filesystem::remove(path_ + "-wal");
  std::filesystem::remove(path_ + "-shm");
  testing::WriteFile(path_, testing::RandomBytes(7, 8192));
  auto c = OpenSqliteCatalog(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kCorruption) << c.status().ToString();
  EXPECT_NE(c.status().message().find("strata catalog rebuild"), std::string::npos);
  EXPECT_NE(c.status().message().find(path_), std::string::npos);
}

TEST_F(CatalogTest, DamagedPagesAreCorruptionWithRebuildHint) {
  MakeDataset("ds");
  std::vector<CommitRecord> commits;
  for (int i = 0; i < 2000; ++i) commits.push_back(Commit(i, i ? std::vector{IdOf(i - 1)} : std::vector<ObjectId>{}));
  ASSERT_TRUE(cat_->PutCommits(commits).ok());
  cat_.reset();
  {
    // Connections do not checkpoint at close by default; this one does, as the last one open,
    // so the file holds everything before it is damaged.
    SqliteCatalogOptions o = Options();
    o.checkpoint_on_close = true;
    ASSERT_TRUE(OpenSqliteCatalog(o).ok());
  }
  ASSERT_FALSE(std::filesystem::exists(path_ + "-wal"));
  std::string bytes = testing::ReadFile(path_);
  ASSERT_GT(bytes.size(), 16384u);
  // Keep the header page (so the file still looks like a database); damage the rest.
  std::string damaged = bytes.substr(0, 4096) + testing::RandomBytes(9, bytes.size() - 4096);
  testing::WriteFile(path_, damaged);
  Status s;
  auto c = OpenSqliteCatalog(Options());
  if (!c.ok()) {
    s = c.status();
  } else {
    auto log = (*c)->Log(IdOf(1999), 10'000);
    s = log.status();
  }
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("strata catalog rebuild"), std::string::npos) << s.message();
}

// The catalog opens an existing WAL without asking SQLite to create it (which would sync the
// directory again in every process) and creates one when it is gone; both keep every change.
TEST_F(CatalogTest, WalIsCreatedWhenMissingAndReusedWhenPresent) {
  MakeDataset("a");
  cat_.reset();
  {
    SqliteCatalogOptions o = Options();
    o.checkpoint_on_close = true;  // the last connection out then removes the WAL
    ASSERT_TRUE(OpenSqliteCatalog(o).ok());
  }
  ASSERT_FALSE(std::filesystem::exists(path_ + "-wal"));
  Reopen();
  MakeDataset("b");
  ASSERT_TRUE(std::filesystem::exists(path_ + "-wal"));
  Reopen();
  MakeDataset("c");
  Reopen();
  auto list = cat_->ListDatasets();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> names;
  for (const auto& d : *list) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(CatalogTest, NewerSchemaIsUnsupported) {
  cat_.reset();
  Tamper(path_, "UPDATE catalog_meta SET value = '2' WHERE key = 'schema_version'");
  auto c = OpenSqliteCatalog(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnsupported) << c.status().ToString();
  EXPECT_NE(c.status().message().find("upgrade strata"), std::string::npos);
}

TEST_F(CatalogTest, ForeignDatabaseIsRefused) {
  std::string other = dir_ / "other.db";
  Tamper(other, "CREATE TABLE t(x)");
  SqliteCatalogOptions o = Options();
  o.path = other;
  auto c = OpenSqliteCatalog(o);
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition) << c.status().ToString();
}

TEST_F(CatalogTest, MissingCatalogWithoutCreate) {
  SqliteCatalogOptions o = Options();
  o.path = dir_ / "absent.db";
  o.create_if_missing = false;
  EXPECT_EQ(OpenSqliteCatalog(o).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(o.path));
}

TEST_F(CatalogTest, DataSurvivesReopen) {
  MakeDataset("ds");
  ASSERT_TRUE(cat_->CreateRef("ds", "main", RefKind::kBranch, IdOf(1), By("t")).ok());
  AuditHead head = *cat_->Head();
  Reopen();
  EXPECT_EQ(cat_->GetRef("ds", "main")->target, IdOf(1));
  EXPECT_EQ(*cat_->Head(), head);
}

}  // namespace
}  // namespace strata::catalog
