// The image ops on small synthetic images, with the exact pixels expected.
#include <cstring>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ingest/jpeg.h"
#include "transform/image_ops.h"
#include "transform/pipeline.h"

namespace strata::transform {
namespace {

// One op parsed from YAML, as a pipeline would have it.
Op ParseOne(const std::string& op_yaml) {
  auto p = ParsePipeline("ops:\n  - decode: {mode: grayscale}\n  - " + op_yaml + "\n", "test.yaml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok() || p->ops.size() < 2) return {};
  return p->ops[1];
}

cv::Mat Gray(int rows, int cols, std::vector<uint8_t> values) {
  cv::Mat m(rows, cols, CV_8UC1);
  std::memcpy(m.data, values.data(), values.size());
  return m;
}

std::vector<uint8_t> Pixels(const cv::Mat& m) {
  cv::Mat c = m.isContinuous() ? m : m.clone();
  return std::vector<uint8_t>(c.data, c.data + c.total() * c.elemSize());
}

std::string Pgm(int rows, int cols, const std::vector<uint8_t>& values) {
  std::string s = "P5\n" + std::to_string(cols) + " " + std::to_string(rows) + "\n255\n";
  s.append(values.begin(), values.end());
  return s;
}

std::span<const uint8_t> Span(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(RngTest, SeededByPipelineSeedPathAndVariant) {
  Rng a = RecordRng(7, "train/001.pgm", 0), b = RecordRng(7, "train/001.pgm", 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next(), b.Next());
  EXPECT_NE(RecordRng(7, "train/001.pgm", 0).Next(), RecordRng(8, "train/001.pgm", 0).Next());
  EXPECT_NE(RecordRng(7, "train/001.pgm", 0).Next(), RecordRng(7, "train/002.pgm", 0).Next());
  EXPECT_NE(RecordRng(7, "train/001.pgm", 0).Next(), RecordRng(7, "train/001.pgm", 1).Next());
  Rng r(1);
  for (int i = 0; i < 1000; ++i) {
    double u = r.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  // SplitMix64's published first output for seed 0, so the stream is the same everywhere.
  EXPECT_EQ(Rng(0).Next(), 0xe220a8397b1dcdafull);
}

TEST(DecodeTest, PgmGrayscaleAndRgb) {
  std::string pgm = Pgm(2, 3, {0, 10, 20, 30, 40, 255});
  std::string error;
  Op decode_gray;
  decode_gray.kind = OpKind::kDecode;
  decode_gray.mode = "grayscale";
  cv::Mat g = DecodeImage(Span(pgm), decode_gray, &error);
  ASSERT_FALSE(g.empty()) << error;
  EXPECT_EQ(g.channels(), 1);
  EXPECT_EQ(Pixels(g), (std::vector<uint8_t>{0, 10, 20, 30, 40, 255}));

  Op decode_rgb = decode_gray;
  decode_rgb.mode = "rgb";
  cv::Mat c = DecodeImage(Span(pgm), decode_rgb, &error);
  ASSERT_EQ(c.channels(), 3);
  EXPECT_EQ(c.at<cv::Vec3b>(0, 1), cv::Vec3b(10, 10, 10));
}

TEST(DecodeTest, PngIsRgbOrder) {
  cv::Mat bgr(1, 1, CV_8UC3, cv::Scalar(1, 2, 3));  // OpenCV's order: B=1, G=2, R=3
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", bgr, png));
  Op decode;
  decode.kind = OpKind::kDecode;
  decode.mode = "rgb";
  std::string error;
  cv::Mat img = DecodeImage({png.data(), png.size()}, decode, &error);
  ASSERT_FALSE(img.empty()) << error;
  EXPECT_EQ(img.at<cv::Vec3b>(0, 0), cv::Vec3b(3, 2, 1));
}

TEST(DecodeTest, GarbageAndEmptyAreErrorsNotCrashes) {
  Op decode;
  decode.kind = OpKind::kDecode;
  decode.mode = "rgb";
  std::string error;
  std::string junk = "\x89PNG\r\n\x1a\n this is not really a png";
  EXPECT_TRUE(DecodeImage(Span(junk), decode, &error).empty());
  EXPECT_NE(error.find("not a decodable image"), std::string::npos) << error;
  error.clear();
  EXPECT_TRUE(DecodeImage({}, decode, &error).empty());
  EXPECT_EQ(error, "empty file");
  std::string truncated = Pgm(4, 4, std::vector<uint8_t>(16, 7)).substr(0, 15);
  error.clear();
  EXPECT_TRUE(DecodeImage(Span(truncated), decode, &error).empty());
  EXPECT_FALSE(error.empty());
}

// A test image with detail in every channel, so that chroma subsampling and colour conversion
// show in the decoded pixels.
cv::Mat Detailed(int rows, int cols, int channels) {
  cv::Mat m(rows, cols, CV_8UC(channels));
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols * channels; ++x) m.ptr<uint8_t>(y)[x] = static_cast<uint8_t>((x * 37 + y * 91 + x * y) % 251);
  }
  return m;
}

std::string Jpeg(const cv::Mat& img, std::vector<int> params = {}) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(".jpg", img, out, params));
  return std::string(out.begin(), out.end());
}

// An APP1 EXIF segment (little-endian TIFF, one IFD0 entry: orientation) right after SOI.
std::string WithOrientation(const std::string& jpeg, uint16_t orientation) {
  std::string tiff("II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0", 18);
  tiff += static_cast<char>(orientation & 0xFF);
  tiff += static_cast<char>(orientation >> 8);
  tiff += std::string("\0\0\0\0\0\0", 6);  // value padding, next IFD: none
  std::string body = std::string("Exif\0\0", 6) + tiff;
  const size_t length = body.size() + 2;
  std::string app1 = "\xFF\xE1";
  app1 += static_cast<char>(length >> 8);
  app1 += static_cast<char>(length & 0xFF);
  return jpeg.substr(0, 2) + app1 + body + jpeg.substr(2);
}

// What DecodeImage gave before it decoded JPEGs itself: OpenCV's reader, then BGR to RGB.
cv::Mat OpenCvDecode(const std::string& bytes, int flags) {
  cv::Mat img = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())), flags);
  if (img.channels() == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  return img;
}

