// Pipeline specs: what parses, what the hash covers, and errors that name the line and the op.
#include <gtest/gtest.h>

#include "strata/transform.h"
#include "testutil/testutil.h"
#include "transform/pipeline.h"

namespace strata::transform {
namespace {

std::string ExamplePath() {
  std::string here = __FILE__;  // tests/transform/pipeline_test.cc
  return here.substr(0, here.rfind("/tests/")) + "/examples/fmnist-pipeline.yaml";
}

Status ErrorOf(const std::string& yaml) {
  auto p = ParsePipeline(yaml, "p.yaml");
  EXPECT_FALSE(p.ok()) << "parsed:\n" << yaml;
  return p.ok() ? Status::OK() : p.status();
}

void ExpectError(const std::string& yaml, const std::string& want) {
  Status s = ErrorOf(yaml);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(want), std::string::npos) << "message: " << s.message() << "\nwanted: " << want;
}

TEST(PipelineTest, TheTextAndTableExamplesParse) {
  std::string dir = ExamplePath().substr(0, ExamplePath().rfind('/'));
  auto text = ParsePipeline(strata::testing::ReadFile(dir + "/text-pipeline.yaml"), "text-pipeline.yaml");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(text->kind, PipelineKind::kText);
  EXPECT_EQ(text->tokenize_index, 5);
  EXPECT_EQ(text->pad_index, 6);
  EXPECT_EQ(text->extensions, (std::vector<std::string>{".txt"}));
  auto table = ParsePipeline(strata::testing::ReadFile(dir + "/tabular-pipeline.yaml"), "tabular-pipeline.yaml");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->kind, PipelineKind::kTabular);
  EXPECT_TRUE(table->extensions.empty());  // rows, not files
  EXPECT_EQ(table->field, "features");
  EXPECT_EQ(table->out_dtype, shard::DType::kFloat32);
}

TEST(PipelineTest, TextAndTableOpsAreCheckedLikeImageOps) {
  ExpectError("ops: [text, {tokenize: {vocab_size: 10}}, lowercase]\n", "op 'lowercase': comes after tokenize");
  ExpectError("ops: [text, {pad: {length: 8}}]\n", "op 'pad': pad needs a tokenize op before it");
  ExpectError("ops: [text, {pad: {length: 0}}]\n", "length is 1..16777216");
  ExpectError("ops: [text, {stopwords: {words: klingon}}]\n", "no built-in list 'klingon'");
  ExpectError("ops: [text, {unicode: {form: NFX}}]\n", "form is NFC, NFD, NFKC or NFKD");
  ExpectError("ops: [text, {tokenize: {model: m.model, vocab_size: 10}}]\n", "'vocab_size' is a training setting");
  ExpectError("ops: [text, {tokenize: {model_type: bytes}}]\n", "model_type is unigram, bpe, word or char");
  ExpectError("ops: [decode, lowercase]\n", "op 'lowercase': is a text op; this pipeline's first op makes it an image pipeline");
  ExpectError("ops: [text, tensor]\n", "op 'tensor': is an image or table op");
  ExpectError("ops: [decode, text]\n", "is the first op of a text pipeline; this one is an image pipeline");
  ExpectError("augment: {variants: 2}\nops: [text]\n", "variants are made by image ops");
  ExpectError("ops: [{columns: []}]\n", "a non-empty list of column names");
  ExpectError("ops: [{columns: [a, a]}]\n", "a column is listed twice");
  ExpectError("ops: [{columns: [a]}, {one_hot: {}}]\n", "op 'one_hot': 'columns' is required");
  ExpectError("ops: [{columns: [a, b]}, {one_hot: {columns: [a, b], categories: [x]}}]\n",
              "categories need exactly one column");
  ExpectError("ops: [{columns: [a]}, {bucketize: {columns: [a], boundaries: [3, 1]}}]\n", "increasing numbers");
  ExpectError("ops: [{columns: [a]}, {fill_missing: {with: mode}}]\n", "with is mean, median, most_frequent or a number");
  ExpectError("ops: [{columns: [a]}, {min_max: {range: [1, 0]}}]\n", "range is [low, high] with low < high");
  ExpectError("ops: [{columns: [a]}, {tensor: {dtype: uint8}}]\n", "float32 or float64");
  ExpectError("ops: [{columns: [a]}, {resize: {size: 3}}]\n", "is an image op; this pipeline's first op makes it a table pipeline");
  // A constant fill is a number in the canonical form; given categories are kept in order.
  auto p = ParsePipeline("ops: [{columns: [a, c]}, {fill_missing: {with: 0}}, {one_hot: {columns: [c], categories: [z, y]}}]\n", "p");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->ops[1].mode, "value");
  EXPECT_EQ(p->ops[1].params["with"], 0.0);
  EXPECT_EQ(p->ops[2].categories, (std::vector<std::string>{"z", "y"}));
}

