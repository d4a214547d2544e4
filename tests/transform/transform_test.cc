// Transforms end to end through a real repository and lake: shards read back with ShardReader,
// determinism, the cache, per-record errors and pipelines that fail as a whole.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "strata/lake.h"
#include "strata/shard.h"
#include "strata/transform.h"
#include "testutil/testutil.h"
#include "transform/pipeline.h"
#include "transform/text_ops.h"

namespace strata {
namespace {

using strata::testing::TempDir;

std::string Pgm(int rows, int cols, const std::string& pixels) {
  return "P5\n" + std::to_string(cols) + " " + std::to_string(rows) + "\n255\n" + pixels;
}

// Pixels of test image i (rows x cols): a deterministic pattern that differs per image.
std::string Pixels(int i, int rows, int cols) {
  std::string p(static_cast<size_t>(rows) * cols, '\0');
  for (size_t k = 0; k < p.size(); ++k) p[k] = static_cast<char>((i * 37 + k * 11) % 256);
  return p;
}

CommitOptions Message(const char* text) {
  CommitOptions o;
  o.message = text;
  return o;
}

constexpr const char* kRawPipeline = R"(
name: raw
ops:
  - decode: {mode: grayscale}
  - tensor: {dtype: uint8}
)";

constexpr const char* kNormPipeline = R"(
name: norm
seed: 9
select: {prefix: img/}
ops:
  - decode: {mode: grayscale}
  - normalize: {mean: fit, std: fit}
)";

struct ShardContents {
  std::vector<shard::Record> records;
  shard::Schema schema;
  std::vector<std::string> bytes;  // each shard file
};

class TransformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = strata::testing::CreateTestLake(dir_ / "repo", "ds");
    ASSERT_TRUE(t.lake);
    repo_ = std::move(t.repo);
    lake_ = std::move(t.lake);
  }

  // Commits n 6x5 images img/0000.pgm... labelled cat/dog alternately (plus `extra` files).
  void AddImages(int n, int first = 0, std::map<std::string, std::string> extra = {}) {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok()) << stage.status().ToString();
    for (int i = first; i < first + n; ++i) {
      std::string path = fmt_path(i);
      ASSERT_TRUE((*stage)->AddBytes(path, Pgm(6, 5, Pixels(i, 6, 5))).ok());
      ASSERT_TRUE((*stage)->SetRecord(path, {{"label", std::string(i % 2 ? "dog" : "cat")}}).ok());
    }
    for (const auto& [path, content] : extra) {
      ASSERT_TRUE((*stage)->AddBytes(path, content).ok());
      ASSERT_TRUE((*stage)->SetRecord(path, {{"label", std::string("cat")}}).ok());
    }
    auto c = (*stage)->Commit(Message("images"));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  }

  static std::string fmt_path(int i) {
    char buf[32];
    snprintf(buf, sizeof buf, "img/%04d.pgm", i);
    return buf;
  }

  Result<TransformReport> Run(const std::string& yaml, const std::string& out, size_t threads = 2,
                              bool force = false) {
    TransformOptions o;
    o.pipeline = yaml;
    o.pipeline_name = "test.yaml";
    o.threads = threads;
    o.force = force;
    o.work_dir = dir_.path();
    return Transform(repo_.get(), lake_.get(), "ds@main", out, o);
  }

  std::string ReadAll(const std::string& spec) {
    auto rd = lake_->OpenFile(spec);
    EXPECT_TRUE(rd.ok()) << spec << ": " << rd.status().ToString();
    if (!rd.ok()) return "";
    std::string out((*rd)->size(), '\0');
    size_t got = 0;
    EXPECT_TRUE((*rd)->ReadAt(0, out.size(), reinterpret_cast<uint8_t*>(out.data()), &got).ok());
    out.resize(got);
    return out;
  }

  // Every record of the output's shards, via the manifest, read with ShardReader.
  ShardContents ReadShards(const std::string& out) {
    ShardContents c;
    auto manifest = nlohmann::json::parse(ReadAll(out + ":manifest.json"));
    int n = 0;
    for (const auto& s : manifest["shards"]) {
      std::string bytes = ReadAll(out + ":" + s["path"].get<std::string>());
      std::string local = dir_ / ("read-" + std::to_string(n++) + ".shard");
      strata::testing::WriteFile(local, bytes);
      c.bytes.push_back(bytes);
      shard::ReaderOptions ro;
      ro.direct_io = false;
      auto reader = shard::ShardReader::Open(local, ro);
      EXPECT_TRUE(reader.ok()) << reader.status().ToString();
      if (!reader.ok()) continue;
      EXPECT_TRUE((*reader)->Verify().ok());
      EXPECT_EQ((*reader)->first_record(), s["first_record"].get<uint64_t>());
      c.schema = (*reader)->schema();
      for (uint64_t i = 0; i < (*reader)->record_count(); ++i) {
        auto r = (*reader)->Read(i);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        if (r.ok()) c.records.push_back(*r);
      }
    }
    return c;
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
};

