// Curation end to end through the C++ API: each rule on a small dataset, the quarantine, the
// report, and a second run that changes nothing.
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "strata/curate.h"
#include "testutil/testutil.h"

namespace strata {
namespace {

using strata::testing::RandomBytes;
using strata::testing::ReadLakeFile;
using strata::testing::TempDir;

std::string Pgm(uint32_t w, uint32_t h, uint32_t seed, int noise = 0) {
  std::string px(w * h, '\0');
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x) px[y * w + x] = char((x * 255 / w + y * seed) % 256 + (noise ? (x * y) % noise : 0));
  return "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n" + px;
}

class CurateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto repo = Repository::Create(dir_ / "repo", "pw", strata::testing::FastInitOptions());
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    lake_ = std::move(*Lake::Open(repo_.get(), LakeOptions{.actor = "tester@host"}));
    ASSERT_TRUE(lake_->CreateDataset("ds").ok());
    auto s = std::move(*lake_->Stage("ds@main"));
    auto add = [&](const std::string& path, const std::string& data, RecordMeta meta) {
      ASSERT_TRUE(s->AddBytes(path, data, FileAttrs{.mtime_ns = 1}).ok());
      if (!meta.empty()) {
        ASSERT_TRUE(s->SetRecord(path, meta).ok());
      }
    };
    add("img/a.pgm", Pgm(32, 32, 1), {{"label", std::string("cat")}});
    add("img/b.pgm", Pgm(32, 32, 1, 3), {{"label", std::string("kitty")}});  // near-duplicate of a
    add("img/c.pgm", Pgm(32, 32, 7), {{"label", std::string("dog")}});
    add("img/d.pgm", Pgm(32, 32, 7), {{"label", std::string("dog")}});  // exact duplicate of c
    add("img/e.pgm", Pgm(32, 32, 9).substr(0, 100), {{"label", std::string("dog")}});  // truncated
    add("img/f.pgm", Pgm(4, 4, 3), {{"label", std::string("dog")}});  // too small
    add("img/g.pgm", Pgm(32, 32, 13), {{"label", std::string("horse")}});  // label not allowed
    add("img/h.pgm", Pgm(40, 32, 21), {});  // no label
    std::string base = "the quick brown fox jumps over the lazy dog near the river bank today ";
    add("txt/1.txt", base + base, {});
    add("txt/2.txt", base + base + "!", {});  // near-duplicate text
    add("txt/3.txt", "Cafe\xCC\x81   menu\n", {});  // e + combining acute: NFC rewrites it
    add("txt/4.txt", std::string("bad \xff utf8"), {});
    ASSERT_TRUE(s->SetRecord("t.csv#2", {{"price", int64_t(-5)}}).ok());
    ASSERT_TRUE(s->SetRecord("t.csv#3", {{"price", int64_t(7)}}).ok());
    ASSERT_TRUE(s->Commit(CommitOptions{.message = "raw"}).ok());
  }

  CurationRules Rules() {
    auto r = ParseCurationRules(R"(
labels:
  allowed: [cat, dog]
  remap: {kitty: cat}
ranges:
  price: {min: 0}
images:
  min_width: 8
  channels: [1]
text:
  files: ["*.txt"]
  normalize: nfc
  whitespace: collapse
duplicates:
  exact: true
  keep: first
  near_text: 0.7
  near_image: 10
filter: "path NOT LIKE 'img/%' OR label IS NOT NULL"
)");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    // Only the images are labelled: the label rule applies to them alone.
    r->select = "path LIKE 'img/%' OR path LIKE 'txt/%' OR path LIKE 't.csv%'";
    return *r;
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
};

