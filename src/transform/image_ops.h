// The image ops of a pipeline, over OpenCV matrices: 8-bit, 1 (gray) or 3 (RGB order) channels
// until normalize or tensor turns them into a shard tensor. Ops are pure functions of the image,
// their parameters and the record's random stream, so a record's output never depends on which
// thread ran it or on the other records.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "strata/shard.h"
#include "transform/pipeline.h"

namespace strata::transform {

// SplitMix64: tiny, fast and the same on every platform (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                      // [0, 1), 53 bits
  double Uniform(double lo, double hi);  // lo when lo == hi (and then draws nothing)
 private:
  uint64_t state_;
};

// The random stream of one output record: seeded from the first 8 bytes (little-endian) of
// SHA-256("strata.transform.rng" || seed as 8 bytes little-endian || path || 0 || variant as
// 4 bytes little-endian).
Rng RecordRng(uint64_t seed, std::string_view path, uint32_t variant);

// Decodes an encoded image (PNG, JPEG, PGM/PPM, BMP, TIFF, WebP) as the decode op says. Returns
// an empty matrix and sets `error` when the bytes are not an image.
cv::Mat DecodeImage(std::span<const uint8_t> bytes, const Op& op, std::string* error);

// Applies one op (not decode, normalize or tensor) in place. Returns false and sets `error` for
// an image the op cannot take (a crop larger than the image).
bool ApplyImageOp(const Op& op, cv::Mat& img, Rng& rng, std::string* error);

// Exact per-channel sums, for fitting mean and std on 8-bit images.
struct ChannelSums {
  int channels = 0;
  uint64_t pixels = 0;
  uint64_t sum[4] = {};
  uint64_t sum_sq[4] = {};
  void Add(const cv::Mat& img);
  // false when the channel counts differ
  bool Merge(const ChannelSums& other);
  // Mean and std of pixel / scale.
  void Finish(double scale, std::vector<double>* mean, std::vector<double>* std) const;
};

// The shard tensor of an 8-bit image (at most 4 channels), without its data: its dtype, and
// its shape, CHW or HWC.
shard::Tensor TensorOf(const cv::Mat& img, shard::DType dtype, bool chw);
// Writes that tensor's data to `dst` (as many bytes as its shape says; any alignment): uint8
// as is, or float32, normalized by (pixel / scale - mean[c]) / std[c] when `mean` is not empty
// (one value, or one per channel).
void WriteTensor(const cv::Mat& img, shard::DType dtype, bool chw, double scale, const std::vector<double>& mean,
                 const std::vector<double>& std, uint8_t* dst);

}  // namespace strata::transform