TEST_F(TransformTest, ShardsHoldTheImagesAndLabels) {
  AddImages(10);
  auto r = Run(kRawPipeline, "ds@raw");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->up_to_date);
  EXPECT_EQ(r->records_in, 10u);
  EXPECT_EQ(r->records_out, 10u);
  EXPECT_EQ(r->failed, 0u);
  ShardContents c = ReadShards("ds@raw");
  ASSERT_EQ(c.records.size(), 10u);
  ASSERT_EQ(c.schema.fields.size(), 3u);
  EXPECT_EQ(c.schema.fields[0].name, "image");
  EXPECT_EQ(c.schema.fields[0].shape, (std::vector<int64_t>{1, -1, -1}));  // no sizing op
  EXPECT_EQ(c.schema.fields[1].num_classes, 2u);
  for (int i = 0; i < 10; ++i) {
    const auto& t = std::get<shard::Tensor>(c.records[i][0]);
    EXPECT_EQ(t.shape, (std::vector<uint64_t>{1, 6, 5}));
    EXPECT_EQ(t.data, Pixels(i, 6, 5)) << i;
    EXPECT_EQ(std::get<shard::Label>(c.records[i][1]).value, static_cast<uint32_t>(i % 2));  // cat=0, dog=1
    EXPECT_EQ(std::get<std::string>(c.records[i][2]), fmt_path(i));
  }
  // Lineage in the commit and the manifest.
  auto head = lake_->Resolve("ds@raw");
  ASSERT_TRUE(head.ok());
  auto main = lake_->Resolve("ds@main");
  const auto& meta = head->commit.meta;
  EXPECT_EQ(meta.at("transform.input_commit"), main->commit.id.ToHex());
  EXPECT_EQ(meta.at("transform.input_tree"), main->commit.tree.ToHex());
  EXPECT_EQ(meta.at("transform.pipeline_hash"), r->pipeline_hash);
  EXPECT_EQ(meta.at("transform.ops"), "decode@1 tensor@1");
  EXPECT_NE(meta.at("transform.tools").find("opencv"), std::string::npos);
  EXPECT_EQ(meta.at("transform.records"), "10");
  EXPECT_EQ(meta.at("transform.failed"), "0");
  auto manifest = nlohmann::json::parse(ReadAll("ds@raw:manifest.json"));
  EXPECT_EQ(manifest["format"], "strata.transform.manifest");
  EXPECT_EQ(manifest["input"]["commit"], main->commit.id.ToHex());
  EXPECT_EQ(manifest["pipeline"]["hash"], r->pipeline_hash);
  EXPECT_EQ(manifest["classes"], nlohmann::json::array({"cat", "dog"}));
  EXPECT_EQ(manifest["records"], 10);
  EXPECT_FALSE(manifest.contains("augment"));
  // Online augmentation is a description for the loader: the same shards, and the manifest says it.
  auto online = Run(std::string(kRawPipeline) + "augment: {online: [{flip: {probability: 0.5}}]}\n", "ds@online");
  ASSERT_TRUE(online.ok()) << online.status().ToString();
  EXPECT_EQ(ReadShards("ds@online").records, ReadShards("ds@raw").records);
  auto described = nlohmann::json::parse(ReadAll("ds@online:manifest.json"));
  EXPECT_EQ(described["augment"]["online"][0]["op"], "flip");
  EXPECT_EQ(described["augment"]["layout"], "chw");
  EXPECT_EQ(described["augment"]["field"], "image");
  // The new branch started at the input commit and holds only the output.
  EXPECT_EQ(r->commit.parent, main->commit.id);
  auto files = lake_->List("ds@raw", true);
  ASSERT_TRUE(files.ok());
  for (const auto& e : *files) EXPECT_FALSE(e.path.starts_with("img")) << e.path;
  // A shard row per shard in the output's records.
  auto q = lake_->Query("ds@raw", "SELECT path, records FROM records WHERE path LIKE 'shards/%'");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_EQ(q->rows.size(), 1u);
  EXPECT_EQ(std::get<int64_t>(q->rows[0][1]), 10);
}

