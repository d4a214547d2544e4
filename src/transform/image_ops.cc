#include "transform/image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ingest/image_probe.h"
#include "ingest/jpeg.h"

namespace strata::transform {

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

double Rng::Uniform(double lo, double hi) { return lo == hi ? lo : lo + (hi - lo) * Uniform(); }

Rng RecordRng(uint64_t seed, std::string_view path, uint32_t variant) {
  std::string in = "strata.transform.rng";
  for (int i = 0; i < 8; ++i) in.push_back(static_cast<char>(seed >> (8 * i)));
  in.append(path);
  in.push_back('\0');
  for (int i = 0; i < 4; ++i) in.push_back(static_cast<char>(variant >> (8 * i)));
  std::string digest = Sha256(in);
  uint64_t s = 0;
  for (int i = 0; i < 8; ++i) s |= static_cast<uint64_t>(static_cast<uint8_t>(digest[i])) << (8 * i);
  return Rng(s);
}

namespace {

// Output buffers of one op, kept per thread and reused: an image of the same size and type
// whose buffer nothing else holds any more (its count is the pool's own reference) is
// overwritten, so a run of same-sized images costs no allocation and no page faulted in. A
// buffer still held (a result waiting to be written) is never handed out; when none is free, a
// new one takes the oldest slot and the old one lives on with its holder. At most kKept buffers
// and kKeptBytes are kept; an image over a quarter of that is not kept at all.
class BufferPool {
 public:
  cv::Mat Take(int rows, int cols, int type) {
    for (cv::Mat& m : mats_) {
      // Only this thread adds references to a kept buffer, so a count of 1 stays 1 here.
      if (m.rows == rows && m.cols == cols && m.type() == type && CV_XADD(&m.u->refcount, 0) == 1) return m;
    }
    cv::Mat m(rows, cols, type);
    const size_t bytes = m.total() * m.elemSize();
    if (bytes > kKeptBytes / 4) return m;
    while (!mats_.empty() && (mats_.size() >= kKept || kept_bytes_ + bytes > kKeptBytes)) {
      kept_bytes_ -= mats_.front().total() * mats_.front().elemSize();
      mats_.pop_front();
    }
    mats_.push_back(m);
    kept_bytes_ += bytes;
    return m;
  }