TEST_F(CurateTest, EachRuleQuarantinesWithAReasonAndNothingIsDropped) {
  CurationRules rules = Rules();
  rules.allowed_labels.clear();  // checked separately below, on images only
  rules.select = "";
  auto r = Curate(lake_.get(), "ds@main", "ds@curated", rules, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::string, std::string> rule_of;
  for (const auto& f : r->quarantined) rule_of[f.path] = f.rule;
  EXPECT_EQ(rule_of["img/b.pgm"], "near-duplicate");
  EXPECT_EQ(rule_of["img/d.pgm"], "duplicate");
  EXPECT_EQ(rule_of["img/e.pgm"], "decode");
  EXPECT_EQ(rule_of["img/f.pgm"], "image-size");
  EXPECT_EQ(rule_of["img/h.pgm"], "filter");
  EXPECT_EQ(rule_of["txt/2.txt"], "near-duplicate");
  EXPECT_EQ(rule_of["txt/4.txt"], "utf8");
  EXPECT_EQ(rule_of["t.csv#2"], "range");
  EXPECT_EQ(rule_of.size(), 8u) << CurationReportText(*r);
  EXPECT_EQ(r->records_before, 14u);
  EXPECT_EQ(r->records_after, 6u);
  EXPECT_EQ(r->normalised, 2u);  // 3.txt (NFC, spaces) and 1.txt (a trailing space)
  EXPECT_EQ(r->relabelled, 0u);  // b was remapped, then quarantined: only passing records count
  // Quarantined files are kept, with their reason, below .quarantine/.
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@curated:.quarantine/img/e.pgm"), Pgm(32, 32, 9).substr(0, 100));
  auto q = lake_->Query("ds@curated", "SELECT path, quarantine_rule FROM records WHERE quarantine_rule IS NOT NULL ORDER BY path");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->rows.size(), 8u);
  // Passing text is normalised (NFC, whitespace collapsed); the source is untouched.
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@curated:txt/3.txt"), "Caf\xC3\xA9 menu");
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@main:txt/3.txt"), "Cafe\xCC\x81   menu\n");
  EXPECT_NE(CurationReportText(*r).find("near-duplicate"), std::string::npos);
  auto html = CurationReportHtml(lake_.get(), *r);
  ASSERT_TRUE(html.ok());
  EXPECT_NE(html->find("data:image/png;base64,"), std::string::npos);

  // The same rules again: nothing changes, no commit.
  auto again = Curate(lake_.get(), "ds@main", "ds@curated", rules, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->commit.unchanged);
  if (!again->commit.unchanged) {
    auto d = lake_->Diff("ds@" + r->commit.commit.ToHex(), "ds@curated");
    for (const auto& e : d->entries) ADD_FAILURE() << "changed: " << e.path;
  }
}

TEST_F(CurateTest, LabelsAreRemappedAndCheckedAgainstTheAllowedSet) {
  CurationRules rules = Rules();
  rules.select = "path LIKE 'img/%'";
  rules.duplicates = {};
  rules.filter = "";
  auto r = Curate(lake_.get(), "ds@main", "ds@labelled", rules, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::string, std::string> rule_of;
  for (const auto& f : r->quarantined) rule_of[f.path] = f.rule;
  EXPECT_EQ(rule_of["img/g.pgm"], "label");
  EXPECT_EQ(rule_of["img/h.pgm"], "label");
  EXPECT_EQ(rule_of.count("img/b.pgm"), 0u);
  auto q = lake_->Query("ds@labelled", "SELECT label FROM records WHERE path = 'img/b.pgm'");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(std::get<std::string>(q->rows.at(0).at(0)), "cat");
  // Records outside `select` pass untouched.
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@labelled:txt/4.txt"), "bad \xff utf8");
}

// A photo-like test card: smooth gradients and a few shapes whose places depend on `seed`.
cv::Mat Card(int seed, int side) {
  cv::Mat img(side, side, CV_8UC3);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 255 / side, y * 255 / side, (x + y) * 127 / side);
  for (int i = 0; i < 4; ++i) {
    int cx = (seed * 97 + i * 61) % side, cy = (seed * 53 + i * 89) % side;
    cv::circle(img, {cx, cy}, side / 6, cv::Scalar(255 - 60 * i, 40 * i, 200), cv::FILLED);
  }
  return img;
}

std::string Encode(const cv::Mat& img, const std::string& ext, int quality = 90) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, img, out, {cv::IMWRITE_JPEG_QUALITY, quality}));
  return std::string(out.begin(), out.end());
}