TEST_F(TransformTest, NormalizeUsesStatisticsFittedOnTheData) {
  AddImages(7);
  auto r = Run(kNormPipeline, "ds@norm");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  double sum = 0, sum_sq = 0, n = 0;
  for (int i = 0; i < 7; ++i) {
    for (unsigned char v : Pixels(i, 6, 5)) {
      sum += v;
      sum_sq += double(v) * v;
      ++n;
    }
  }
  double mean = sum / n, sd = std::sqrt(sum_sq / n - mean * mean);
  ASSERT_EQ(r->stats["mean"].size(), 1u);
  EXPECT_NEAR(r->stats["mean"][0], mean / 255, 1e-12);
  EXPECT_NEAR(r->stats["std"][0], sd / 255, 1e-12);
  ShardContents c = ReadShards("ds@norm");
  ASSERT_EQ(c.records.size(), 7u);
  EXPECT_EQ(c.schema.fields[0].dtype, shard::DType::kFloat32);
  const auto& t = std::get<shard::Tensor>(c.records[3][0]);
  ASSERT_EQ(t.data.size(), 30 * sizeof(float));
  std::string px = Pixels(3, 6, 5);
  for (int k = 0; k < 30; ++k) {
    float got;
    std::memcpy(&got, t.data.data() + 4 * k, 4);
    double want = (static_cast<unsigned char>(px[k]) / 255.0 - mean / 255) / (sd / 255);
    EXPECT_NEAR(got, want, 1e-5) << k;
  }
  auto manifest = nlohmann::json::parse(ReadAll("ds@norm:manifest.json"));
  EXPECT_DOUBLE_EQ(manifest["stats"]["normalize"]["mean"][0].get<double>(), r->stats["mean"][0]);
  EXPECT_NE(lake_->Resolve("ds@norm")->commit.meta.at("transform.stats").find("mean"), std::string::npos);
}

TEST_F(TransformTest, SameInputAndPipelineGiveIdenticalBytesWhateverTheThreads) {
  AddImages(40);
  std::string aug = R"(
seed: 3
augment: {variants: 3}
ops:
  - decode: {mode: grayscale}
  - resize: {size: 40}
  - random_crop: {size: 32, padding: 2}
  - flip: {probability: 0.5}
  - brightness: {factor: [0.8, 1.2]}
  - normalize: {mean: fit, std: fit}
output: {shard_size: 64KiB}
)";
  auto a = Run(aug, "ds@one", 1);
  auto b = Run(aug, "ds@two", 2);
  auto c = Run(aug, "ds@three", 3);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status().ToString() << b.status().ToString();
  EXPECT_EQ(a->records_out, 120u);
  EXPECT_GT(a->shards.size(), 1u);  // several shards, each with its own derived id
  EXPECT_NE(a->shards[0].id, a->shards[1].id);
  ShardContents sa = ReadShards("ds@one"), sb = ReadShards("ds@two"), sc = ReadShards("ds@three");
  EXPECT_EQ(sa.bytes, sb.bytes);  // every byte of every shard
  EXPECT_EQ(sa.bytes, sc.bytes);
  EXPECT_EQ(ReadAll("ds@one:manifest.json"), ReadAll("ds@two:manifest.json"));
  EXPECT_EQ(ReadAll("ds@one:manifest.json"), ReadAll("ds@three:manifest.json"));
  ASSERT_EQ(sa.records.size(), 120u);
  // Variants of one record differ (seeded per path and variant), in order 0, 1, 2.
  EXPECT_EQ(std::get<int64_t>(sa.records[0][3]), 0);
  EXPECT_EQ(std::get<int64_t>(sa.records[2][3]), 2);
  EXPECT_NE(std::get<shard::Tensor>(sa.records[0][0]).data, std::get<shard::Tensor>(sa.records[1][0]).data);
  // Shard record ranges are contiguous.
  uint64_t next = 0;
  for (const auto& s : a->shards) {
    EXPECT_EQ(s.first_record, next);
    next += s.records;
  }
  EXPECT_EQ(next, 120u);
}