TEST(DecodeTest, JpegPixelsAreOpenCvsInEveryMode) {
  const std::vector<std::pair<std::string, std::string>> images = {
      {"colour 4:2:0", Jpeg(Detailed(37, 53, 3))},
      {"colour 4:4:4 (luma and chroma qualities differ)", Jpeg(Detailed(24, 40, 3), {cv::IMWRITE_JPEG_LUMA_QUALITY, 90, cv::IMWRITE_JPEG_CHROMA_QUALITY, 80})},
      {"progressive", Jpeg(Detailed(64, 48, 3), {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
      {"restart markers", Jpeg(Detailed(40, 40, 3), {cv::IMWRITE_JPEG_RST_INTERVAL, 2})},
      {"grey", Jpeg(Detailed(31, 17, 1))},
      {"orientation 1", WithOrientation(Jpeg(Detailed(20, 30, 3)), 1)},
      {"orientation 6 (left to OpenCV)", WithOrientation(Jpeg(Detailed(20, 30, 3)), 6)},
  };
  const std::vector<std::pair<std::string, int>> modes = {
      {"rgb", cv::IMREAD_COLOR}, {"grayscale", cv::IMREAD_GRAYSCALE}, {"any", cv::IMREAD_ANYCOLOR}};
  for (const auto& [what, bytes] : images) {
    for (const auto& [mode, flags] : modes) {
      Op decode;
      decode.kind = OpKind::kDecode;
      decode.mode = mode;
      std::string error;
      cv::Mat got = DecodeImage(Span(bytes), decode, &error);
      cv::Mat want = OpenCvDecode(bytes, flags);
      ASSERT_FALSE(got.empty()) << what << ", " << mode << ": " << error;
      EXPECT_EQ(got.size(), want.size()) << what << ", " << mode;
      EXPECT_EQ(got.channels(), want.channels()) << what << ", " << mode;
      EXPECT_EQ(Pixels(got), Pixels(want)) << what << ", " << mode;
    }
  }
  // The orientation was applied (by OpenCV): 20x30 became 30x20.
  Op decode;
  decode.kind = OpKind::kDecode;
  decode.mode = "rgb";
  std::string error;
  EXPECT_EQ(DecodeImage(Span(WithOrientation(Jpeg(Detailed(20, 30, 3)), 6)), decode, &error).size(), cv::Size(20, 30));
}

TEST(DecodeTest, JpegDecoderIsReusableAfterAnAbandonedStart) {
  std::string a = Jpeg(Detailed(16, 16, 3)), b = Jpeg(Detailed(24, 8, 3));
  ingest::JpegDecoder d;
  ingest::JpegHeader h;
  std::string why;
  ASSERT_EQ(d.Start(Span(a), ingest::JpegColor::kRgb, 1, &h, &why), ingest::JpegStatus::kOk) << why;
  // Neither Finish nor Abort: the next Start begins afresh.
  ASSERT_EQ(d.Start(Span(b), ingest::JpegColor::kRgb, 1, &h, &why), ingest::JpegStatus::kOk) << why;
  cv::Mat got(static_cast<int>(h.height), static_cast<int>(h.width), CV_8UC3);
  ASSERT_TRUE(d.Finish(got.ptr(), got.step, &why)) << why;
  EXPECT_EQ(Pixels(got), Pixels(OpenCvDecode(b, cv::IMREAD_COLOR)));
}

TEST(DecodeTest, AnImageStillHeldIsNeverOverwrittenByTheNext) {
  // Decoded and resized images reuse kept buffers; one the caller still holds must not be.
  std::string a = Jpeg(Detailed(48, 64, 3)), b = Jpeg(Detailed(48, 64, 3) / 2);
  Op decode;
  decode.kind = OpKind::kDecode;
  decode.mode = "rgb";
  std::string error;
  cv::Mat first = DecodeImage(Span(a), decode, &error);
  cv::Mat second = DecodeImage(Span(b), decode, &error);
  ASSERT_FALSE(first.empty() || second.empty()) << error;
  EXPECT_NE(first.data, second.data);
  EXPECT_EQ(Pixels(first), Pixels(OpenCvDecode(a, cv::IMREAD_COLOR)));
  EXPECT_EQ(Pixels(second), Pixels(OpenCvDecode(b, cv::IMREAD_COLOR)));
  second.release();  // no longer held: the next image of that size may take its buffer
  cv::Mat third = DecodeImage(Span(b), decode, &error);
  EXPECT_NE(third.data, first.data);
  EXPECT_EQ(Pixels(first), Pixels(OpenCvDecode(a, cv::IMREAD_COLOR)));
  EXPECT_EQ(Pixels(third), Pixels(OpenCvDecode(b, cv::IMREAD_COLOR)));

  Op resize = ParseOne("resize: {size: 16, interpolation: linear}");
  Rng rng(0);
  cv::Mat r1 = first.clone(), r2 = OpenCvDecode(b, cv::IMREAD_COLOR);
  ASSERT_TRUE(ApplyImageOp(resize, r1, rng, &error)) << error;
  std::vector<uint8_t> kept = Pixels(r1);
  ASSERT_TRUE(ApplyImageOp(resize, r2, rng, &error)) << error;
  EXPECT_NE(r1.data, r2.data);
  EXPECT_EQ(Pixels(r1), kept);
}

TEST(DecodeTest, DamagedJpegIsDecodedAsOpenCvDoesOrRefused) {
  std::string jpeg = Jpeg(Detailed(64, 64, 3));
  Op decode;
  decode.kind = OpKind::kDecode;
  decode.mode = "rgb";
  std::string error;
  // Cut inside the entropy-coded data: libjpeg warns; OpenCV's reader gives what it decoded.
  std::string cut = jpeg.substr(0, jpeg.size() / 2);
  cv::Mat got = DecodeImage(Span(cut), decode, &error);
  cv::Mat want = OpenCvDecode(cut, cv::IMREAD_COLOR);
  EXPECT_EQ(got.empty(), want.empty());
  if (!want.empty()) EXPECT_EQ(Pixels(got), Pixels(want));
  // Cut inside the header: nothing to decode.
  error.clear();
  EXPECT_TRUE(DecodeImage(Span(jpeg.substr(0, 40)), decode, &error).empty());
  EXPECT_FALSE(error.empty());
}

TEST(ResizeTest, ExactNearestReplicatesPixels) {
  cv::Mat img = Gray(2, 2, {1, 2, 3, 4});
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("resize: {size: 4, interpolation: nearest}"), img, rng, &error)) << error;
  EXPECT_EQ(Pixels(img), (std::vector<uint8_t>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
}

TEST(ResizeTest, ExactHeightWidthAndAreaAveraging) {
  cv::Mat img = Gray(2, 4, {0, 100, 200, 40, 10, 110, 210, 50});
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("resize: {size: [1, 2], interpolation: area}"), img, rng, &error));
  // Each output pixel is the mean of a 2x2 block.
  EXPECT_EQ(Pixels(img), (std::vector<uint8_t>{55, 125}));
}

TEST(ResizeTest, ShorterSideKeepsAspect) {
  Rng rng(0);
  std::string error;
  Op op = ParseOne("resize: {size: 10, mode: shorter_side}");
  cv::Mat wide(20, 40, CV_8UC1, cv::Scalar(9));
  ASSERT_TRUE(ApplyImageOp(op, wide, rng, &error));
  EXPECT_EQ(wide.rows, 10);
  EXPECT_EQ(wide.cols, 20);
  EXPECT_EQ(Pixels(wide), std::vector<uint8_t>(200, 9));
  cv::Mat tall(30, 20, CV_8UC3, cv::Scalar(1, 2, 3));
  ASSERT_TRUE(ApplyImageOp(op, tall, rng, &error));
  EXPECT_EQ(tall.cols, 10);
  EXPECT_EQ(tall.rows, 15);
}

TEST(CropTest, CentreCrop) {
  std::vector<uint8_t> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<uint8_t>(i);
  cv::Mat img = Gray(4, 4, v);
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("center_crop: {size: 2}"), img, rng, &error));
  EXPECT_EQ(Pixels(img), (std::vector<uint8_t>{5, 6, 9, 10}));
  cv::Mat odd = Gray(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  ASSERT_TRUE(ApplyImageOp(ParseOne("center_crop: {size: [1, 3]}"), odd, rng, &error));
  EXPECT_EQ(Pixels(odd), (std::vector<uint8_t>{4, 5, 6}));
}