TEST(PipelineTest, OnlineAugmentationIsDescribedAndHashed) {
  const std::string base = "ops: [decode, {resize: {size: 32}}]\n";
  auto plain = ParsePipeline(base, "p");
  auto online = ParsePipeline(base + "augment: {online: [{random_crop: {size: 32, padding: 4}}, flip]}\n", "p");
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(online.ok()) << online.status().ToString();
  ASSERT_EQ(online->online.size(), 2u);
  EXPECT_EQ(online->online[0].kind, OpKind::kRandomCrop);
  EXPECT_EQ(online->canonical["online"][1]["params"]["probability"], 1.0);
  EXPECT_FALSE(plain->canonical.contains("online"));  // hashes of pipelines without it unchanged
  EXPECT_NE(online->hash, plain->hash);
  ExpectError(base + "augment: {online: [clahe]}\n", "augment: online op 'clahe': the loader applies random_crop");
  ExpectError(base + "augment: {online: [{rotate: {degrees: [-10, 10]}}]}\n", "rotates by 90, 180 or 270 degrees only");
  ExpectError(base + "augment: {online: [{random_crop: {size: 48}}]}\n", "48x48 is larger than the 32x32 output");
  ExpectError("ops: [text]\naugment: {online: [flip]}\n", "online ops are image ops");
}