 private:
  // As many as a worker's run of results can hold (RunOrdered's runs are at most 64 records).
  static constexpr size_t kKept = 64;
  static constexpr size_t kKeptBytes = size_t{32} << 20;
  std::deque<cv::Mat> mats_;  // oldest first
  size_t kept_bytes_ = 0;
};

thread_local BufferPool decoded_buffers, resized_buffers;

}  // namespace

cv::Mat DecodeImage(std::span<const uint8_t> bytes, const Op& op, std::string* error) {
  cv::Mat img;
  if (bytes.empty()) {
    *error = "empty file";
    return img;
  }
  // A JPEG goes straight from libjpeg into RGB (or grey) rows: OpenCV's reader would decode to
  // RGB, swap each row to BGR, and the swap back would be a third pass. What the strict decoder
  // leaves (CMYK, an EXIF orientation to apply, damaged data that OpenCV decodes as best it can
  // after printing a warning) goes to OpenCV below, so the pixels are OpenCV's in every case.
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    static thread_local ingest::JpegDecoder jpeg;
    const ingest::JpegColor color = op.mode == "grayscale" ? ingest::JpegColor::kGrey
                                    : op.mode == "rgb"     ? ingest::JpegColor::kRgb
                                                           : ingest::JpegColor::kStored;
    ingest::JpegHeader h;
    std::string why;
    if (jpeg.Start(bytes, color, 1, &h, &why) == ingest::JpegStatus::kOk) {
      if (h.orientation <= 1) {
        img = decoded_buffers.Take(static_cast<int>(h.height), static_cast<int>(h.width),
                                   CV_8UC(static_cast<int>(h.channels)));
        if (jpeg.Finish(img.ptr(), img.step, &why)) return img;
        img.release();
      } else {
        jpeg.Abort();
      }
    }
  }
  // A binary PGM/PPM shorter than its header says fails here, before OpenCV's reader, which
  // would print its exception to stderr before failing.
  if (auto info = ingest::ProbeImage(bytes); info.ok()) {
    if (std::string missing = ingest::PixelsMissing(bytes.size(), *info); !missing.empty()) {
      *error = fmt::format("not a decodable image: {}", missing);
      return img;
    }
  }
  int flags = op.mode == "grayscale" ? cv::IMREAD_GRAYSCALE : op.mode == "rgb" ? cv::IMREAD_COLOR : cv::IMREAD_ANYCOLOR;
  try {
    cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    img = cv::imdecode(buf, flags);
  } catch (const cv::Exception& e) {
    *error = fmt::format("not a decodable image: {}", e.what());
    return cv::Mat();
  }
  if (img.empty()) {
    *error = "not a decodable image (unknown format, truncated or corrupt)";
    return img;
  }
  if (img.depth() != CV_8U) img.convertTo(img, CV_8U);
  if (img.channels() == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  if (img.channels() == 4) cv::cvtColor(img, img, cv::COLOR_BGRA2RGB);
  if (img.channels() == 2) {
    *error = fmt::format("{} channels are not supported", img.channels());
    return cv::Mat();
  }
  return img;
}

namespace {

bool Crop(cv::Mat& img, int top, int left, int h, int w) {
  img = img(cv::Rect(left, top, w, h)).clone();
  return true;
}

}  // namespace

bool ApplyImageOp(const Op& op, cv::Mat& img, Rng& rng, std::string* error) {
  switch (op.kind) {
    case OpKind::kResize: {
      int h = op.height, w = op.width;
      if (op.mode == "shorter_side") {
        int64_t ih = img.rows, iw = img.cols, s = op.height;
        if (ih <= iw) {
          h = static_cast<int>(s);
          w = static_cast<int>(std::max<int64_t>(1, (iw * s + ih / 2) / ih));
        } else {
          w = static_cast<int>(s);
          h = static_cast<int>(std::max<int64_t>(1, (ih * s + iw / 2) / iw));
        }
      }
      if (h != img.rows || w != img.cols) {
        // Into a kept buffer of the new size, which cannot be the source's (its size differs).
        cv::Mat out = resized_buffers.Take(h, w, img.type());
        cv::resize(img, out, out.size(), 0, 0, op.interpolation);
        img = out;
      }
      return true;
    }
    case OpKind::kCenterCrop:
    case OpKind::kRandomCrop: {
      if (op.padding > 0) {
        cv::copyMakeBorder(img, img, op.padding, op.padding, op.padding, op.padding, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      }
      if (img.rows < op.height || img.cols < op.width) {
        *error = fmt::format("image {}x{} is smaller than the crop {}x{} (height x width)", img.rows, img.cols,
                             op.height, op.width);
        return false;
      }
      int top, left;
      if (op.kind == OpKind::kCenterCrop) {
        top = (img.rows - op.height) / 2;
        left = (img.cols - op.width) / 2;
      } else {
        top = static_cast<int>(rng.Next() % static_cast<uint64_t>(img.rows - op.height + 1));
        left = static_cast<int>(rng.Next() % static_cast<uint64_t>(img.cols - op.width + 1));
      }
      return Crop(img, top, left, op.height, op.width);
    }
    case OpKind::kClahe: {
      auto clahe = cv::createCLAHE(op.clip_limit, cv::Size(op.tile, op.tile));
      if (img.channels() == 1) {
        clahe->apply(img, img);
      } else {
        cv::Mat lab;
        cv::cvtColor(img, lab, cv::COLOR_RGB2Lab);
        std::vector<cv::Mat> planes;
        cv::split(lab, planes);
        clahe->apply(planes[0], planes[0]);
        cv::merge(planes, lab);
        cv::cvtColor(lab, img, cv::COLOR_Lab2RGB);
      }
      return true;
    }
    case OpKind::kBrightness: {
      double factor = rng.Uniform(op.factor_lo, op.factor_hi);
      double delta = rng.Uniform(op.delta_lo, op.delta_hi);
      img.convertTo(img, -1, factor, delta);  // saturating, rounded to nearest
      return true;
    }
    case OpKind::kGrayscale:
      if (img.channels() == 3) cv::cvtColor(img, img, cv::COLOR_RGB2GRAY);
      return true;
    case OpKind::kRgb:
      if (img.channels() == 1) cv::cvtColor(img, img, cv::COLOR_GRAY2RGB);
      return true;
    case OpKind::kFlip: {
      if (op.probability < 1 && !(rng.Uniform() < op.probability)) return true;
      int code = op.mode == "horizontal" ? 1 : op.mode == "vertical" ? 0 : -1;
      cv::flip(img, img, code);
      return true;
    }
    case OpKind::kRotate: {
      if (op.probability < 1 && !(rng.Uniform() < op.probability)) return true;
      if (op.angle == 90) cv::rotate(img, img, cv::ROTATE_90_CLOCKWISE);
      else if (op.angle == 180) cv::rotate(img, img, cv::ROTATE_180);
      else if (op.angle == 270) cv::rotate(img, img, cv::ROTATE_90_COUNTERCLOCKWISE);
      else {
        double degrees = rng.Uniform(op.degrees_lo, op.degrees_hi);
        cv::Point2f centre((img.cols - 1) / 2.0f, (img.rows - 1) / 2.0f);
        cv::Mat m = cv::getRotationMatrix2D(centre, -degrees, 1.0);  // positive: clockwise
        cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      }
      return true;
    }
    default:  // decode, normalize and tensor run elsewhere; text and table ops are not image ops
      break;
  }
  *error = fmt::format("op '{}' cannot run here", op.name);
  return false;
}

void ChannelSums::Add(const cv::Mat& img) {
  if (channels == 0) channels = img.channels();
  const int c = img.channels();
  for (int y = 0; y < img.rows; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    // Per-row partial sums fit in 64 bits for any row OpenCV can hold.
    for (int x = 0; x < img.cols * c; x += c) {
      for (int k = 0; k < c; ++k) {
        uint64_t v = row[x + k];
        sum[k] += v;
        sum_sq[k] += v * v;
      }
    }
  }
  pixels += static_cast<uint64_t>(img.rows) * img.cols;
}

bool ChannelSums::Merge(const ChannelSums& o) {
  if (o.pixels == 0) return true;
  if (channels != 0 && channels != o.channels) return false;
  channels = o.channels;
  pixels += o.pixels;
  for (int k = 0; k < 4; ++k) {
    sum[k] += o.sum[k];
    sum_sq[k] += o.sum_sq[k];
  }
  return true;
}

void ChannelSums::Finish(double scale, std::vector<double>* mean, std::vector<double>* std) const {
  mean->assign(channels, 0.0);
  std->assign(channels, 1.0);
  if (pixels == 0) return;
  for (int k = 0; k < channels; ++k) {
    double n = static_cast<double>(pixels);
    double m = static_cast<double>(sum[k]) / n;
    double var = static_cast<double>(sum_sq[k]) / n - m * m;
    (*mean)[k] = m / scale;
    double s = std::sqrt(std::max(var, 0.0)) / scale;
    (*std)[k] = s > 0 ? s : 1.0;  // a constant channel: leave it centred, not divided by zero
  }
}

namespace {

// Element i of a T array at `out`, which need not be aligned (a small record is packed in its
// shard at any offset); the copy compiles to one store.
template <typename T>
void Put(uint8_t* out, size_t i, T v) {
  std::memcpy(out + i * sizeof(T), &v, sizeof(T));
}

// Writes every value of `img` as map(channel, value), of type T, to `out`: HWC as the image
// holds it, or CHW (a plane per channel, a row of each at a time).
template <typename T, typename Map>
void Lay(const cv::Mat& img, bool chw, uint8_t* out, Map map) {
  const int c = img.channels(), h = img.rows, w = img.cols;
  const size_t plane = static_cast<size_t>(h) * w;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    if (!chw || c == 1) {
      const size_t o = static_cast<size_t>(y) * w * c;
      for (int x = 0; x < w * c; x += c) {
        for (int k = 0; k < c; ++k) Put<T>(out, o + x + k, map(k, row[x + k]));
      }
      continue;
    }
    const size_t o = static_cast<size_t>(y) * w;
    if (c == 3) {  // the common case: one pass over the row, writing the three planes
      for (int x = 0; x < w; ++x) {
        Put<T>(out, o + x, map(0, row[3 * x]));
        Put<T>(out, plane + o + x, map(1, row[3 * x + 1]));
        Put<T>(out, 2 * plane + o + x, map(2, row[3 * x + 2]));
      }
      continue;
    }
    for (int k = 0; k < c; ++k) {
      for (int x = 0; x < w; ++x) Put<T>(out, k * plane + o + x, map(k, row[x * c + k]));
    }
  }
}

}  // namespace

shard::Tensor TensorOf(const cv::Mat& img, shard::DType dtype, bool chw) {
  shard::Tensor t;
  t.dtype = dtype;
  const uint64_t c = img.channels(), h = img.rows, w = img.cols;
  t.shape = chw ? std::vector<uint64_t>{c, h, w} : std::vector<uint64_t>{h, w, c};
  return t;
}

void WriteTensor(const cv::Mat& img, shard::DType dtype, bool chw, double scale, const std::vector<double>& mean,
                 const std::vector<double>& std, uint8_t* dst) {
  if (dtype == shard::DType::kUint8) {
    Lay<uint8_t>(img, chw, dst, [](int, uint8_t v) { return v; });
    return;
  }
  // float32: one lookup table per channel, computed in double once, so every pixel value maps to
  // exactly one float whatever the order of evaluation.
  float lut[4][256];
  for (int k = 0; k < img.channels(); ++k) {
    double m = mean.empty() ? 0.0 : mean.size() == 1 ? mean[0] : mean[k];
    double s = std.empty() ? 1.0 : std.size() == 1 ? std[0] : std[k];
    double sc = mean.empty() ? 1.0 : scale;
    for (int v = 0; v < 256; ++v) lut[k][v] = static_cast<float>((v / sc - m) / s);
  }
  Lay<float>(img, chw, dst, [&](int k, uint8_t v) { return lut[k][v]; });
}

}  // namespace strata::transform
