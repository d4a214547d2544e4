// `strata transform` end to end: the real binary on an ingested ImageFolder, the cache, the
// error report, a bad pipeline that leaves the output branch where it was, and runs killed with
// SIGKILL that resume.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

using nlohmann::json;

constexpr const char* kPipeline = R"(
name: pets
select: {prefix: raw/}
label: {classes: [cat, dog]}
ops:
  - decode: {mode: grayscale}
  - resize: {size: 8, interpolation: area}
  - normalize: {mean: fit, std: fit}
output: {shard_size: 64KiB}
)";

class TransformCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo({});
    if (HasFatalFailure()) return;
    ASSERT_EQ(S({"dataset", "create", "pets"}).exit_code, 0);
    std::string root = dir_ / "imgs";
    for (int i = 0; i < 12; ++i) {
      std::string cls = i % 2 ? "dog" : "cat";
      WriteFile(root + "/" + cls + "/" + std::to_string(i) + ".pgm",
                "P5\n" + std::to_string(10 + i) + " 12\n255\n" + RandomBytes(i, (10 + i) * 12));
    }
    WriteFile(root + "/cat/broken.pgm", "P5\n10 10\n255\nshort");
    ASSERT_EQ(J({"ingest", root, "pets@main", "--image-folder", "--prefix", "raw"})["files"], 13);
    pipeline_ = dir_ / "pets.yaml";
    WriteFile(pipeline_, kPipeline);
  }

  std::string pipeline_;
};

TEST_F(TransformCliTest, TransformsCachesAndReportsErrors) {
  json r = J({"transform", "pets@main", "--pipeline", pipeline_, "--out", "pets@ready"});
  EXPECT_FALSE(r["up_to_date"].get<bool>());
  EXPECT_EQ(r["records_in"], 13);
  EXPECT_EQ(r["records"], 12);
  EXPECT_EQ(r["failed"], 1);
  EXPECT_EQ(r["errors"][0]["path"], "raw/cat/broken.pgm");
  EXPECT_EQ(r["errors"][0]["op"], "decode");
  EXPECT_EQ(r["stats"]["mean"].size(), 1u);
  std::string commit = r["commit"]["commit"];

  json again = J({"transform", "pets@main", "--pipeline", pipeline_, "--out", "pets@ready"});
  EXPECT_TRUE(again["up_to_date"].get<bool>());
  EXPECT_EQ(again["commit"]["commit"], commit);

  json show = J({"show", "pets@ready"});
  EXPECT_EQ(show["meta"]["transform.failed"], "1");
  EXPECT_EQ(show["meta"]["transform.pipeline_hash"], r["pipeline_hash"]);
  auto manifest = S({"cat", "pets@ready:manifest.json"});
  ASSERT_EQ(manifest.exit_code, 0) << Describe(manifest);
  json m = json::parse(manifest.out);
  EXPECT_EQ(m["schema"][0]["shape"], json::array({1, 8, 8}));
  EXPECT_EQ(m["records"], 12);
  auto errors = S({"cat", "pets@ready:.strata/transform-errors.jsonl"});
  EXPECT_NE(errors.out.find("raw/cat/broken.pgm"), std::string::npos) << Describe(errors);

  json check = J({"transform", "pets@main", "--pipeline", pipeline_, "--check"});
  EXPECT_EQ(check["hash"], r["pipeline_hash"]);
}