TEST_F(TransformTest, ASecondRunIsUpToDateAndAChangedInputRecomputes) {
  AddImages(5);
  auto first = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->up_to_date);
  EXPECT_EQ(again->commit.commit, first->commit.commit);
  EXPECT_EQ(again->records_out, 5u);
  EXPECT_EQ(lake_->Resolve("ds@out")->commit.id, first->commit.commit);  // no new commit

  // Another pipeline is another key.
  auto other = Run(std::string(kNormPipeline) + "output: {keep_path: false}\n", "ds@out");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->up_to_date);
  EXPECT_EQ(other->commit.parent, first->commit.commit);

  AddImages(1, 5);  // the input changes
  auto changed = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_FALSE(changed->up_to_date);
  EXPECT_EQ(changed->records_out, 6u);
  std::string shard_before = ReadAll("ds@out:" + changed->shards[0].path);
  auto forced = Run(kNormPipeline, "ds@out", 2, /*force=*/true);
  ASSERT_TRUE(forced.ok());
  EXPECT_FALSE(forced->up_to_date);
  EXPECT_EQ(ReadAll("ds@out:" + forced->shards[0].path), shard_before);  // recomputed to the same bytes
  EXPECT_EQ(changed->reused, 0u);  // normalize: fit, and the new image changed the statistics
}

TEST_F(TransformTest, AChangedInputRecomputesOnlyTheRecordsThatChanged) {
  // Random crops and flips, two variants, small shards: reused records must be the bytes a full
  // run makes, in the right places.
  const std::string pipeline = R"(
seed: 4
augment: {variants: 2}
ops:
  - decode: {mode: grayscale}
  - random_crop: {size: [5, 4], padding: 1}
  - flip: {probability: 0.5}
output: {shard_size: 64KiB}
)";
  AddImages(40);
  auto first = Run(pipeline, "ds@out");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->reused, 0u);
  // Change one image, add one, remove one.
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    ASSERT_TRUE((*stage)->AddBytes(fmt_path(7), Pgm(6, 5, Pixels(99, 6, 5))).ok());
    ASSERT_TRUE((*stage)->AddBytes(fmt_path(40), Pgm(6, 5, Pixels(40, 6, 5))).ok());
    ASSERT_TRUE((*stage)->SetRecord(fmt_path(40), {{"label", std::string("cat")}}).ok());
    ASSERT_TRUE((*stage)->Remove(fmt_path(12)).ok());
    ASSERT_TRUE((*stage)->Commit(Message("edit")).ok());
  }
  auto second = Run(pipeline, "ds@out");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->records_in, 40u);
  EXPECT_EQ(second->reused, 38u);  // all but the changed and the new one
  EXPECT_EQ(second->records_out, 80u);
  EXPECT_EQ(lake_->Resolve("ds@out")->commit.meta.at("transform.reused"), "38");
  // The same bytes as a run that computes everything.
  auto full = Run(pipeline, "ds@full");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->reused, 0u);
  EXPECT_EQ(ReadShards("ds@out").bytes, ReadShards("ds@full").bytes);
}

TEST_F(TransformTest, FittedStatisticsReadOnlyTheInputsThatChanged) {
  AddImages(30);
  auto first = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->fit_reused, 0u);
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    ASSERT_TRUE((*stage)->AddBytes(fmt_path(7), Pgm(6, 5, Pixels(99, 6, 5))).ok());
    ASSERT_TRUE((*stage)->Commit(Message("edit")).ok());
  }
  auto second = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fit_reused, 29u);  // only the changed image was read for the fit
  EXPECT_NE(second->stats.at("mean"), first->stats.at("mean"));
  EXPECT_EQ(second->reused, 0u);  // new statistics: every record changes
  // Exactly what a run that reads everything fits and writes.
  auto full = Run(kNormPipeline, "ds@full");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->fit_reused, 0u);
  EXPECT_EQ(full->stats, second->stats);
  EXPECT_EQ(ReadShards("ds@out").bytes, ReadShards("ds@full").bytes);
}

TEST_F(TransformTest, ARelabelledInputIsRecomputedAndTheRestCopied) {
  AddImages(12);
  auto first = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    ASSERT_TRUE((*stage)->SetRecord(fmt_path(4), {{"label", std::string("dog")}}).ok());  // was cat
    ASSERT_TRUE((*stage)->Commit(Message("relabel")).ok());
  }
  auto second = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  // The pixels are the same, so are the statistics: the other records are copied, and the
  // relabelled one carries its new label.
  EXPECT_EQ(second->fit_reused, 12u);
  EXPECT_EQ(second->stats, first->stats);
  EXPECT_EQ(second->reused, 11u);
  ShardContents c = ReadShards("ds@out");
  ASSERT_EQ(c.records.size(), 12u);
  EXPECT_EQ(std::get<shard::Label>(c.records[4][1]).value, 1u);
  auto full = Run(kNormPipeline, "ds@full");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(c.bytes, ReadShards("ds@full").bytes);
}