TEST(PipelineTest, TheFashionMnistExampleParses) {
  auto p = ParsePipeline(strata::testing::ReadFile(ExamplePath()), "fmnist-pipeline.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->name, "fmnist-32");
  EXPECT_EQ(p->classes.size(), 10u);
  EXPECT_EQ(p->classes[0], "T-shirt/top");
  EXPECT_EQ(p->prefix, "train/");
  ASSERT_EQ(p->ops.size(), 4u);
  EXPECT_EQ(p->ops[0].kind, OpKind::kDecode);
  EXPECT_EQ(p->channels, 1);
  EXPECT_EQ(p->out_height, 32);
  EXPECT_EQ(p->out_width, 32);
  EXPECT_EQ(p->out_dtype, shard::DType::kFloat32);
  EXPECT_TRUE(p->ops[2].fit);
  EXPECT_EQ(p->hash.size(), 64u);
}

TEST(PipelineTest, HashIgnoresCommentsKeyOrderAndNameButNotParameters) {
  const std::string a = "name: a\nseed: 1\nops:\n  - decode: {mode: grayscale}\n  - resize: {size: 8, interpolation: area}\n";
  const std::string b = "# a comment\nseed: 1\nname: b\nops:\n  - decode:\n      mode: grayscale\n"
                        "  - resize: {interpolation: area, size: [8, 8], mode: exact}\n";
  const std::string c = "seed: 1\nops:\n  - decode: {mode: grayscale}\n  - resize: {size: 8, interpolation: linear}\n";
  const std::string d = "seed: 2\nops:\n  - decode: {mode: grayscale}\n  - resize: {size: 8, interpolation: area}\n";
  auto ha = CheckPipeline(a, "a"), hb = CheckPipeline(b, "b"), hc = CheckPipeline(c, "c"), hd = CheckPipeline(d, "d");
  ASSERT_TRUE(ha.ok() && hb.ok() && hc.ok() && hd.ok()) << ha.status().ToString() << hb.status().ToString();
  EXPECT_EQ(*ha, *hb);
  EXPECT_NE(*ha, *hc);
  EXPECT_NE(*ha, *hd);
}

TEST(PipelineTest, DefaultsAreFilledIn) {
  auto p = ParsePipeline("ops: [decode]\n", "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->ops[0].mode, "rgb");
  EXPECT_EQ(p->channels, 3);
  EXPECT_EQ(p->out_dtype, shard::DType::kUint8);
  EXPECT_TRUE(p->has_label);
  EXPECT_EQ(p->label_column, "label");
  EXPECT_EQ(p->variants, 1u);
  EXPECT_FALSE(p->extensions.empty());
  auto none = ParsePipeline("label: none\nops: [decode]\n", "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_label);
}

TEST(PipelineTest, ErrorsNameTheLineAndTheOp) {
  ExpectError("ops:\n  - decode\n  - resise: {size: 3}\n", "p.yaml line 3: unknown op 'resise'");
  ExpectError("ops:\n  - decode\n  - resize: {sise: 3}\n", "line 3: op 'resize': unknown setting 'sise'");
  ExpectError("ops:\n  - decode\n  - resize: {mode: exact}\n", "op 'resize': 'size' is required");
  ExpectError("ops:\n  - decode\n  - resize: {size: 0}\n", "op 'resize': 'size' must be between 1 and 65536");
  ExpectError("ops:\n  - decode\n  - resize: {size: 8, interpolation: fancy}\n", "unknown interpolation 'fancy'");
  ExpectError("ops:\n  - decode\n  - normalize\n  - flip\n", "line 4: op 'flip': comes after normalize");
  ExpectError("ops:\n  - resize: {size: 3}\n", "the first op must be decode");
  ExpectError("ops:\n  - decode\n  - tensor\n  - flip\n", "op 'tensor': tensor must be the last op");
  ExpectError("ops:\n  - decode\n  - rotate: {angle: 45}\n", "op 'rotate': angle is 90, 180 or 270");
  ExpectError("ops:\n  - decode: {mode: rgb}\n  - normalize: {mean: [0.5, 0.5], std: [0.5, 0.5]}\n",
              "2 mean/std values for 3 channels");
  ExpectError("ops:\n  - decode\n  - normalize: {mean: fit, std: [0.5]}\n", "fit both mean and std");
  ExpectError("ops:\n  - decode\n  - brightness: {factor: [2, 1]}\n", "has low > high");
  ExpectError("ops:\n  - decode: {mode: grayscale}\n  - flip: {probability: 2}\n", "probability is 0..1");
  ExpectError("ops: [decode]\nsomething: 1\n", "line 2: pipeline: unknown setting 'something'");
  ExpectError("ops: []\n", "'ops' is a non-empty list");
  ExpectError("version: 2\nops: [decode]\n", "pipeline version 2 is not supported");
  ExpectError("ops: [decode]\naugment: {variants: 0}\n", "variants is 1..1024");
  ExpectError("ops: [decode]\noutput: {shard_size: 12parsecs}\n", "unknown size unit 'parsecs'");
  ExpectError("ops: [decode]\nlabel: {classes: [a, b, a]}\n", "class 'a' is listed twice");
  // YAML syntax errors keep yaml-cpp's description and line.
  ExpectError("ops:\n  - decode\n  - resize: {size: 3\n", "p.yaml line");
  ExpectError("- just\n- a list\n", "a pipeline is a map");
}

}  // namespace
}  // namespace strata::transform
