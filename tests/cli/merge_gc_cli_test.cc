// End-to-end tests of `strata merge`, `policy`, `forget` and `gc`: exit codes, --json output and
// what ends up in the repository; and gc killed with SIGKILL at random moments, after which the
// repository verifies and every kept commit checks out byte for byte.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
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

class MergeGcCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo();
    if (HasFatalFailure()) return;
    ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  }

  // Commits `content` at `path` on `branch`; returns the new commit id.
  std::string Put(const std::string& branch, const std::string& path, const std::string& content) {
    std::string f = dir_ / ("f" + std::to_string(n_++));
    WriteFile(f, content);
    json j = J({"commit", branch, "--add", path + "=" + f, "-m", "put " + path});
    return j.is_object() ? j.value("commit", "") : "";
  }

  int n_ = 0;
};

TEST_F(MergeGcCliTest, MergePolicyForgetGc) {
  Put("fm@main", "a.txt", "base");
  std::string big = RandomBytes(7, 400000);
  Put("fm@main", "old.bin", big);
  ASSERT_EQ(S({"branch", "create", "fm@dev"}).exit_code, 0);
  Put("fm@main", "a.txt", "main");
  Put("fm@dev", "a.txt", "dev");
  Put("fm@dev", "dev.txt", "only on dev");

  // A conflict: exit 6, nothing changes, the path is listed (as data with --json).
  auto refused = S({"--json", "merge", "fm@dev", "fm@main"});
  EXPECT_EQ(refused.exit_code, 6) << Describe(refused);
  json rj = ParseJson(refused);
  EXPECT_EQ(rj["merged"], false);
  ASSERT_EQ(rj["conflicts"].size(), 1u) << rj.dump();
  EXPECT_EQ(rj["conflicts"][0]["path"], "a.txt");
  EXPECT_EQ(rj["conflicts"][0]["kind"], "modify/modify");
  auto plain = S({"merge", "fm@dev", "fm@main"});
  EXPECT_EQ(plain.exit_code, 6) << Describe(plain);
  EXPECT_NE(plain.err.find("a.txt (modify/modify)"), std::string::npos) << Describe(plain);
  EXPECT_EQ(S({"cat", "fm@main:a.txt"}).out, "main");
  auto bad = S({"merge", "fm@dev", "fm@main", "--strategy", "both"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);

  json m = J({"merge", "fm@dev", "fm@main", "--strategy", "theirs", "-m", "take dev"});
  EXPECT_EQ(m["merged"], true);
  EXPECT_EQ(m["fast_forward"], false);
  EXPECT_EQ(m["conflicts"].size(), 1u);
  EXPECT_EQ(S({"cat", "fm@main:a.txt"}).out, "dev");
  EXPECT_EQ(S({"cat", "fm@main:dev.txt"}).out, "only on dev");
  json show = J({"show", "fm@main"});
  EXPECT_EQ(show["parents"].size(), 2u);
  EXPECT_EQ(show["message"], "take dev");
  // Merging back: a fast-forward; again: nothing to do (SRC may name a ref of DST's dataset).
  EXPECT_EQ(J({"merge", "fm@main", "fm@dev"})["fast_forward"], true);
  EXPECT_EQ(J({"merge", "dev", "fm@main"})["up_to_date"], true);

  // Retention: no policy, forget refuses; set, show.
  auto none = S({"policy", "show", "fm"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_NE(none.out.find("no retention policy"), std::string::npos) << Describe(none);
  EXPECT_EQ(S({"forget", "fm"}).exit_code, 6);
  J({"policy", "set", "fm", "--keep-last", "1"});
  json p = J({"policy", "show", "fm"});
  EXPECT_EQ(p["keep_last"], 1);
  EXPECT_EQ(p["keep_tagged"], true);
  EXPECT_EQ(S({"policy", "set", "fm", "--keep-tagged", "--no-keep-tagged"}).exit_code, 2);
  auto no_rule = S({"policy", "set", "fm", "--no-keep-tagged"});
  EXPECT_EQ(no_rule.exit_code, 2) << Describe(no_rule);
  EXPECT_NE(no_rule.err.find("at least one rule"), std::string::npos) << Describe(no_rule);
  EXPECT_EQ(J({"policy", "show", "fm"})["keep_tagged"], true);  // unchanged

  // Tag the commit that still holds old.bin, then remove old.bin from the branch.
  ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);
  auto rm = S({"commit", "fm@main", "--remove", "old.bin", "-m", "drop old"});
  ASSERT_EQ(rm.exit_code, 0) << Describe(rm);
  Put("fm@main", "scratch.bin", RandomBytes(8, 300000));
  Put("fm@main", "scratch.bin", "small now");

  json dry = J({"forget", "fm", "--dry-run"});
  EXPECT_EQ(dry["dry_run"], true);
  size_t forgotten = dry["forgotten"].size();
  EXPECT_GT(forgotten, 3u);
  json forget = J({"forget", "fm"});
  EXPECT_EQ(forget["forgotten"].size(), forgotten);
  std::set<std::string> reasons;
  for (const auto& k : forget["kept"]) {
    for (const auto& r : k["reasons"]) reasons.insert(r);
  }
  EXPECT_TRUE(reasons.count("tag v1")) << forget.dump();
  EXPECT_TRUE(reasons.count("head of main"));
  EXPECT_TRUE(reasons.count("head of dev"));
  auto log = S({"log", "fm@main"});
  ASSERT_EQ(log.exit_code, 0) << Describe(log);
  EXPECT_NE(log.err.find("history stops here"), std::string::npos) << Describe(log);

  auto help = S({"gc", "--help"});
  EXPECT_NE(help.out.find("refuses (exit 6) while a put or commit"), std::string::npos) << Describe(help);
  json gdry = J({"gc", "--dry-run", "--grace", "0"});
  EXPECT_EQ(gdry["dry_run"], true);
  EXPECT_GT(gdry["bytes_freed"].get<uint64_t>(), 250000u);
  json g = J({"gc", "--grace", "0"});
  EXPECT_EQ(g["bytes_freed"], gdry["bytes_freed"]);
  EXPECT_EQ(J({"gc", "--grace", "0"})["bytes_freed"], 0);

  // What is kept reads back; the tagged commit's data survived.
  EXPECT_EQ(S({"cat", "fm@v1:old.bin"}).out, big);
  EXPECT_EQ(S({"cat", "fm@main:scratch.bin"}).out, "small now");
  EXPECT_EQ(S({"cat", "fm@dev:dev.txt"}).out, "only on dev");
  auto verify = S({"verify", "--read-data"});
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);

  json audit = J({"audit", "log"});
  std::multiset<std::string> actions;
  for (const auto& e : audit) actions.insert(e["action"].get<std::string>());
  EXPECT_EQ(actions.count("merge"), 2u);  // the three-way merge and the fast-forward
  EXPECT_EQ(actions.count("policy.set"), 1u);
  EXPECT_EQ(actions.count("forget"), 1u);
  EXPECT_EQ(actions.count("gc"), 2u);
  EXPECT_EQ(J({"audit", "verify"})["ok"], true);
}

// gc killed with SIGKILL at random moments, each time with garbage to collect: afterwards
// `strata verify` passes and every kept commit (the last two of main, and the tagged ones)
// checks out exactly.
TEST_F(MergeGcCliTest, KilledGcLeavesKeptCommitsIntact) {
  const char* env_iters = std::getenv("STRATA_GC_KILL_ITERATIONS");
  size_t iterations = env_iters && *env_iters ? std::strtoul(env_iters, nullptr, 10) : 20;
  ASSERT_EQ(S({"policy", "set", "fm", "--keep-last", "2"}).exit_code, 0);
  std::mt19937_64 rng(7);
  struct Kept {
    std::string spec, data;
  };
  std::vector<Kept> recent, tagged;
  size_t killed = 0, finished = 0;
  for (size_t i = 0; i < iterations; ++i) {
    std::string data = dir_ / ("data" + std::to_string(i));
    WriteFile(data + "/big.bin", RandomBytes(1000 + i, (1 + rng() % 3) << 20));
    WriteFile(data + "/n.txt", std::to_string(i));
    auto c = S({"-q", "commit", "fm@main", data, "-m", "v" + std::to_string(i)});
    ASSERT_EQ(c.exit_code, 0) << Describe(c);
    std::string id = c.out.substr(0, c.out.find('\n'));
    recent.push_back({"fm@" + id, data});
    if (i % 8 == 0) {
      ASSERT_EQ(S({"tag", "create", "fm@t" + std::to_string(i), "fm@main"}).exit_code, 0);
      tagged.push_back({"fm@t" + std::to_string(i), data});
    }
    if (recent.size() > 2) {
      bool is_tagged = false;
      for (const auto& t : tagged) is_tagged = is_tagged || t.data == recent.front().data;
      if (!is_tagged) fs::remove_all(recent.front().data);
      recent.erase(recent.begin());
    }
    ASSERT_EQ(S({"-q", "forget", "fm"}).exit_code, 0);

    std::string log = dir_ / "gc.log";
    pid_t pid = StartProcess({STRATA_BINARY, "-r", repo_, "-q", "gc", "--grace", "0", "--repack-threshold", "0.2"},
                             BaseEnv(), log);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 150000));
    kill(pid, SIGKILL);
    int rc = WaitProcess(pid);
    if (rc == 128 + SIGKILL) ++killed;
    else if (rc == 0) ++finished;
    else ADD_FAILURE() << "gc failed with " << rc << ": " << ReadFile(log);

    auto verify = S({"verify"});
    ASSERT_EQ(verify.exit_code, 0) << "iteration " << i << ": " << Describe(verify);
    std::vector<Kept> all = recent;
    all.insert(all.end(), tagged.begin(), tagged.end());
    for (const auto& k : all) {
      std::string out = dir_ / "out";
      auto co = S({"checkout", k.spec, out});
      ASSERT_EQ(co.exit_code, 0) << "iteration " << i << " " << k.spec << ": " << Describe(co);
      EXPECT_EQ(DiffTrees(SnapshotTree(k.data, false), SnapshotTree(out, false)), "") << "iteration " << i << " " << k.spec;
      fs::remove_all(out);
    }
  }
  // A gc left to finish collects what the killed ones left behind; everything still verifies.
  json g = J({"gc", "--grace", "0"});
  EXPECT_EQ(g["commits_live"], iterations + 1);
  auto verify = S({"verify", "--read-data"});
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);
  for (const auto& k : tagged) {
    std::string out = dir_ / "out";
    ASSERT_EQ(S({"checkout", k.spec, out}).exit_code, 0);
    EXPECT_EQ(DiffTrees(SnapshotTree(k.data, false), SnapshotTree(out, false)), "") << k.spec;
    fs::remove_all(out);
  }
  EXPECT_EQ(J({"audit", "verify"})["ok"], true);
  RecordProperty("killed", static_cast<int>(killed));
  RecordProperty("finished", static_cast<int>(finished));
  std::cerr << "gc runs killed: " << killed << ", finished: " << finished << "\n";
}

}  // namespace
}  // namespace strata::testing