TEST_F(TransformTest, ACorruptImageGoesToTheErrorReportAndTheRestIsWritten) {
  AddImages(6, 0, {{"img/0003x.pgm", "P5\n4 4\n255\nshort"}, {"img/0004x.pgm", "not an image at all"}});
  auto r = Run(kNormPipeline, "ds@out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_in, 8u);
  EXPECT_EQ(r->records_out, 6u);
  EXPECT_EQ(r->failed, 2u);
  ASSERT_EQ(r->errors.size(), 2u);
  EXPECT_EQ(r->errors[0].path, "img/0003x.pgm");
  EXPECT_EQ(r->errors[0].op, "decode");
  EXPECT_EQ(r->errors[1].path, "img/0004x.pgm");
  std::string report = ReadAll("ds@out:.strata/transform-errors.jsonl");
  EXPECT_NE(report.find("\"path\":\"img/0003x.pgm\""), std::string::npos) << report;
  EXPECT_NE(report.find("\"op\":\"decode\""), std::string::npos);
  EXPECT_EQ(lake_->Resolve("ds@out")->commit.meta.at("transform.failed"), "2");
  EXPECT_EQ(ReadShards("ds@out").records.size(), 6u);
}

TEST_F(TransformTest, QuarantinedFilesAreNotTransformed) {
  AddImages(2, 0, {{".quarantine/img/0009.pgm", Pgm(6, 5, Pixels(9, 6, 5))}});
  auto r = Run(kRawPipeline, "ds@out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_in, 2u);
}

TEST_F(TransformTest, RecordsWithoutAUsableLabelAreReported) {
  AddImages(3);
  auto stage = lake_->Stage("ds@main");
  ASSERT_TRUE(stage.ok());
  ASSERT_TRUE((*stage)->AddBytes("img/nolabel.pgm", Pgm(6, 5, Pixels(1, 6, 5))).ok());
  ASSERT_TRUE((*stage)->Commit(Message("unlabelled")).ok());
  auto r = Run("label: {classes: [cat]}\nops: [decode]\n", "ds@out");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_out, 2u);  // 0 and 2 are cats
  ASSERT_EQ(r->errors.size(), 2u);
  EXPECT_EQ(r->errors[0].path, "img/0001.pgm");
  EXPECT_EQ(r->errors[0].op, "label");
  EXPECT_NE(r->errors[0].message.find("'dog' is not one of the 1 classes"), std::string::npos);
  EXPECT_EQ(r->errors[1].path, "img/nolabel.pgm");
}

TEST_F(TransformTest, ABadPipelineFailsAndTheBranchDoesNotMove) {
  AddImages(3);
  auto bad = Run("ops:\n  - decode\n  - resize: {size: -1}\n", "ds@new");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("test.yaml line 3: op 'resize'"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("did not move"), std::string::npos);
  EXPECT_TRUE(lake_->Resolve("ds@new").status().IsNotFound());  // not even created

  auto good = Run(kRawPipeline, "ds@out");
  ASSERT_TRUE(good.ok());
  auto bad2 = Run("ops: [decode, {frobnicate: {}}]\n", "ds@out");
  ASSERT_FALSE(bad2.ok());
  EXPECT_NE(bad2.status().message().find("unknown op 'frobnicate'"), std::string::npos);
  EXPECT_EQ(lake_->Resolve("ds@out")->commit.id, good->commit.commit);

  // A crop larger than every image fails each record, not the transform.
  auto crop = Run("ops: [decode, {center_crop: {size: 100}}]\n", "ds@out");
  ASSERT_TRUE(crop.ok());
  EXPECT_EQ(crop->records_out, 0u);
  EXPECT_EQ(crop->failed, 3u);
  EXPECT_EQ(crop->errors[0].op, "center_crop");
}

TEST_F(TransformTest, OutputToAnotherDatasetAndInputPaths) {
  AddImages(4);
  auto stage = lake_->Stage("ds@main");
  ASSERT_TRUE(stage.ok());
  ASSERT_TRUE((*stage)->AddBytes("other/x.pgm", Pgm(6, 5, Pixels(1, 6, 5))).ok());
  ASSERT_TRUE((*stage)->SetRecord("other/x.pgm", {{"label", std::string("cat")}}).ok());
  ASSERT_TRUE((*stage)->Commit(Message("other")).ok());
  TransformOptions o;
  o.pipeline = kRawPipeline;
  o.work_dir = dir_.path();
  auto r = Transform(repo_.get(), lake_.get(), "ds@main:img", "ready@main", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_in, 4u);  // only below img/
  EXPECT_EQ(ReadShards("ready@main").records.size(), 4u);
  auto bad_out = Transform(repo_.get(), lake_.get(), "ds@main", "ready@main:sub", o);
  EXPECT_EQ(bad_out.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------- text

constexpr const char* kTextPipeline = R"(
name: tok
seed: 5
select: {prefix: docs/}
label: {column: label}
ops:
  - text
  - unicode: {form: NFC}
  - lowercase
  - whitespace
  - stopwords: {words: english}
  - tokenize: {vocab_size: 60, model_type: unigram, add_eos: true}
  - pad: {length: 12}
)";

// Document i: words from a small vocabulary, some in capitals, with stray white space.
std::string Doc(int i) {
  static const char* kWords[] = {"river", "stone", "The", "bright", "a", "LIGHT", "over", "garden", "of", "silver",
                                 "quiet", "and", "morning", "field", "Café"};
  std::string s = "  ";
  for (int k = 0; k < 6 + i % 9; ++k) {
    s += kWords[(i * 7 + k * 3) % 15];
    s += k % 4 == 3 ? " \t\n " : " ";
  }
  return s;
}

uint32_t U32At(const std::string& data, size_t i) {
  uint32_t v;
  std::memcpy(&v, data.data() + 4 * i, 4);
  return v;
}

TEST_F(TransformTest, TextIsNormalisedTokenizedWithATrainedModelAndPadded) {
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    for (int i = 0; i < 40; ++i) {
      char path[32];
      snprintf(path, sizeof path, "docs/%03d.txt", i);
      ASSERT_TRUE((*stage)->AddBytes(path, Doc(i)).ok());
      ASSERT_TRUE((*stage)->SetRecord(path, {{"label", std::string(i % 2 ? "pos" : "neg")}}).ok());
    }
    ASSERT_TRUE((*stage)->AddBytes("docs/bad.txt", std::string("caf\xc3 \xff")).ok());
    ASSERT_TRUE((*stage)->SetRecord("docs/bad.txt", {{"label", std::string("pos")}}).ok());
    ASSERT_TRUE((*stage)->Commit(Message("docs")).ok());
  }
  auto r = Run(kTextPipeline, "ds@tok");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_in, 41u);
  EXPECT_EQ(r->records_out, 40u);
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_EQ(r->errors[0].path, "docs/bad.txt");
  EXPECT_EQ(r->errors[0].message, "not valid UTF-8");

  ShardContents c = ReadShards("ds@tok");
  ASSERT_EQ(c.records.size(), 40u);
  ASSERT_EQ(c.schema.fields.size(), 4u);
  EXPECT_EQ(c.schema.fields[0].name, "tokens");
  EXPECT_EQ(c.schema.fields[0].dtype, shard::DType::kInt32);
  EXPECT_EQ(c.schema.fields[0].shape, (std::vector<int64_t>{12}));
  EXPECT_EQ(c.schema.fields[1].name, "length");

  // The stored model encodes the normalised text of each record to the ids in its shard.
  std::string model = ReadAll("ds@tok:tokenizer.model");
  auto tok = transform::Tokenizer::Load(model, "tokenizer.model");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto pipeline = transform::ParsePipeline(kTextPipeline, "p");
  ASSERT_TRUE(pipeline.ok());
  for (int i = 0; i < 40; ++i) {
    std::string text = Doc(i);
    std::string error;
    for (size_t k = 1; k < 5; ++k) ASSERT_TRUE(transform::ApplyTextOp(pipeline->ops[k], text, &error)) << error;
    EXPECT_EQ(text.find("the"), std::string::npos) << text;  // a stop word
    EXPECT_EQ(text.find("  "), std::string::npos) << text;
    auto ids = (*tok)->Encode(text, pipeline->ops[5]);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(ids->back(), 3) << "eos";
    const auto& t = std::get<shard::Tensor>(c.records[i][0]);
    int64_t length = std::get<int64_t>(c.records[i][1]);
    EXPECT_EQ(length, std::min<int64_t>(static_cast<int64_t>(ids->size()), 12)) << i;
    for (size_t k = 0; k < 12; ++k) {
      uint32_t want = k < ids->size() ? static_cast<uint32_t>((*ids)[k]) : 0;  // pad id 0
      EXPECT_EQ(U32At(t.data, k), want) << i << " " << k;
    }
    EXPECT_EQ(std::get<shard::Label>(c.records[i][2]).value, static_cast<uint32_t>(i % 2 ? 1 : 0));
  }
  auto manifest = nlohmann::json::parse(ReadAll("ds@tok:manifest.json"));
  EXPECT_EQ(manifest["stats"]["tokenizer"]["trained_on"], 40);
  EXPECT_EQ(manifest["stats"]["tokenizer"]["vocab_size"], (*tok)->vocab_size());

  // Deterministic: the model and the shards are the same bytes on one thread as on two.
  auto again = Run(kTextPipeline, "ds@tok2", 1);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ReadAll("ds@tok2:tokenizer.model"), model);
  EXPECT_EQ(ReadShards("ds@tok2").bytes, c.bytes);

  // A model given as a file of the input, and text taken from a column of the records file.
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    ASSERT_TRUE((*stage)->AddBytes("models/sp.model", model).ok());
    ASSERT_TRUE((*stage)->SetRecord("reviews.jsonl#1", {{"body", std::string("  The   RIVER  ")}}).ok());
    ASSERT_TRUE((*stage)->SetRecord("reviews.jsonl#2", {{"body", int64_t{7}}}).ok());
    ASSERT_TRUE((*stage)->Commit(Message("rows")).ok());
  }
  auto rows = Run("select: {prefix: 'reviews.jsonl#'}\nlabel: none\n"
                  "ops: [{text: {column: body}}, lowercase, whitespace, {tokenize: {model: models/sp.model}}]\n",
                  "ds@rows");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->records_out, 1u);
  ASSERT_EQ(rows->errors.size(), 1u);
  EXPECT_EQ(rows->errors[0].message, "column 'body' is not text");
  ShardContents rc = ReadShards("ds@rows");
  ASSERT_EQ(rc.records.size(), 1u);
  EXPECT_EQ(rc.schema.fields[0].shape, (std::vector<int64_t>{-1}));  // not padded
  auto want = (*tok)->Encode("the river", pipeline->ops[0]);
  ASSERT_TRUE(want.ok());
  const auto& t = std::get<shard::Tensor>(rc.records[0][0]);
  ASSERT_EQ(t.shape, (std::vector<uint64_t>{want->size()}));
  for (size_t k = 0; k < want->size(); ++k) EXPECT_EQ(U32At(t.data, k), static_cast<uint32_t>((*want)[k]));
  EXPECT_EQ(ReadAll("ds@rows:tokenizer.model"), model);

  // Without a tokenizer, the text itself is the output.
  auto plain = Run("select: {prefix: 'reviews.jsonl#'}\nlabel: none\nops: [{text: {column: body}}, lowercase, whitespace]\n",
                   "ds@plain");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  ShardContents pc = ReadShards("ds@plain");
  ASSERT_EQ(pc.records.size(), 1u);
  EXPECT_EQ(pc.schema.fields[0].name, "text");
  EXPECT_EQ(std::get<std::string>(pc.records[0][0]), "the river");
}

