// `strata run` and `strata ckpt` end to end, and the crash test: `strata ckpt import` killed
// with SIGKILL at random moments must leave the previous checkpoint loadable bit for bit and
// the interrupted one invisible.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
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
using Clock = std::chrono::steady_clock;

class CheckpointCliTest : public CliTest {
 protected:
  void SetUp() override { InitRepo({"--pack-size", "1048576"}); }
};

TEST_F(CheckpointCliTest, RunsAndCheckpointsEndToEnd) {
  ASSERT_EQ(S({"dataset", "create", "fm"}).exit_code, 0);
  auto r = S({"--json", "run", "create", "exp-a", "-p", "lr=0.01", "-p", "batch=32", "-t", "baseline", "--dataset", "fm@main"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["params"]["lr"], "0.01");
  EXPECT_EQ(ParseJson(r)["dataset"].get<std::string>().size(), 3 + 64u);  // fm@<commit id>
  ASSERT_EQ(S({"run", "create", "exp-b", "-p", "lr=0.1"}).exit_code, 0);
  EXPECT_EQ(S({"run", "create", "exp-b"}).exit_code, 6);  // exists
  ASSERT_EQ(S({"run", "log", "exp-a", "--step", "10", "-m", "loss=0.5", "-m", "acc=0.8"}).exit_code, 0);
  ASSERT_EQ(S({"run", "log", "exp-b", "--step", "10", "-m", "loss=0.25"}).exit_code, 0);
  EXPECT_EQ(S({"run", "log", "exp-b", "--step", "10", "-m", "loss=abc"}).exit_code, 2);
  ASSERT_EQ(S({"run", "status", "exp-a", "finished"}).exit_code, 0);
  r = S({"--json", "run", "list"});
  ASSERT_EQ(ParseJson(r).size(), 2u);
  r = S({"run", "compare", "exp-a", "exp-b", "-p", "lr", "-m", "loss"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("run    status    lr    loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exp-a  finished  0.01  0.5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exp-b  running   0.1   0.25"), std::string::npos) << r.out;

  // Checkpoints from safetensors files; export gives back the same tensors.
  std::string w1 = RandomBytes(1, 4 * 1000 * 300), b1 = RandomBytes(2, 4 * 300);
  WriteFile(dir_ / "a.safetensors", Safetensors({{"w", {{1000, 300}, w1}}, {"b", {{300}, b1}}}));
  r = S({"ckpt", "import", "exp-a", dir_ / "a.safetensors", "--step", "100"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string w2 = RandomBytes(3, w1.size());
  WriteFile(dir_ / "b.safetensors", Safetensors({{"w", {{1000, 300}, w2}}, {"b", {{300}, b1}}}));
  ASSERT_EQ(S({"ckpt", "import", "exp-a", dir_ / "b.safetensors", "--step", "200"}).exit_code, 0);
  ASSERT_EQ(S({"run", "log", "exp-a", "--step", "100", "-m", "val=0.3"}).exit_code, 0);
  ASSERT_EQ(S({"run", "log", "exp-a", "--step", "200", "-m", "val=0.4"}).exit_code, 0);
  r = S({"--json", "ckpt", "list", "exp-a"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json list = ParseJson(r);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["step"], 200);
  r = S({"--json", "ckpt", "show", "exp-a@100"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["tensors"].size(), 2u);
  EXPECT_EQ(ParseJson(r)["tensors"][1]["shape"], json({1000, 300}));
  r = S({"--json", "ckpt", "verify", "exp-a"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(ParseJson(r)["ok"].get<bool>());
  r = S({"ckpt", "export", "exp-a@100", "--format", "safetensors", "-o", dir_ / "out.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto got = ReadSafetensors(dir_ / "out.safetensors");
  EXPECT_TRUE(got["w"] == w1);
  EXPECT_TRUE(got["b"] == b1);
  // The exported file imports again (a round trip through our own writer).
  ASSERT_EQ(S({"ckpt", "import", "exp-b", dir_ / "out.safetensors", "--step", "1"}).exit_code, 0);
  r = S({"--json", "run", "best", "exp-a", "-m", "val"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)[0]["step"], 100);
  ASSERT_EQ(S({"ckpt", "label", "exp-a@100", "release"}).exit_code, 0);
  r = S({"--json", "ckpt", "retain", "exp-a", "--keep-last", "1", "-n"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseJson(r)["removed"].size(), 0u);  // 200 is last, 100 is labelled
  ASSERT_EQ(S({"ckpt", "rm", "exp-a@200"}).exit_code, 0);
  EXPECT_EQ(S({"ckpt", "rm", "exp-a@200"}).exit_code, 3);
  EXPECT_EQ(ParseJson(S({"--json", "ckpt", "list", "exp-a"})).size(), 1u);
  r = S({"--json", "run", "show", "exp-a"});
  EXPECT_EQ(ParseJson(r)["last_metrics"]["val"]["value"], 0.4);

  // A hostile file is refused with a message, and stores nothing.
  std::string bad = Safetensors({{"w", {{10}, std::string(40, 'x')}}});
  bad.resize(bad.size() - 4);
  WriteFile(dir_ / "bad.safetensors", bad);
  r = S({"ckpt", "import", "exp-b", dir_ / "bad.safetensors", "--step", "2"});
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_NE(r.err.find("safetensors"), std::string::npos) << r.err;
}

size_t Iterations() {
  const char* v = std::getenv("STRATA_CRASH_ITERATIONS");
  return v && *v ? std::strtoul(v, nullptr, 10) : 50;
}

TEST_F(CheckpointCliTest, KilledSavesLeaveThePreviousCheckpoint) {
  // The checkpoint that must survive: 6 MiB in two tensors.
  std::string w = RandomBytes(10, 4 << 20), v = RandomBytes(11, 2 << 20);
  WriteFile(dir_ / "keep.safetensors", Safetensors({{"v", {{512, 1024}, v}}, {"w", {{1024, 1024}, w}}}));
  ASSERT_EQ(S({"-q", "ckpt", "import", "crash", dir_ / "keep.safetensors", "--step", "1"}).exit_code, 0);
  // Each iteration saves new content (so it writes new chunks) as the next step.
  std::string next = dir_ / "next.safetensors";
  WriteFile(next, Safetensors({{"v", {{512, 1024}, RandomBytes(12, 2 << 20)}}, {"w", {{1024, 1024}, RandomBytes(13, 4 << 20)}}}));
  auto t0 = Clock::now();
  ASSERT_EQ(S({"-q", "ckpt", "import", "calib", next, "--step", "1"}).exit_code, 0);
  double save_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  std::mt19937_64 rng(20250101);
  size_t killed = 0, finished = 0;
  std::set<int64_t> completed = {1};
  for (size_t i = 0; i < Iterations(); ++i) {
    int64_t step = 10 + int64_t(i);
    std::string input = dir_ / ("in-" + std::to_string(i % 2) + ".safetensors");
    WriteFile(input, Safetensors({{"v", {{512, 1024}, RandomBytes(100 + i, 2 << 20)}}, {"w", {{1024, 1024}, RandomBytes(200 + i, 4 << 20)}}}));
    auto delay = std::chrono::microseconds(int64_t(std::uniform_real_distribution<double>(0, 1.2 * save_ms * 1000)(rng)));
    auto started = Clock::now();
    pid_t pid = StartProcess({STRATA_BINARY, "-r", repo_, "-q", "ckpt", "import", "crash", input, "--step", std::to_string(step)},
                             BaseEnv(), dir_ / "import.log");
    int status = -1, ws = 0;
    while (Clock::now() - started < delay) {
      if (waitpid(pid, &ws, WNOHANG) == pid) {
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    if (status == -1) {
      ASSERT_EQ(kill(pid, SIGKILL), 0);
      status = WaitProcess(pid);
    }
    ASSERT_TRUE(status == 0 || status == 128 + SIGKILL) << status << "\n" << ReadFile(dir_ / "import.log");
    if (status == 0) completed.insert(step);
    status == 0 ? ++finished : ++killed;

    // Visible checkpoints: the completed ones, and at most the killed one if its tag was
    // created just before the kill; every one of them whole.
    auto r = S({"--json", "ckpt", "list", "crash"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    for (const auto& c : ParseJson(r)) {
      int64_t s = c["step"];
      if (s == step) completed.insert(step);
      ASSERT_TRUE(completed.count(s)) << "checkpoint " << s << " is listed but was never completed";
    }
    ASSERT_EQ(ParseJson(r).size(), completed.size()) << "iteration " << i;
    if (i % 10 == 9 || i + 1 == Iterations()) {
      auto e = S({"ckpt", "export", "crash@1", "-o", dir_ / "got.safetensors"});
      ASSERT_EQ(e.exit_code, 0) << Describe(e);
      auto got = ReadSafetensors(dir_ / "got.safetensors");
      ASSERT_TRUE(got["w"] == w && got["v"] == v) << "checkpoint 1 changed after iteration " << i;
      for (int64_t s : completed) {
        auto vr = S({"ckpt", "verify", "crash@" + std::to_string(s)});
        ASSERT_EQ(vr.exit_code, 0) << "checkpoint " << s << ": " << Describe(vr);
      }
    }
  }
  // The repository itself is consistent, and gc removes what the killed saves left.
  auto vr = S({"--json", "verify"});
  EXPECT_EQ(vr.exit_code, 0) << Describe(vr);
  auto gc = S({"--json", "gc", "--grace", "0"});
  EXPECT_EQ(gc.exit_code, 0) << Describe(gc);
  auto e = S({"ckpt", "export", "crash@1", "-o", dir_ / "got.safetensors"});
  ASSERT_EQ(e.exit_code, 0) << Describe(e);
  auto got = ReadSafetensors(dir_ / "got.safetensors");
  EXPECT_TRUE(got["w"] == w && got["v"] == v);
  std::cerr << "crash test: " << killed << " killed, " << finished << " finished\n";
  EXPECT_GT(killed, 0u);
}

}  // namespace
}  // namespace strata::testing
