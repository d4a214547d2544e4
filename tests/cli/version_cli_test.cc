// End-to-end tests of the versioning commands: the real `strata` binary in child processes,
// checking exit codes, messages, --json output and what ends up on disk; and commits killed
// with SIGKILL at random moments, after which the branch is at the old or the new commit and
// everything verifies.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every recently written entry below `root` aged to a new time well in the past.
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

class VersionCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo();
    if (HasFatalFailure()) return;
    src_ = dir_ / "src";
    WriteFile(src_ + "/a.txt", "alpha\n");
    WriteFile(src_ + "/train/x.bin", RandomBytes(1, 200000));
    WriteFile(src_ + "/test/y.bin", RandomBytes(2, 100000));
    Age(src_);
  }

  std::string src_;
};

TEST_F(VersionCliTest, MainFlows) {
  auto created = S({"dataset", "create", "fm"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_NE(created.out.find("created dataset fm"), std::string::npos);

  json c1 = J({"commit", "fm@main", src_, "-m", "import", "--meta", "source=test", "--meta", "rows=3"});
  ASSERT_TRUE(c1.is_object());
  EXPECT_EQ(c1["files"], 3);
  EXPECT_EQ(c1["unchanged"], false);
  std::string id1 = c1["commit"];

  // Nothing changed: nothing read, no commit.
  json again = J({"commit", "fm@main", src_, "-m", "again"});
  EXPECT_EQ(again["bytes_read"], 0);
  EXPECT_EQ(again["unchanged_files"], 3);
  EXPECT_EQ(again["unchanged"], true);
  EXPECT_EQ(again["commit"], id1);

  json log = J({"log", "fm@main"});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0]["id"], id1);
  EXPECT_EQ(log[0]["meta"]["source"], "test");
  EXPECT_EQ(log[0]["author"], "tester@" + log[0]["author"].get<std::string>().substr(7));

  json show = J({"show", "fm@" + id1.substr(0, 8)});
  EXPECT_EQ(show["id"], id1);
  EXPECT_EQ(show["message"], "import");
  EXPECT_EQ(show["changes"].size(), 3u);

  auto ls = S({"ls", "-R", "fm@main"});
  ASSERT_EQ(ls.exit_code, 0) << Describe(ls);
  EXPECT_EQ(ls.out, "a.txt\ntest/\ntest/y.bin\ntrain/\ntrain/x.bin\n");
  auto cat = S({"cat", "fm@main:a.txt"});
  ASSERT_EQ(cat.exit_code, 0) << Describe(cat);
  EXPECT_EQ(cat.out, "alpha\n");

  std::string out = dir_ / "out";
  auto co = S({"checkout", "fm@main:train", out});
  ASSERT_EQ(co.exit_code, 0) << Describe(co);
  EXPECT_EQ(ReadFile(out + "/train/x.bin"), ReadFile(src_ + "/train/x.bin"));
  EXPECT_FALSE(fs::exists(out + "/test"));

  // Refs: a tag, protected; a branch; a change list on the branch.
  ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);
  ASSERT_EQ(S({"tag", "protect", "fm@v1"}).exit_code, 0);
  auto del = S({"tag", "delete", "fm@v1"});
  EXPECT_EQ(del.exit_code, 6) << Describe(del);
  EXPECT_NE(del.err.find("protected"), std::string::npos);
  ASSERT_EQ(S({"branch", "create", "fm@dev"}).exit_code, 0);
  std::string extra = dir_ / "extra.txt";
  WriteFile(extra, "extra");
  json c2 = J({"commit", "fm@dev", "--add", "train/extra.txt=" + extra, "--move", "a.txt=b.txt", "-m", "edit"});
  EXPECT_EQ(c2["trees_written"], 2);  // root and train/
  json branches = J({"branch", "list", "fm"});
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0]["name"], "dev");
  EXPECT_EQ(branches[0]["target"], c2["commit"]);

  json diff = J({"diff", "fm@main", "fm@dev"});
  ASSERT_EQ(diff["changes"].size(), 2u);
  EXPECT_EQ(diff["changes"][0]["kind"], "renamed");
  EXPECT_EQ(diff["changes"][0]["old_path"], "a.txt");
  EXPECT_EQ(diff["changes"][0]["path"], "b.txt");
  EXPECT_EQ(diff["changes"][1]["kind"], "added");
  EXPECT_EQ(diff["changes"][1]["new_size"], 5);
  EXPECT_GE(diff["subtrees_skipped"], 1);  // test/ is equal on both sides

  // Revert the change list, then reset back to it.
  json rv = J({"revert", "fm@dev", c2["commit"].get<std::string>().substr(0, 10)});
  EXPECT_EQ(J({"diff", "fm@main", "fm@dev"})["changes"].size(), 0u);
  json reset = J({"reset", "fm@dev", c2["commit"].get<std::string>().substr(0, 10)});
  EXPECT_EQ(reset["old"], rv["commit"]);
  EXPECT_EQ(reset["new"], c2["commit"]);

  // Bad input.
  auto bad = S({"log", "fm"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_NE(bad.err.find("NAME@REF"), std::string::npos);
  auto unknown = S({"log", "fm@nosuch"});
  EXPECT_EQ(unknown.exit_code, 3) << Describe(unknown);
  auto tagmove = S({"commit", "fm@v1", src_, "-m", "x"});
  EXPECT_EQ(tagmove.exit_code, 6) << Describe(tagmove);

  // Audit: every change is in the chain, which verifies.
  json audit = J({"audit", "log"});
  std::vector<std::string> actions;
  for (const auto& e : audit) actions.push_back(e["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"dataset.create", "branch.create", "commit", "tag.create", "ref.protect",
                                               "branch.create", "commit", "revert", "reset"}));
  json verify = J({"audit", "verify"});
  EXPECT_EQ(verify["ok"], true);
  EXPECT_EQ(verify["recorded_seq"], verify["head_seq"]);

  // The catalog lost: refused with a hint, rebuilt from the repository, same refs and history.
  json refs_before = J({"dataset", "list"});
  json log_before = J({"log", "fm@dev"});
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(repo_ + "/catalog/catalog.db" + s);
  auto lost = S({"log", "fm@main"});
  EXPECT_EQ(lost.exit_code, 5) << Describe(lost);
  EXPECT_NE(lost.err.find("strata catalog rebuild"), std::string::npos);
  json rebuilt = J({"catalog", "rebuild"});
  EXPECT_EQ(rebuilt["datasets"], 1);
  EXPECT_EQ(rebuilt["refs"], 3);
  json refs_after = J({"dataset", "list"});
  for (auto& d : refs_after) {
    for (auto& r : d["refs"]) r.erase("updated_ms");
  }
  for (auto& d : refs_before) {
    for (auto& r : d["refs"]) r.erase("updated_ms");
  }
  EXPECT_EQ(refs_after, refs_before);
  EXPECT_EQ(J({"log", "fm@dev"}), log_before);
  EXPECT_EQ(J({"audit", "verify"})["ok"], true);
}