TEST(CropTest, CropLargerThanImageIsAnError) {
  cv::Mat img(3, 3, CV_8UC1, cv::Scalar(0));
  Rng rng(0);
  std::string error;
  EXPECT_FALSE(ApplyImageOp(ParseOne("center_crop: {size: 4}"), img, rng, &error));
  EXPECT_NE(error.find("smaller than the crop"), std::string::npos) << error;
}

TEST(CropTest, RandomCropIsSeededAndInBounds) {
  std::vector<uint8_t> v(64);
  for (int i = 0; i < 64; ++i) v[i] = static_cast<uint8_t>(i);
  Op op = ParseOne("random_crop: {size: 3}");
  std::set<std::vector<uint8_t>> seen;
  for (uint32_t variant = 0; variant < 20; ++variant) {
    cv::Mat a = Gray(8, 8, v), b = Gray(8, 8, v);
    Rng ra = RecordRng(1, "x.png", variant), rb = RecordRng(1, "x.png", variant);
    std::string error;
    ASSERT_TRUE(ApplyImageOp(op, a, ra, &error));
    ASSERT_TRUE(ApplyImageOp(op, b, rb, &error));
    ASSERT_EQ(Pixels(a), Pixels(b));  // same stream, same crop
    auto p = Pixels(a);
    ASSERT_EQ(p.size(), 9u);
    // A window of the source: rows step by 8, columns by 1.
    EXPECT_EQ(p[1], p[0] + 1);
    EXPECT_EQ(p[3], p[0] + 8);
    EXPECT_LE(p[0] % 8, 5);
    EXPECT_LE(p[0] / 8, 5);
    seen.insert(p);
  }
  EXPECT_GT(seen.size(), 5u);  // the variants differ
}