// ---------------------------------------------------------------------------- tables

float F32At(const std::string& data, size_t i) {
  float v;
  std::memcpy(&v, data.data() + 4 * i, 4);
  return v;
}

TEST_F(TransformTest, TableColumnsAreFilledScaledAndEncodedWithFittedStatistics) {
  {
    auto stage = lake_->Stage("ds@main");
    ASSERT_TRUE(stage.ok());
    // age: 20, 30, missing, 50, 40; city: categories; score: 0..8; row 6 has text for an age.
    const std::vector<std::pair<MetaValue, std::string>> rows = {
        {int64_t{20}, "oslo"}, {30.0, "rome"}, {MetaValue{}, "oslo"}, {int64_t{50}, "lima"}, {int64_t{40}, "rome"},
        {std::string("old"), "rome"}};
    for (size_t i = 0; i < rows.size(); ++i) {
      RecordMeta m = {{"city", rows[i].second}, {"score", static_cast<int64_t>(2 * i)},
                      {"label", static_cast<int64_t>(i % 2)}};
      if (!std::holds_alternative<std::monostate>(rows[i].first)) m["age"] = rows[i].first;
      ASSERT_TRUE((*stage)->SetRecord("people.csv#" + std::to_string(i + 1), m).ok());
    }
    ASSERT_TRUE((*stage)->Commit(Message("table")).ok());
  }
  constexpr const char* kTable = R"(
select: {prefix: 'people.csv#'}
label: {column: label}
ops:
  - columns: [age, city, score]
  - fill_missing: {columns: [age], with: mean}
  - standardize: {columns: [age]}
  - min_max: {columns: [score], range: [-1, 1]}
  - one_hot: {columns: [city]}
)";
  auto r = Run(kTable, "ds@tab");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records_in, 6u);
  EXPECT_EQ(r->records_out, 5u);
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_EQ(r->errors[0].path, "people.csv#6");
  EXPECT_EQ(r->errors[0].op, "fill_missing");
  EXPECT_EQ(r->errors[0].message, "column 'age': 'old' is not a number");

  ShardContents c = ReadShards("ds@tab");
  ASSERT_EQ(c.records.size(), 5u);
  EXPECT_EQ(c.schema.fields[0].name, "features");
  EXPECT_EQ(c.schema.fields[0].shape, (std::vector<int64_t>{5}));
  auto manifest = nlohmann::json::parse(ReadAll("ds@tab:manifest.json"));
  EXPECT_EQ(manifest["stats"]["features"],
            nlohmann::json::array({"age", "city=lima", "city=oslo", "city=rome", "score"}));
  // age: the missing one filled with the mean of 20, 30, 50, 40 (35), then standardised.
  const double ages[] = {20, 30, 35, 50, 40};
  double mean = 35, var = 0;
  for (double a : ages) var += (a - mean) * (a - mean);
  double sd = std::sqrt(var / 5);
  EXPECT_DOUBLE_EQ(manifest["stats"]["tabular"][0]["fitted"]["age"].get<double>(), 35.0);
  const char* cities[] = {"oslo", "rome", "oslo", "lima", "rome"};
  for (int i = 0; i < 5; ++i) {
    const auto& t = std::get<shard::Tensor>(c.records[i][0]);
    EXPECT_FLOAT_EQ(F32At(t.data, 0), static_cast<float>((ages[i] - mean) / sd)) << i;
    EXPECT_EQ(F32At(t.data, 1), std::string(cities[i]) == "lima" ? 1.0f : 0.0f);
    EXPECT_EQ(F32At(t.data, 2), std::string(cities[i]) == "oslo" ? 1.0f : 0.0f);
    EXPECT_EQ(F32At(t.data, 3), std::string(cities[i]) == "rome" ? 1.0f : 0.0f);
    EXPECT_FLOAT_EQ(F32At(t.data, 4), static_cast<float>(-1 + 2 * (2.0 * i) / 8.0)) << i;  // score 0..8 of good rows
    EXPECT_EQ(std::get<shard::Label>(c.records[i][1]).value, static_cast<uint32_t>(i % 2));
  }

  // A missing value that no op fills fails its row; bucketize counts the boundaries passed.
  auto b = Run("select: {prefix: 'people.csv#'}\nlabel: none\n"
               "ops: [{columns: [age]}, {bucketize: {columns: [age], boundaries: [25, 45]}}, {tensor: {dtype: float64}}]\n",
               "ds@buckets");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->records_out, 4u);
  ASSERT_EQ(b->errors.size(), 2u);
  EXPECT_EQ(b->errors[0].message, "column 'age' is missing (add a fill_missing op)");
  ShardContents bc = ReadShards("ds@buckets");
  ASSERT_EQ(bc.records.size(), 4u);
  EXPECT_EQ(bc.schema.fields[0].dtype, shard::DType::kFloat64);
  const double want[] = {0, 1, 2, 1};  // 20, 30, 50, 40
  for (int i = 0; i < 4; ++i) {
    double v;
    std::memcpy(&v, std::get<shard::Tensor>(bc.records[i][0]).data.data(), 8);
    EXPECT_EQ(v, want[i]) << i;
  }

  // A column the table does not have fails the whole transform.
  auto bad = Run("select: {prefix: 'people.csv#'}\nops: [{columns: [age]}, {standardize: {columns: [height]}}]\n",
                 "ds@bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no column 'height'"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace strata
