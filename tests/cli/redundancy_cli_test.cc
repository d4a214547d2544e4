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

// The disk of the repository directory is lost (and two volumes with it): every volume holds a
// copy of the metadata, so the repository is recreated from one of them and reads back byte for
// byte, its datasets and refs too; repair then restores full redundancy and the mirrors.
TEST_F(RedundancyCliTest, ALostRepositoryDirectoryIsRecoveredFromAVolume) {
  Spread(8);
  // Metadata written after the volumes were added: a dataset, a commit, a branch.
  J({"dataset", "create", "ds"});
  J({"commit", "ds@main", data_, "-m", "data"});
  J({"branch", "create", "ds@dev", "ds@main"});
  const std::string head = HeadOf("ds@dev");
  auto notvol = Run({"-r", dir_ / "elsewhere", "volume", "recover", "--from", data_});
  EXPECT_NE(notvol.exit_code, 0);
  EXPECT_NE(notvol.err.find("not a strata volume"), std::string::npos) << Describe(notvol);
  auto occupied = Run({"-r", data_, "volume", "recover", "--from", Vol(3)});
  EXPECT_NE(occupied.exit_code, 0);
  EXPECT_NE(occupied.err.find("not empty"), std::string::npos) << Describe(occupied);

  fs::remove_all(repo_);
  fs::remove_all(Vol(2));
  fs::remove_all(Vol(5));
  auto r = S({"--json", "volume", "recover", "--from", Vol(3)});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json rec = ParseJson(r);
  EXPECT_GT(rec["files"].get<int>(), 10);
  EXPECT_TRUE(rec["fuller"].empty()) << rec.dump();  // every volume's copy was up to date
  EXPECT_EQ(rec["datasets"], 1);
  EXPECT_GT(rec["placed_packs"].get<int>(), 0);
  ExpectRestores("after recovery");
  EXPECT_EQ(HeadOf("ds@dev"), head);
  std::string out = dir_ / "checkout";
  auto co = S({"-q", "checkout", "ds@dev", out});
  ASSERT_EQ(co.exit_code, 0) << Describe(co);
  EXPECT_EQ(DiffTrees(want_, SnapshotTree(out)), "");
  ExpectVerifies("after recovery");

  // The lost volumes come back empty; repair rebuilds their fragments and metadata copies.
  for (int i : {2, 5}) {
    fs::create_directories(Vol(i));
    std::string marker = ReadFile(Vol(3) + "/strata-volume");
    marker.replace(marker.find("\"v3\""), 4, "\"v" + std::to_string(i) + "\"");
    WriteFile(Vol(i) + "/strata-volume", marker);
    fs::create_directories(Vol(i) + "/fragments");
    fs::create_directories(Vol(i) + "/tmp");
  }
  json repaired = J({"repair", "fragments"});
  EXPECT_GT(repaired["fragments_rebuilt"].get<int>(), 0);
  EXPECT_GT(repaired["mirror_files"].get<int>(), 10);
  EXPECT_TRUE(fs::exists(Vol(5) + "/meta/config"));
  EXPECT_EQ(J({"scrub"})["problems"].size(), 0u);
  EXPECT_EQ(J({"repair", "fragments"})["mirror_files"], 0);  // nothing left to copy
  json status = J({"volume", "status"});
  EXPECT_GT(status["metadata_files"].get<int>(), 10);
  for (const auto& v : status["volumes"]) EXPECT_EQ(v["metadata_files"], status["metadata_files"]) << v.dump();
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
    r = S({"volume", "add", Vol(i), "--domain", fmt("rack", (i - 1) / 2, "/disk", i), "--no-rebalance"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_NE(r.out.find("volume rebalance"), std::string::npos) << r.out;
  }
  r = S({"--json", "volume", "status"});
  const json before = ParseJson(r);
  for (const auto& v : before["volumes"]) {
    if (v["id"] == "v7" || v["id"] == "v8") {
      EXPECT_EQ(v["fragments"], 0) << "--no-rebalance moved something";
    }
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


// Adding a volume to a repository whose packs are spread starts a rebalance in the background,
// detached from the command (which returns at once); it evens out the fragments.
TEST_F(RedundancyCliTest, AddingAVolumeRebalancesInTheBackground) {
  Spread(6);
  json added = J({"volume", "add", Vol(7), "--domain", "rack9/disk7"});
  ASSERT_TRUE(added.contains("rebalance")) << added.dump();
  const pid_t pid = added["rebalance"]["pid"].get<int>();
  const std::string log = added["rebalance"]["log"];
  EXPECT_TRUE(fs::exists(log)) << log;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(kill(pid, 0), 0) << "the background rebalance is still running";
  const std::string said = ReadFile(log);
  EXPECT_NE(said.find("rebalance started"), std::string::npos) << said;
  EXPECT_NE(said.find("rebalance: "), std::string::npos) << said;
  EXPECT_EQ(said.find("error"), std::string::npos) << said;
  uint64_t lo = UINT64_MAX, hi = 0;
  const json status = J({"volume", "status"});
  for (const auto& v : status["volumes"]) {
    lo = std::min<uint64_t>(lo, v["fragments"].get<uint64_t>());
    hi = std::max<uint64_t>(hi, v["fragments"].get<uint64_t>());
  }
  EXPECT_LE(hi - lo, 1u);
  EXPECT_GT(lo, 0u);
  json deep = J({"scrub", "--deep"});
  EXPECT_EQ(deep["warnings"], json::array()) << deep.dump();
  ExpectVerifies("after the background rebalance");
  ExpectRestores("after the background rebalance");
}

// A dataset's own policy holds for what its commits write and, after `policy apply`, for data it
// shares with a dataset under a weaker one: with the two volumes gone that held the shared data
// under the weak policy, everything the strong dataset references still reads back.
TEST_F(RedundancyCliTest, ADatasetsPolicyHoldsForItsDataAndWhatItShares) {
  std::vector<std::string> vols;
  for (int i = 1; i <= 6; ++i) {
    vols.push_back(Vol(i));
    auto r = S({"volume", "add", Vol(i), "--domain", fmt("rack", i, "/disk", i)});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  ASSERT_EQ(S({"volume", "policy", "set", "replicate:2"}).exit_code, 0);
  ASSERT_EQ(S({"dataset", "create", "raw"}).exit_code, 0);
  ASSERT_EQ(S({"dataset", "create", "scratch"}).exit_code, 0);
  auto missing = S({"volume", "policy", "set", "rs:4+2", "--dataset", "nosuch"});
  EXPECT_NE(missing.exit_code, 0) << Describe(missing);
  EXPECT_NE(missing.err.find("nosuch"), std::string::npos) << missing.err;
  auto too_wide = S({"volume", "policy", "set", "rs:5+2", "--dataset", "raw"});
  EXPECT_NE(too_wide.exit_code, 0) << Describe(too_wide);
  auto set = S({"volume", "policy", "set", "rs:4+2", "--dataset", "raw"});
  ASSERT_EQ(set.exit_code, 0) << Describe(set);
  json shown = J({"volume", "policy", "show"});
  EXPECT_EQ(shown["policy"], "replicate:2");
  EXPECT_EQ(shown["datasets"], (json{{"raw", "rs:4+2"}})) << shown.dump();

  // Shared data first reaches the repository through the weak dataset, then raw commits it too
  // (deduplicated: no new chunks), and raw commits data of its own.
  std::string shared = dir_ / "shared", own = dir_ / "own";
  WriteFile(shared + "/s.bin", RandomBytes(21, 3u << 20));
  WriteFile(own + "/o.bin", RandomBytes(22, 3u << 20));
  const auto before = FragmentHolders(vols);
  J({"commit", "scratch@main", shared, "-m", "shared"});
  // A pack of the shared data, as scratch wrote it (replicate:2): the largest new one.
  std::string shared_pack;
  uintmax_t largest = 0;
  std::vector<std::string> lost;
  for (const auto& [pack, holders] : FragmentHolders(vols)) {
    if (before.count(pack)) continue;
    for (const auto& e : fs::recursive_directory_iterator(holders[0] + "/fragments")) {
      if (e.path().filename().string().starts_with(pack) && e.file_size() > largest) {
        largest = e.file_size();
        shared_pack = pack;
        lost = holders;
      }
    }
  }
  ASSERT_EQ(lost.size(), 2u) << shared_pack;
  J({"commit", "raw@main", own, "-m", "own"});
  for (const auto& [pack, n] : FragmentsPerPack(vols)) {
    if (pack.ends_with("-c1")) EXPECT_TRUE(n == 6 || n == 3) << pack << ": " << n;  // rs:4+2, or 3 copies < 1 MiB
    else EXPECT_EQ(n, 2) << pack;
  }
  std::string both = dir_ / "both";
  WriteFile(both + "/s.bin", ReadFile(shared + "/s.bin"));
  WriteFile(both + "/o.bin", ReadFile(own + "/o.bin"));
  J({"commit", "raw@main", both, "-m", "shared too"});

  json applied = J({"volume", "policy", "apply"});
  EXPECT_GT(applied["objects_regrouped"].get<int>(), 0) << applied.dump();
  json again = J({"volume", "policy", "apply"});
  EXPECT_EQ(again["objects_regrouped"], 0) << again.dump();
  EXPECT_EQ(again["packs_reencoded"], 0) << again.dump();
  json deep = J({"scrub", "--deep"});
  EXPECT_EQ(deep["warnings"], json::array()) << deep.dump();
  ExpectVerifies("after apply");

  // The shared data left its replicate:2 pack: the two volumes that held it can go.
  EXPECT_EQ(FragmentHolders(vols).count(shared_pack), 0u) << shared_pack;
  for (const auto& v : lost) fs::rename(v, v + ".gone");
  std::string out = dir_ / "co-raw";
  auto co = S({"checkout", "raw@main", out});
  ASSERT_EQ(co.exit_code, 0) << Describe(co);
  EXPECT_EQ(DiffTrees(SnapshotTree(both, false), SnapshotTree(out, false)), "");
  for (const auto& v : lost) fs::rename(v + ".gone", v);

  ASSERT_EQ(S({"volume", "policy", "set", "inherit", "--dataset", "raw"}).exit_code, 0);
  EXPECT_EQ(J({"volume", "policy", "show"})["datasets"], json::object());
}

}  // namespace
}  // namespace strata::testing