TEST_F(TransformCliTest, ABadPipelineIsAUsageErrorAndTheBranchStays) {
  J({"transform", "pets@main", "--pipeline", pipeline_, "--out", "pets@ready"});
  std::string head = J({"show", "pets@ready"})["id"];
  WriteFile(pipeline_, "ops:\n  - decode\n  - resize: {size: 8, interpolation: sideways}\n");
  auto r = S({"transform", "pets@main", "--pipeline", pipeline_, "--out", "pets@ready"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("line 3: op 'resize': unknown interpolation 'sideways'"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("did not move"), std::string::npos);
  EXPECT_EQ(J({"show", "pets@ready"})["id"], head);
}

// Killed at random moments (and once right after a checkpoint), each run resumes from its
// partial output and ends with the bytes of a run that was never interrupted; the output branch
// never shows a partial result.
TEST_F(TransformCliTest, AKilledTransformResumesToTheSameOutput) {
  std::string root = dir_ / "more";
  for (int i = 0; i < 400; ++i) {
    WriteFile(root + "/" + (i % 2 ? "dog" : "cat") + "/m" + std::to_string(i) + ".pgm",
              "P5\n24 24\n255\n" + RandomBytes(100 + i, 576));
  }
  J({"ingest", root, "pets@main", "--image-folder", "--prefix", "raw"});
  std::string yaml = kPipeline;
  yaml.replace(yaml.find("size: 8"), 7, "size: 32");  // 4 KiB records, 16 to a shard: many checkpoints
  const std::string pipe = dir_ / "small.yaml";
  WriteFile(pipe, yaml);
  auto transform = [&](const std::string& out) {
    return std::vector<std::string>{STRATA_BINARY, "-r", repo_, "-q", "--threads", "1", "transform", "pets@main",
                                    "--pipeline", pipe, "--out", out, "--checkpoint-seconds", "0"};
  };
  auto started = std::chrono::steady_clock::now();
  json whole = J({"transform", "pets@main", "--pipeline", pipe, "--out", "pets@whole", "--checkpoint-seconds", "0"});
  const double whole_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  ASSERT_GT(whole["checkpoints"].get<int>(), 10);
  const std::string want_tree = J({"show", "pets@whole"})["tree"];

  std::mt19937_64 rng(7);
  int resumed = 0;
  for (int k = 0; k < 4; ++k) {
    const std::string out = "pets@run" + std::to_string(k);
    pid_t pid = StartProcess(transform(out), BaseEnv(), dir_ / "transform.log");
    if (k == 0) {
      // Until the partial output holds a checkpoint.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (std::chrono::steady_clock::now() < deadline) {
        auto log = S({"--json", "log", out + ".partial", "-n", "1"});
        if (log.exit_code == 0 && log.out.find("partial output") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(
          static_cast<int64_t>(std::uniform_real_distribution<double>(0.1, 1.0)(rng) * whole_ms * 1000)));
    }
    kill(pid, SIGKILL);
    int status = WaitProcess(pid);
    const std::string when = "run " + std::to_string(k) + " (exit " + std::to_string(status) + ")";
    ASSERT_TRUE(status == 0 || status == 128 + SIGKILL) << when << ": " << ReadFile(dir_ / "transform.log");
    if (status != 0) {
      // Made at the input commit when the run started; it moves only to the whole output.
      auto show = S({"--json", "show", out});
      if (show.exit_code == 0) {
        EXPECT_FALSE(ParseJson(show)["meta"].contains("transform.key")) << when;
      }
    }
    auto again = S({"--json", "transform", "pets@main", "--pipeline", pipe, "--out", out});
    ASSERT_EQ(again.exit_code, 0) << when << ": " << Describe(again);
    json r = ParseJson(again);
    resumed += r["resumed_records"].get<int>() > 0;
    EXPECT_EQ(J({"show", out})["tree"], want_tree) << when;
    json branches = J({"branch", "list", "pets"});
    for (const auto& b : branches) EXPECT_EQ(b["name"].get<std::string>().find(".partial"), std::string::npos) << when;
  }
  EXPECT_GE(resumed, 1);
  auto verify = S({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << Describe(verify);
}

// A partial branch that a transform did not make is not overwritten; --force starts over.
TEST_F(TransformCliTest, AForeignPartialBranchIsLeftAlone) {
  J({"branch", "create", "pets@ready.partial", "pets@main"});
  WriteFile(dir_ / "mine/notes.txt", "mine");
  J({"commit", "pets@ready.partial", dir_ / "mine", "-m", "mine"});
  auto r = S({"transform", "pets@main", "--pipeline", pipeline_, "--out", "pets@ready"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("is not the partial output of a transform"), std::string::npos) << Describe(r);
  EXPECT_EQ(S({"show", "pets@ready.partial"}).exit_code, 0);
  EXPECT_NE(S({"show", "pets@ready"}).exit_code, 0);
}

}  // namespace
}  // namespace strata::testing