// JPEG and PNG bodies are decoded in full, and near duplicates found by perceptual hash survive
// a resize and a re-encode while different images do not match.
TEST_F(CurateTest, ImagesAreDecodedInFullAndNearDuplicatesFoundByPerceptualHash) {
  ASSERT_TRUE(lake_->CreateDataset("photos").ok());
  auto s = std::move(*lake_->Stage("photos@main"));
  cv::Mat a = Card(1, 400), smaller;
  cv::resize(a, smaller, {300, 300}, 0, 0, cv::INTER_AREA);
  std::string jpeg_b = Encode(Card(2, 400), ".jpg");
  std::string corrupt = jpeg_b;
  for (size_t i = corrupt.size() / 3; i < corrupt.size() * 2 / 3; ++i) corrupt[i] = char(i * 7);  // the body, not the header
  std::string png_corrupt = Encode(Card(6, 300), ".png");  // a damaged body, header and end intact
  for (size_t i = png_corrupt.size() / 3; i < png_corrupt.size() / 2; ++i) png_corrupt[i] ^= 0x5a;
  std::map<std::string, std::string> files = {
      {"a.jpg", Encode(a, ".jpg")},
      {"a-small.jpg", Encode(smaller, ".jpg", 60)},  // the same picture, resized and re-encoded
      {"a.png", Encode(a, ".png")},                  // the same picture as PNG
      {"b.jpg", jpeg_b},
      {"c.jpg", Encode(Card(3, 200), ".jpg")},
      {"d.png", Encode(Card(4, 64), ".png")},
      {"truncated.jpg", jpeg_b.substr(0, jpeg_b.size() / 2)},
      {"truncated.png", Encode(Card(5, 100), ".png").substr(0, 2000)},
      {"x-corrupt.jpg", corrupt},
      {"x-corrupt.png", png_corrupt},
  };
  for (const auto& [path, data] : files) ASSERT_TRUE(s->AddBytes(path, data, FileAttrs{.mtime_ns = 1}).ok());
  ASSERT_TRUE(s->Commit(CommitOptions{.message = "photos"}).ok());

  auto rules = ParseCurationRules("images: {}\nduplicates: {exact: true, near_image: 8}\n");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ::testing::internal::CaptureStderr();
  auto r = Curate(lake_.get(), "photos@main", "photos@curated", *rules, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto html = CurationReportHtml(lake_.get(), *r);  // thumbnails of what was quarantined
  std::string printed = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(html.ok()) << html.status().ToString();
  EXPECT_EQ(printed, "") << "damaged images are reasons in the report, not prints";
  std::map<std::string, std::string> rule_of;
  for (const auto& f : r->quarantined) rule_of[f.path] = f.rule + ": " + f.reason;
  EXPECT_EQ(rule_of["a.png"].substr(0, 14), "near-duplicate") << rule_of["a.png"];
  EXPECT_EQ(rule_of["a.jpg"].substr(0, 14), "near-duplicate") << rule_of["a.jpg"];
  EXPECT_EQ(rule_of.count("a-small.jpg"), 0u) << "the first of the group by path is kept";
  EXPECT_EQ(rule_of["truncated.jpg"].substr(0, 6), "decode");
  EXPECT_EQ(rule_of["truncated.png"], "decode: truncated: no end chunk");
  EXPECT_EQ(rule_of["x-corrupt.jpg"].substr(0, 6), "decode") << rule_of["x-corrupt.jpg"];
  EXPECT_EQ(rule_of["x-corrupt.png"].substr(0, 24), "decode: does not decode:") << rule_of["x-corrupt.png"];
  EXPECT_EQ(rule_of.count("b.jpg") + rule_of.count("c.jpg") + rule_of.count("d.png"), 0u) << CurationReportText(*r);
  EXPECT_EQ(r->records_after, 4u) << CurationReportText(*r);
}

TEST(CurationRules, BadRulesNameTheProblem) {
  auto r = ParseCurationRules("labels:\n  allowed: [a]\n  colour: red\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 3"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("colour"), std::string::npos);
  EXPECT_FALSE(ParseCurationRules("types: {width: integer}").ok());
  EXPECT_FALSE(ParseCurationRules("duplicates: {near_text: 2}").ok());
  EXPECT_FALSE(ParseCurationRules("text: {utf8: true}").ok());  // no files
  EXPECT_FALSE(ParseCurationRules("[unclosed").ok());
  EXPECT_TRUE(ParseCurationRules("").ok());
}

TEST_F(CurateTest, BadFilterFailsAndChangesNothing) {
  CurationRules rules;
  rules.filter = "no_such_column >";
  auto r = Curate(lake_.get(), "ds@main", "ds@x", rules, {});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
}

}  // namespace
}  // namespace strata