TEST(CropTest, RandomCropWithPaddingPadsWithZeros) {
  cv::Mat img = Gray(2, 2, {1, 2, 3, 4});
  Rng rng(3);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("random_crop: {size: 4, padding: 1}"), img, rng, &error));
  EXPECT_EQ(Pixels(img), (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0}));
}

TEST(BrightnessTest, FactorAndDeltaSaturate) {
  cv::Mat img = Gray(1, 4, {0, 50, 100, 200});
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("brightness: {factor: 2, delta: 10}"), img, rng, &error));
  EXPECT_EQ(Pixels(img), (std::vector<uint8_t>{10, 110, 210, 255}));
  cv::Mat dark = Gray(1, 2, {5, 100});
  ASSERT_TRUE(ApplyImageOp(ParseOne("brightness: {delta: -10}"), dark, rng, &error));
  EXPECT_EQ(Pixels(dark), (std::vector<uint8_t>{0, 90}));
}

TEST(BrightnessTest, RandomRangeStaysInRange) {
  Op op = ParseOne("brightness: {factor: [0.5, 1.5]}");
  for (uint32_t v = 0; v < 50; ++v) {
    cv::Mat img = Gray(1, 1, {100});
    Rng rng = RecordRng(0, "a", v);
    std::string error;
    ASSERT_TRUE(ApplyImageOp(op, img, rng, &error));
    EXPECT_GE(img.at<uint8_t>(0, 0), 50);
    EXPECT_LE(img.at<uint8_t>(0, 0), 150);
  }
}