// `stats` counts every dataset version a ref reaches in full (dedup across versions shows in
// the ratio), each commit once however many refs reach it.
TEST_F(VersionCliTest, StatsCountDatasetVersions) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  const uint64_t size = 6 + 200000 + 100000;
  ASSERT_TRUE(J({"commit", "fm@main", src_, "-m", "one"}).is_object());
  WriteFile(src_ + "/b.txt", "beta\n");
  ASSERT_TRUE(J({"commit", "fm@main", src_, "-m", "two"}).is_object());
  ASSERT_EQ(S({"branch", "create", "fm@dev", "fm@main"}).exit_code, 0);
  json st = J({"stats"});
  EXPECT_EQ(st["versions"], 3);  // the empty first commit, one, two
  EXPECT_EQ(st["version_bytes"], size + size + 5);
  EXPECT_EQ(st["logical_bytes"], st["version_bytes"]);  // no puts
  EXPECT_GT(st["dedup_ratio"].get<double>(), 1.9);
}

TEST_F(VersionCliTest, OlderCatalogCopyIsDetected) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  ASSERT_EQ(S({"commit", "fm@main", src_, "-m", "one"}).exit_code, 0);
  std::string saved = dir_ / "saved.db";
  fs::copy_file(repo_ + "/catalog/catalog.db", saved);
  ASSERT_EQ(S({"tag", "create", "fm@v1"}).exit_code, 0);
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(repo_ + "/catalog/catalog.db" + s);
  fs::copy_file(saved, repo_ + "/catalog/catalog.db");
  auto r = S({"log", "fm@main"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find("older copy"), std::string::npos) << Describe(r);
  auto v = S({"--json", "audit", "verify"});
  EXPECT_EQ(v.exit_code, 5) << Describe(v);
  json j = ParseJson(v);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["problem"], "truncated");
}

