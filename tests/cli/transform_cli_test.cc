// `strata transform` end to end: the real binary on an ingested ImageFolder, the cache, the
// error report, and a bad pipeline that leaves the output branch where it was.
#include <string>
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

}  // namespace
}  // namespace strata::testing