TEST(ColourTest, GrayscaleAndRgb) {
  cv::Mat red(1, 1, CV_8UC3, cv::Scalar(255, 0, 0));  // R=255 in our RGB order
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("grayscale"), red, rng, &error));
  ASSERT_EQ(red.channels(), 1);
  EXPECT_EQ(red.at<uint8_t>(0, 0), 76);  // 0.299 * 255
  cv::Mat gray = Gray(1, 1, {42});
  ASSERT_TRUE(ApplyImageOp(ParseOne("rgb"), gray, rng, &error));
  ASSERT_EQ(gray.channels(), 3);
  EXPECT_EQ(gray.at<cv::Vec3b>(0, 0), cv::Vec3b(42, 42, 42));
}

TEST(FlipRotateTest, ExactPixels) {
  Rng rng(0);
  std::string error;
  cv::Mat h = Gray(2, 2, {1, 2, 3, 4}), v = h.clone(), r90 = h.clone(), r180 = h.clone(), r270 = h.clone();
  ASSERT_TRUE(ApplyImageOp(ParseOne("flip"), h, rng, &error));
  EXPECT_EQ(Pixels(h), (std::vector<uint8_t>{2, 1, 4, 3}));
  ASSERT_TRUE(ApplyImageOp(ParseOne("flip: {axis: vertical}"), v, rng, &error));
  EXPECT_EQ(Pixels(v), (std::vector<uint8_t>{3, 4, 1, 2}));
  ASSERT_TRUE(ApplyImageOp(ParseOne("rotate: {angle: 90}"), r90, rng, &error));
  EXPECT_EQ(Pixels(r90), (std::vector<uint8_t>{3, 1, 4, 2}));  // clockwise
  ASSERT_TRUE(ApplyImageOp(ParseOne("rotate: {angle: 180}"), r180, rng, &error));
  EXPECT_EQ(Pixels(r180), (std::vector<uint8_t>{4, 3, 2, 1}));
  ASSERT_TRUE(ApplyImageOp(ParseOne("rotate: {angle: 270}"), r270, rng, &error));
  EXPECT_EQ(Pixels(r270), (std::vector<uint8_t>{2, 4, 1, 3}));
  cv::Mat rect(2, 3, CV_8UC1, cv::Scalar(1));
  ASSERT_TRUE(ApplyImageOp(ParseOne("rotate: {angle: 90}"), rect, rng, &error));
  EXPECT_EQ(rect.rows, 3);
  EXPECT_EQ(rect.cols, 2);
}

TEST(FlipRotateTest, ProbabilityZeroNeverFlipsAndHalfSometimes) {
  Op never = ParseOne("flip: {probability: 0}");
  Op half = ParseOne("flip: {probability: 0.5}");
  int flipped = 0;
  for (uint32_t v = 0; v < 200; ++v) {
    cv::Mat a = Gray(1, 2, {1, 2}), b = a.clone();
    Rng ra = RecordRng(5, "p", v), rb = RecordRng(5, "p", v);
    std::string error;
    ASSERT_TRUE(ApplyImageOp(never, a, ra, &error));
    EXPECT_EQ(Pixels(a), (std::vector<uint8_t>{1, 2}));
    ASSERT_TRUE(ApplyImageOp(half, b, rb, &error));
    flipped += Pixels(b)[0] == 2;
  }
  EXPECT_GT(flipped, 60);
  EXPECT_LT(flipped, 140);
}

