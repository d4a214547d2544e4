#include "store/chunker.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "crypto/aead.h"

namespace strata::store {
namespace {

constexpr uint32_t kMaxChunkSize = 64u << 20;
// Below this the large mask would have too few bits to cut anywhere near the average.
constexpr uint32_t kMinAvgSize = 64;

// The mask bits live in bits [kLowestMaskBit, kHighestMaskBit]. Bit j of the gear fingerprint
// depends on the last j+1 bytes only, so keeping the bits high makes each cut decision depend on
// a window of at least 16 bytes (the FastCDC paper's "zero padding" argument: a wider window cuts
// at more content-specific places). Bit 63 stays clear so the two-bytes-per-step loop below can
// test `mask << 1` without losing a bit (see ScanRange).
constexpr int kLowestMaskBit = 15;
constexpr int kHighestMaskBit = 62;
constexpr int kMaskSpan = kHighestMaskBit - kLowestMaskBit + 1;  // 48

// A mask with `bits` one-bits spread evenly over the span, so that the cut condition mixes
// bytes from all over the window instead of only the most recent ones.
uint64_t SpreadMask(int bits) {
  bits = std::clamp(bits, 1, kMaskSpan);
  uint64_t mask = 0;
  for (int i = 0; i < bits; ++i) {
    // Distinct for bits <= kMaskSpan: consecutive values differ by at least one.
    int pos = kHighestMaskBit - (i * kMaskSpan) / bits;
    mask |= uint64_t{1} << pos;
  }
  return mask;
}

uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Scans data[begin, end) and returns the offset just past the first byte whose fingerprint has
// all `mask` bits zero (so at least 1), or 0 if there is none; then `fp` holds the fingerprint
// after data[end - 1], ready for the next range.
//
// Two bytes per step (FastCDC 2020, "rolling two bytes each time"): with g1 = gear << 1,
//   fp1 = (fp << 1) + g[b0],  fp2 = (fp1 << 1) + g[b1]
// equals
//   t = (fp << 2) + g1[b0] = fp1 << 1,  fp2 = t + g[b1],
// and (t & (mask << 1)) == 0 iff (fp1 & mask) == 0 because mask has bit 63 clear. So this makes
// exactly the cuts of the byte-at-a-time loop while doing one shift per two bytes.
inline size_t ScanRange(const uint8_t* data, size_t begin, size_t end, uint64_t mask,
                        const uint64_t* gear, const uint64_t* gear_shifted, uint64_t& fp) {
  const uint64_t mask_shifted = mask << 1;
  size_t i = begin;
  for (; i + 2 <= end; i += 2) {
    fp = (fp << 2) + gear_shifted[data[i]];
    if ((fp & mask_shifted) == 0) return i + 1;
    fp += gear[data[i + 1]];
    if ((fp & mask) == 0) return i + 2;
  }
  if (i < end) {
    fp = (fp << 1) + gear[data[i]];
    if ((fp & mask) == 0) return i + 1;
  }
  return 0;
}

}  // namespace

Status ChunkerParams::Validate() const {
  if (fixed_size != 0) {
    if (fixed_size > kMaxChunkSize) {
      return Status::InvalidArgument(
          fmt::format("chunker: fixed_size {} exceeds the limit of {} bytes", fixed_size, kMaxChunkSize));
    }
    return Status::OK();
  }
  if (!std::has_single_bit(avg_size)) {
    return Status::InvalidArgument(
        fmt::format("chunker: avg_size {} must be a power of two", avg_size));
  }
  if (avg_size < kMinAvgSize) {
    return Status::InvalidArgument(
        fmt::format("chunker: avg_size {} is below the minimum of {} bytes", avg_size, kMinAvgSize));
  }
  if (!(min_size < avg_size && avg_size < max_size)) {
    return Status::InvalidArgument(fmt::format(
        "chunker: sizes must satisfy min < avg < max, got min={} avg={} max={}", min_size,
        avg_size, max_size));
  }
  if (max_size > kMaxChunkSize) {
    return Status::InvalidArgument(
        fmt::format("chunker: max_size {} exceeds the limit of {} bytes", max_size, kMaxChunkSize));
  }
  return Status::OK();
}

GearTable DeriveGearTable(const crypto::Key256& secret) {
  static constexpr char kLabel[] = "strata-gear";
  constexpr size_t kLabelLen = sizeof(kLabel) - 1;
  GearTable table{};
  uint8_t input[32 + kLabelLen + 4];
  std::memcpy(input, secret.data(), secret.size());
  std::memcpy(input + 32, kLabel, kLabelLen);
  // Each SHA-256 block yields four entries: 64 blocks fill the table.
  for (uint32_t counter = 0; counter < 256 / 4; ++counter) {
    uint8_t* ctr = input + 32 + kLabelLen;
    for (int b = 0; b < 4; ++b) ctr[b] = static_cast<uint8_t>(counter >> (8 * b));
    std::array<uint8_t, 32> digest = crypto::Sha256(input);
    for (int k = 0; k < 4; ++k) table[counter * 4 + k] = LoadLe64(digest.data() + 8 * k);
  }
  return table;
}

Chunker::Chunker(const ChunkerParams& params, const GearTable& gear)
    : params_(params), gear_(gear) {
  assert(params.Validate().ok());
  for (size_t i = 0; i < gear_.size(); ++i) gear_shifted_[i] = gear_[i] << 1;
  // Normalization level 2: two bits harder than the average before it, two easier after it,
  // which pulls chunk sizes towards avg_size (FastCDC paper, section on normalized chunking).
  const int avg_bits = std::bit_width(std::max<uint32_t>(params.avg_size, 1)) - 1;
  mask_small_ = SpreadMask(avg_bits + 2);
  mask_large_ = SpreadMask(avg_bits - 2);
}

size_t Chunker::NextCut(const uint8_t* data, size_t n, bool eof) const {
  assert(eof || n >= (params_.fixed_size != 0 ? params_.fixed_size : params_.max_size));
  if (n == 0) return 0;
  if (params_.fixed_size != 0) return std::min<size_t>(n, params_.fixed_size);

  // `eof` only matters to the contract (asserted above): with !eof the caller guarantees
  // n >= max_size, so the scan below sees every byte it may cut at. In a release build a
  // caller that breaks it still gets a valid chunk, just not a content-defined one. At most
  // min_size bytes can only be the final chunk.
  if (n <= params_.min_size) return n;
  const size_t limit = std::min<size_t>(n, params_.max_size);
  const size_t normal = std::min<size_t>(params_.avg_size, limit);

  // Cut-point skipping: no boundary may fall before min_size, so those bytes are not hashed.
  // The fingerprint therefore starts at zero at min_size; that is deterministic for a given
  // chunk start, which is all that dedup needs.
  uint64_t fp = 0;
  if (size_t cut = ScanRange(data, params_.min_size, normal, mask_small_, gear_.data(),
                             gear_shifted_.data(), fp)) {
    return cut;
  }
  if (size_t cut = ScanRange(data, normal, limit, mask_large_, gear_.data(),
                             gear_shifted_.data(), fp)) {
    return cut;
  }
  // No boundary before max_size (or before the end of the input): cut there.
  return limit;
}

}  // namespace strata::store