// Commits killed with SIGKILL at random moments: afterwards the branch is at the old commit or
// the new one (whose tree is exactly the committed directory), and the repository, the audit
// chain and the branch's content all verify.
TEST_F(VersionCliTest, KilledCommitsLeaveBranchOldOrNew) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  const char* env_iters = std::getenv("STRATA_CRASH_ITERATIONS");
  size_t iterations = env_iters && *env_iters ? std::strtoul(env_iters, nullptr, 10) : 12;
  std::mt19937_64 rng(42);
  std::string head = HeadOf("fm@main");
  size_t killed = 0, finished = 0;
  for (size_t i = 0; i < iterations; ++i) {
    std::string data = dir_ / ("data" + std::to_string(i));
    WriteFile(data + "/big.bin", RandomBytes(100 + i, (4 + rng() % 8) << 20));
    WriteFile(data + "/small.txt", "iteration " + std::to_string(i));
    std::string log = dir_ / "commit.log";
    pid_t pid = StartProcess({STRATA_BINARY, "-r", repo_, "-q", "commit", "fm@main", data, "-m", "i" + std::to_string(i)},
                             BaseEnv(), log);
    // Most commits here take 100-300 ms: kill points spread over scan, packs, catalog and record.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200000));
    bool was_killed = kill(pid, SIGKILL) == 0;
    int rc = WaitProcess(pid);
    if (rc == 128 + SIGKILL) ++killed;
    else if (rc == 0) ++finished;
    else ADD_FAILURE() << "commit failed with " << rc << ": " << ReadFile(log);
    (void)was_killed;

    // The next command opens the lake, which records anything the killed one left unrecorded.
    std::string now = HeadOf("fm@main");
    ASSERT_FALSE(now.empty()) << "iteration " << i;
    if (now != head) {
      json show = J({"show", "fm@main"});
      EXPECT_EQ(show["parents"][0], head) << "iteration " << i << ": the new head must follow the old one";
      EXPECT_EQ(show["message"], "i" + std::to_string(i));
      std::string out = dir_ / ("out" + std::to_string(i));
      auto co = S({"checkout", "fm@main", out});
      ASSERT_EQ(co.exit_code, 0) << Describe(co);
      EXPECT_EQ(DiffTrees(SnapshotTree(data, false), SnapshotTree(out, false)), "") << "iteration " << i;
      fs::remove_all(out);
    } else {
      EXPECT_NE(rc, 0) << "a finished commit must move the branch";
    }
    head = now;
    json audit = J({"audit", "verify"});
    EXPECT_EQ(audit["ok"], true) << audit.dump();
    EXPECT_EQ(audit["recorded_seq"], audit["head_seq"]) << "iteration " << i;
    fs::remove_all(data);
  }
  auto verify = S({"--json", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);
  // The catalog can still be rebuilt to the same head.
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(repo_ + "/catalog/catalog.db" + s);
  ASSERT_EQ(S({"catalog", "rebuild"}).exit_code, 0);
  EXPECT_EQ(HeadOf("fm@main"), head);
  RecordProperty("killed", static_cast<int>(killed));
  RecordProperty("finished", static_cast<int>(finished));
}

}  // namespace
}  // namespace strata::testing