TEST(FlipRotateTest, SmallRandomRotationKeepsSize) {
  cv::Mat img(9, 9, CV_8UC1, cv::Scalar(200));
  Rng rng = RecordRng(0, "r", 0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("rotate: {degrees: [-10, 10]}"), img, rng, &error));
  EXPECT_EQ(img.rows, 9);
  EXPECT_EQ(img.cols, 9);
  EXPECT_EQ(img.at<uint8_t>(4, 4), 200);  // the centre stays
}

TEST(ClaheTest, RaisesContrastOfAFlatImage) {
  cv::Mat img(64, 64, CV_8UC1);
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) img.at<uint8_t>(y, x) = static_cast<uint8_t>(100 + (x + y) % 8);
  }
  cv::Scalar mean0, std0, mean1, std1;
  cv::meanStdDev(img, mean0, std0);
  Rng rng(0);
  std::string error;
  ASSERT_TRUE(ApplyImageOp(ParseOne("clahe: {clip_limit: 4, tile: 2}"), img, rng, &error));
  cv::meanStdDev(img, mean1, std1);
  EXPECT_GT(std1[0], 2 * std0[0]);
  cv::Mat colour(16, 16, CV_8UC3, cv::Scalar(100, 120, 140));
  ASSERT_TRUE(ApplyImageOp(ParseOne("clahe"), colour, rng, &error));
  EXPECT_EQ(colour.channels(), 3);
}

TEST(StatsTest, ExactSumsGiveMeanAndStd) {
  ChannelSums s;
  s.Add(Gray(1, 4, {0, 0, 255, 255}));
  ChannelSums t;
  t.Add(Gray(1, 2, {0, 255}));
  ASSERT_TRUE(s.Merge(t));
  std::vector<double> mean, std;
  s.Finish(255.0, &mean, &std);
  ASSERT_EQ(mean.size(), 1u);
  EXPECT_DOUBLE_EQ(mean[0], 0.5);
  EXPECT_DOUBLE_EQ(std[0], 0.5);
  ChannelSums rgb;
  rgb.Add(cv::Mat(1, 1, CV_8UC3, cv::Scalar(1, 2, 3)));
  EXPECT_FALSE(s.Merge(rgb));  // channel counts differ
}

shard::Tensor Tensor(const cv::Mat& img, shard::DType dtype, bool chw, double scale, const std::vector<double>& mean,
                     const std::vector<double>& std) {
  shard::Tensor t = TensorOf(img, dtype, chw);
  EXPECT_TRUE(t.data.empty());
  t.data.resize(img.total() * img.channels() * shard::DTypeSize(dtype));
  WriteTensor(img, dtype, chw, scale, mean, std, reinterpret_cast<uint8_t*>(t.data.data()));
  return t;
}

TEST(TensorTest, Uint8LayoutsAndFloatNormalization) {
  cv::Mat img(1, 2, CV_8UC3);
  img.at<cv::Vec3b>(0, 0) = cv::Vec3b(1, 2, 3);
  img.at<cv::Vec3b>(0, 1) = cv::Vec3b(4, 5, 6);
  shard::Tensor hwc = Tensor(img, shard::DType::kUint8, false, 1, {}, {});
  EXPECT_EQ(hwc.shape, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(hwc.data, std::string("\x01\x02\x03\x04\x05\x06", 6));
  shard::Tensor chw = Tensor(img, shard::DType::kUint8, true, 1, {}, {});
  EXPECT_EQ(chw.shape, (std::vector<uint64_t>{3, 1, 2}));
  EXPECT_EQ(chw.data, std::string("\x01\x04\x02\x05\x03\x06", 6));

  cv::Mat g = Gray(1, 3, {0, 51, 255});
  shard::Tensor f = Tensor(g, shard::DType::kFloat32, true, 255.0, {0.5}, {0.5});
  ASSERT_EQ(f.data.size(), 12u);
  float v[3];
  std::memcpy(v, f.data.data(), 12);
  EXPECT_FLOAT_EQ(v[0], -1.0f);
  EXPECT_FLOAT_EQ(v[1], static_cast<float>((51 / 255.0 - 0.5) / 0.5));
  EXPECT_FLOAT_EQ(v[2], 1.0f);
  shard::Tensor raw = Tensor(g, shard::DType::kFloat32, true, 255.0, {}, {});
  std::memcpy(v, raw.data.data(), 12);
  EXPECT_FLOAT_EQ(v[1], 51.0f);  // float32 without normalize: the pixel values
}

}  // namespace
}  // namespace strata::transform
