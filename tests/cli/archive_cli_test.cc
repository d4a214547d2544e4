// `strata archive`, `strata restore`, `strata archive list` and the archive column of
// `strata report governance`, end to end; and a move killed with SIGKILL at random moments.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Log-like text: compressible at zstd 3, more so at 19.
std::string LogText(uint64_t seed, size_t n) {
  static const char* kWords[] = {"epoch", "step", "loss", "accuracy", "lr", "warmup", "shard", "batch",
                                 "rank", "gpu", "checkpoint", "saved", "eval", "train", "val"};
  std::string out;
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  while (out.size() < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out += kWords[x % 15];
    out += (x >> 24) % 9 == 0 ? "\n" : " ";
    if ((x >> 40) % 3 == 0) out += std::to_string((x >> 44) % 100000);
    out += " ";
  }
  out.resize(n);
  return out;
}

std::vector<std::string> PackNames(const std::string& repo, bool archive) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(repo + "/packs")) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename();
    if (name.ends_with("-archive") == archive) out.push_back(name);
  }
  return out;
}

uint64_t PackBytes(const std::string& repo) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(repo + "/packs")) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

class ArchiveCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo();
    src_ = dir_ / "src";
    for (int i = 0; i < 4; ++i) WriteFile(src_ + "/logs/run" + std::to_string(i) + ".log", LogText(i, 400'000));
    WriteFile(src_ + "/weights.bin", RandomBytes(9, 300'000));
    WriteFile(src_ + "/README", "a small file\n");
    ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
    J({"commit", "fm@main", src_, "-m", "import"});
    ASSERT_EQ(S({"tag", "create", "fm@v1", "fm@main"}).exit_code, 0);
    v1_ = SnapshotTree(src_, false);
  }

  // Checks out NAME@REF and expects it to equal src_ byte for byte.
  void ExpectCheckout(const std::string& spec, const std::string& when) {
    std::string out = dir_ / ("co" + std::to_string(checkouts_++));
    auto r = S({"checkout", spec, out});
    ASSERT_EQ(r.exit_code, 0) << when << ": " << Describe(r);
    EXPECT_EQ(DiffTrees(spec == "fm@v1" ? v1_ : SnapshotTree(src_, false), SnapshotTree(out, false)), "") << when;
    fs::remove_all(out);
  }

  void ExpectVerifies(const std::string& when, bool allow_warnings = false) {
    json v = J({"verify", "--read-data"});
    EXPECT_EQ(v["ok"], true) << when << ": " << v.dump();
    if (!allow_warnings) {
      EXPECT_EQ(v["warnings"], json::array()) << when << ": " << v.dump();
    }
  }

  std::string src_;
  TreeSnapshot v1_;  // src_ as fm@v1 holds it
  int checkouts_ = 0;
};

TEST_F(ArchiveCliTest, ArchiveKeepsIdsAndBytesAndRestoreBringsItBack) {
  json before = J({"show", "fm@v1"});
  const uint64_t packs_before = PackBytes(repo_);
  ASSERT_TRUE(PackNames(repo_, true).empty());

  json dry = J({"archive", "fm@v1", "--dry-run"});
  EXPECT_EQ(dry["dry_run"], true);
  EXPECT_GT(dry["objects_moved"].get<uint64_t>(), 0u);
  EXPECT_TRUE(PackNames(repo_, true).empty());

  json a = J({"archive", "fm@v1"});
  EXPECT_EQ(a["tier"], "archive");
  EXPECT_EQ(a["unchanged"], false);
  EXPECT_EQ(a["commit"], before["id"]);
  EXPECT_EQ(a["objects_moved"], dry["objects_moved"]);
  EXPECT_EQ(a["objects_moved"], a["objects"]) << "every object of the version moves";
  EXPECT_LT(a["stored_after"].get<uint64_t>(), a["stored_before"].get<uint64_t>());
  EXPECT_LT(PackBytes(repo_), packs_before) << "stored bytes drop for compressible data";
  EXPECT_FALSE(PackNames(repo_, true).empty());
  json after = J({"archive", "fm@v1", "--dry-run"});
  EXPECT_EQ(after["objects_moved"], 0);
  EXPECT_EQ(after["objects_in_tier"], a["objects"]) << "every object of the version is in an archive pack";

  // Ids unchanged, content byte-identical, the repository verifies.
  EXPECT_EQ(J({"show", "fm@v1"}), before);
  EXPECT_EQ(S({"cat", "fm@v1:logs/run2.log"}).out, LogText(2, 400'000));
  ExpectCheckout("fm@v1", "archived");
  ExpectVerifies("archived");

  // A second archive is a no-op, said in words.
  auto again = S({"archive", "fm@v1"});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_NE(again.out.find("already in the archive tier"), std::string::npos) << again.out;

  json list = J({"archive", "list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["dataset"], "fm");
  EXPECT_EQ(list[0]["commit"], before["id"]);
  EXPECT_EQ(list[0]["refs"], json::array({"main", "v1"}));
  EXPECT_EQ(list[0]["stored_after"], a["stored_after"]);
  auto human = S({"archive", "list", "fm"});
  EXPECT_NE(human.out.find("archive  [main, v1]"), std::string::npos) << human.out;

  json gov = J({"report", "governance"});
  ASSERT_EQ(gov["datasets"].size(), 1u);
  EXPECT_EQ(gov["datasets"][0]["archive"], "1 version archived");
  ASSERT_EQ(gov["datasets"][0]["archived_versions"].size(), 1u);
  EXPECT_EQ(gov["datasets"][0]["archived_versions"][0]["commit"], before["id"]);
  auto gov_text = S({"report", "governance", "fm"});
  EXPECT_NE(gov_text.out.find("archive [main, v1] since"), std::string::npos) << gov_text.out;

  // The audit log has the move.
  json audit = J({"audit", "log"});
  bool found = false;
  for (const auto& e : audit) found |= e.value("action", "") == "archive";
  EXPECT_TRUE(found) << audit.dump();

  // gc after archive keeps the archive packs archive, data readable.
  const auto archive_packs = PackNames(repo_, true);
  J({"gc", "--grace", "0"});
  EXPECT_EQ(PackNames(repo_, true), archive_packs);
  EXPECT_EQ(J({"archive", "fm@v1", "--dry-run"})["objects_in_tier"], a["objects"]);
  ExpectCheckout("fm@v1", "after gc");

  // Restore: back to hot, same ids, verify.
  json r = J({"restore", "fm@v1"});
  EXPECT_EQ(r["tier"], "hot");
  EXPECT_EQ(r["objects_moved"], a["objects_moved"]);
  EXPECT_TRUE(PackNames(repo_, true).empty());
  EXPECT_EQ(J({"show", "fm@v1"}), before);
  ExpectCheckout("fm@v1", "restored");
  ExpectVerifies("restored");
  EXPECT_EQ(J({"archive", "list"}), json::array());
  EXPECT_EQ(J({"report", "governance"})["datasets"][0]["archive"], "hot");
  auto again_hot = S({"restore", "fm@v1"});
  EXPECT_NE(again_hot.out.find("already in the hot tier"), std::string::npos) << again_hot.out;
  EXPECT_EQ(J({"audit", "verify"})["ok"], true);
}

TEST_F(ArchiveCliTest, ClearErrorsAndHelp) {
  auto unknown = S({"archive", "nope@v1"});
  EXPECT_EQ(unknown.exit_code, 3) << Describe(unknown);
  auto badref = S({"archive", "fm@nope"});
  EXPECT_EQ(badref.exit_code, 3) << Describe(badref);
  EXPECT_NE(badref.err.find("nope"), std::string::npos) << badref.err;
  auto nospec = S({"archive"});
  EXPECT_EQ(nospec.exit_code, 2) << Describe(nospec);
  EXPECT_NE(nospec.err.find("strata archive NAME@REF"), std::string::npos) << nospec.err;
  auto badtier = S({"archive", "fm@v1", "--tier", "cold"});
  EXPECT_EQ(badtier.exit_code, 2) << Describe(badtier);
  auto badlevel = S({"archive", "fm@v1", "--level", "23"});
  EXPECT_EQ(badlevel.exit_code, 2) << Describe(badlevel);
  EXPECT_TRUE(J({"archive", "list"}).empty()) << "a refused archive moved something";
  auto help = S({"archive", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("zstd at level 19"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("strata restore"), std::string::npos) << help.out;
  auto rhelp = S({"restore", "--help"});
  EXPECT_NE(rhelp.out.find("hot tier"), std::string::npos) << rhelp.out;
}

TEST_F(ArchiveCliTest, ArchivePacksFollowTheArchivePolicyOnVolumes) {
  WriteFile(src_ + "/noise.bin", RandomBytes(11, 3u << 20));  // archive packs of 1 MiB and more
  J({"commit", "fm@main", src_, "-m", "noise"});
  std::vector<std::string> vols;
  for (int i = 1; i <= 6; ++i) {
    vols.push_back(dir_ / ("vol" + std::to_string(i)));
    auto r = S({"volume", "add", vols.back(), "--domain", "rack" + std::to_string(i) + "/disk1"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  ASSERT_EQ(S({"volume", "policy", "set", "replicate:2"}).exit_code, 0);
  J({"volume", "policy", "apply"});
  auto too_wide = S({"volume", "policy", "set", "rs:5+2", "--tier", "archive"});
  EXPECT_EQ(too_wide.exit_code, 6) << Describe(too_wide);

  // Without an archive policy, archive packs follow the hot one.
  J({"archive", "fm@main"});
  for (const auto& [pack, n] : FragmentsPerPack(vols)) EXPECT_EQ(n, 2) << pack;

  auto set = S({"volume", "policy", "set", "rs:3+2", "--tier", "archive"});
  ASSERT_EQ(set.exit_code, 0) << Describe(set);
  json shown = J({"volume", "policy", "show"});
  EXPECT_EQ(shown["policy"], "replicate:2");
  EXPECT_EQ(shown["archive_policy"], "rs:3+2");
  auto scrub = S({"--json", "scrub"});
  EXPECT_NE(scrub.out.find("another shape than their policy"), std::string::npos) << scrub.out;
  J({"volume", "policy", "apply"});
  int archive_packs = 0, striped = 0;
  for (const auto& [pack, n] : FragmentsPerPack(vols)) {
    if (pack.ends_with("-archive")) {
      ++archive_packs;
      EXPECT_TRUE(n == 5 || n == 3) << pack << ": " << n;  // rs:3+2, or 3 copies below 1 MiB
      striped += n == 5;
    } else {
      EXPECT_EQ(n, 2) << pack;
    }
  }
  EXPECT_GT(archive_packs, 0);
  EXPECT_GT(striped, 0);
  json deep = J({"scrub", "--deep"});
  EXPECT_EQ(deep["warnings"], json::array()) << deep.dump();
  ExpectVerifies("archived on volumes");
  std::string out = dir_ / "co-volumes";
  ASSERT_EQ(S({"checkout", "fm@main", out}).exit_code, 0);
  EXPECT_EQ(DiffTrees(SnapshotTree(src_, false), SnapshotTree(out, false)), "");

  // Back to hot: new packs are hot packs under replicate:2.
  J({"restore", "fm@main"});
  for (const auto& [pack, n] : FragmentsPerPack(vols)) {
    EXPECT_FALSE(pack.ends_with("-archive")) << pack << " survived the restore";
    EXPECT_EQ(n, 2) << pack;
  }
  ExpectVerifies("restored on volumes");
  ASSERT_EQ(S({"volume", "policy", "set", "inherit", "--tier", "archive"}).exit_code, 0);
  EXPECT_EQ(J({"volume", "policy", "show"})["archive_policy"], "replicate:2");
}

// A move killed at a random moment leaves every version readable and the repository verifying;
// running it again finishes it.
TEST_F(ArchiveCliTest, KilledMidwayLosesNothing) {
  for (int i = 0; i < 6; ++i) WriteFile(src_ + "/more/log" + std::to_string(i) + ".log", LogText(100 + i, 1'000'000));
  J({"commit", "fm@main", src_, "-m", "more"});
  std::mt19937_64 rng(42);
  double move_ms = 1500;
  int killed = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string tier = i % 2 == 0 ? "archive" : "restore";
    std::vector<std::string> argv = {STRATA_BINARY, "-r", repo_, "-q"};
    if (tier == "archive") argv.insert(argv.end(), {"archive", "fm@main"});
    else argv.insert(argv.end(), {"restore", "fm@main"});
    auto delay = std::chrono::microseconds(
        static_cast<int64_t>(std::uniform_real_distribution<double>(0, move_ms * 1000)(rng)));
    auto started = Clock::now();
    pid_t pid = StartProcess(argv, BaseEnv(), dir_ / "move.log");
    int status = -1, ws = 0;
    while (Clock::now() - started < delay) {
      if (waitpid(pid, &ws, WNOHANG) == pid) {
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        move_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (status == -1) {
      ASSERT_EQ(kill(pid, SIGKILL), 0);
      status = WaitProcess(pid);
      ++killed;
    }
    const std::string when = fmt::format("{} {} (killed after {} ms, exit {})", tier, i, delay.count() / 1000, status);
    ASSERT_TRUE(status == 0 || status == 128 + SIGKILL) << when << ": " << ReadFile(dir_ / "move.log");
    ExpectVerifies(when, /*allow_warnings=*/true);
    ExpectCheckout("fm@main", when);
    // The same command again completes the move.
    auto again = S({"--json", tier, "fm@main"});
    ASSERT_EQ(again.exit_code, 0) << when << ": " << Describe(again);
    json list = J({"archive", "list"});
    EXPECT_EQ(list.size(), tier == "archive" ? 1u : 0u) << when;
    ExpectCheckout("fm@v1", when);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(killed, 0);
  // gc (which cleans up leftovers) leaves a clean repository.
  J({"gc", "--grace", "0"});
  ExpectVerifies("at the end");
}

}  // namespace
}  // namespace strata::testing
