// `strata volume`, `scrub` and `repair fragments` end to end: a repository spread over eight
// volumes with rs:4+2, volumes lost, and repair and drain killed with SIGKILL at random
// moments, after which they resume and the repository verifies and restores byte for byte.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RedundancyCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo();
    if (HasFatalFailure()) return;
    data_ = dir_ / "data";
    WriteFile(data_ + "/a.bin", RandomBytes(1, 5u << 20));
    WriteFile(data_ + "/b.bin", RandomBytes(2, (3u << 20) + 4321));
    WriteFile(data_ + "/small.txt", "a small file\n");
    want_ = SnapshotTree(data_);
    auto r = S({"-q", "put", data_});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    id_ = r.out.substr(0, 64);
  }

  std::string Vol(int i) { return dir_ / ("vol" + std::to_string(i)); }

  // `n` volumes in racks of two, policy rs:4+2, existing packs spread.
  void Spread(int n) {
    for (int i = 1; i <= n; ++i) {
      auto r = S({"volume", "add", Vol(i), "--domain", fmt("rack", (i - 1) / 2, "/disk", i)});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
    }
    auto r = S({"volume", "policy", "set", "rs:4+2"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"--json", "volume", "policy", "apply"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_GT(ParseJson(r)["packs_reencoded"].get<int>(), 0);
    r = S({"--json", "volume", "status"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(ParseJson(r)["local_packs"], 0);
  }

  static std::string fmt(const char* a, int x, const char* b, int y) {
    return a + std::to_string(x) + b + std::to_string(y);
  }

  void ExpectRestores(const std::string& what) {
    std::string dest = dir_ / ("restore-" + std::to_string(++restores_));
    auto r = S({"-q", "get", id_, dest});
    ASSERT_EQ(r.exit_code, 0) << what << ": " << Describe(r);
    EXPECT_EQ(DiffTrees(want_, SnapshotTree(dest + "/data")), "") << what;
    fs::remove_all(dest);
  }

  void ExpectVerifies(const std::string& what) {
    auto r = S({"--json", "verify", "--read-data"});
    ASSERT_EQ(r.exit_code, 0) << what << ": " << Describe(r);
  }

  // Runs `args` and kills it with SIGKILL after a random delay (it may finish first).
  void RunAndKill(const std::vector<std::string>& args, std::mt19937_64& rng) {
    std::vector<std::string> argv = {STRATA_BINARY, "-r", repo_, "-q"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = StartProcess(argv, BaseEnv());
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 250));
    kill(pid, SIGKILL);
    WaitProcess(pid);
  }

  std::string data_, id_;
  TreeSnapshot want_;
  int restores_ = 0;
};

TEST_F(RedundancyCliTest, TwoVolumesLostReadRepairScrubDrainRemove) {
  Spread(8);
  fs::remove_all(Vol(2));
  fs::remove_all(Vol(5));
  ExpectRestores("two volumes lost");
  ExpectVerifies("two volumes lost");
  auto r = S({"--json", "volume", "status"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_GT(ParseJson(r)["degraded_reads"].get<int>(), 0);
  // Scrub names the volumes and exits with the integrity code.
  r = S({"--json", "scrub"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  json scrub = ParseJson(r);
  for (const auto& p : scrub["problems"]) {
    EXPECT_TRUE(p["volume"] == "v2" || p["volume"] == "v5") << p.dump();
  }
  // Repair rebuilds onto the six healthy volumes; scrub is then clean.
  r = S({"--json", "repair", "fragments"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_GT(ParseJson(r)["fragments_rebuilt"].get<int>(), 0);
  r = S({"scrub", "--deep"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // The lost volumes hold nothing any more: drain (nothing to move) and remove them.
  for (const char* v : {"v2", "v5"}) {
    r = S({"volume", "drain", v});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"volume", "remove", v});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
  }
  // Six volumes left: a seventh fragment domain is not there, so draining another is refused.
  r = S({"volume", "drain", "v1"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  ExpectRestores("after repair and removal");
}

TEST_F(RedundancyCliTest, ThreeVolumesLostIsAClearErrorNamingObjects) {
  Spread(6);
  for (int i : {1, 3, 6}) fs::remove_all(Vol(i));
  std::string dest = dir_ / "out";
  auto r = S({"-q", "get", id_, dest});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find("is unreadable"), std::string::npos) << r.err;
  r = S({"--json", "scrub"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  json j = ParseJson(r);
  ASSERT_FALSE(j["unreadable"].empty());
  for (const auto& [pack, objects] : j["unreadable"].items()) EXPECT_FALSE(objects.empty()) << pack;
  // Whatever was restored before the error is never wrong: files present are complete and equal.
  if (fs::exists(dest + "/data")) {
    auto got = SnapshotTree(dest + "/data", false);
    for (const auto& [path, entry] : got) {
      auto it = want_.find(path);
      ASSERT_NE(it, want_.end()) << path;
      if (entry.type == 'f') {
        EXPECT_EQ(entry.content, it->second.content) << path;
      }
    }
  }
}

TEST_F(RedundancyCliTest, KilledRepairAndDrainResume) {
  Spread(8);
  std::mt19937_64 rng(42);
  for (int round = 0; round < 4; ++round) {
    // A volume loses its fragments (its disk was replaced by an empty one).
    int lost = 1 + rng() % 6;
    fs::remove_all(Vol(lost) + "/fragments");
    fs::create_directory(Vol(lost) + "/fragments");
    for (int kill = 0; kill < 3; ++kill) RunAndKill({"repair", "fragments"}, rng);
    auto r = S({"--json", "repair", "fragments"});
    ASSERT_EQ(r.exit_code, 0) << "round " << round << ": " << Describe(r);
    r = S({"scrub", "--deep"});
    EXPECT_EQ(r.exit_code, 0) << "round " << round << ": " << Describe(r);
    ExpectVerifies("after killed repairs");
  }
  for (const char* v : {"v7", "v8"}) {
    for (int kill = 0; kill < 3; ++kill) RunAndKill({"volume", "drain", v}, rng);
    auto r = S({"--json", "volume", "drain", v});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"volume", "remove", v});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = S({"scrub", "--deep"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    ExpectVerifies(std::string("after killed drains of ") + v);
  }
  ExpectRestores("after killed repairs and drains");
}

TEST_F(RedundancyCliTest, KilledRebalanceResumesAndEvensOutNewVolumes) {
  // More packs than one, so there is something to spread.
  WriteFile(data_ + "/c.bin", RandomBytes(3, 70u << 20));
  want_ = SnapshotTree(data_);
  auto r = S({"-q", "put", data_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  id_ = r.out.substr(0, 64);
  Spread(6);
  for (int i = 7; i <= 8; ++i) {
    r = S({"volume", "add", Vol(i), "--domain", fmt("rack", (i - 1) / 2, "/disk", i)});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.out.find("volume rebalance"), std::string::npos) << r.out;
  }
  std::mt19937_64 rng(7);
  for (int kill = 0; kill < 4; ++kill) {
    RunAndKill({"volume", "rebalance"}, rng);
    // Whatever moment it died at, every pack is whole: scrub finds nothing missing.
    r = S({"scrub"});
    EXPECT_EQ(r.exit_code, 0) << "after kill " << kill << ": " << Describe(r);
  }
  r = S({"--json", "volume", "rebalance"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // What killed moves left behind (fragments no record names) is removed by repair; `volume
  // status` counts the files on each volume, so before that they would count too.
  r = S({"repair", "fragments"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = S({"--json", "volume", "status"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  uint64_t lo = UINT64_MAX, hi = 0;
  const json status = ParseJson(r);
  for (const auto& v : status["volumes"]) {
    lo = std::min<uint64_t>(lo, v["fragments"].get<uint64_t>());
    hi = std::max<uint64_t>(hi, v["fragments"].get<uint64_t>());
  }
  EXPECT_LE(hi - lo, 1u) << r.out;
  EXPECT_GT(lo, 0u) << r.out;
  r = S({"scrub", "--deep"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  ExpectVerifies("after killed rebalances");
  ExpectRestores("after killed rebalances");
}

}  // namespace
}  // namespace strata::testing
