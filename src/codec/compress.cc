#include "codec/compress.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <zstd.h>

namespace strata::codec {

namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Contexts are reused per thread: creating one allocates its tables, which costs more than
// compressing a small chunk. One per level, because switching a context between levels
// resizes those tables.
ZSTD_CCtx* ThreadCCtx(int level) {
  thread_local std::map<int, std::unique_ptr<ZSTD_CCtx, CCtxDeleter>> by_level;
  auto& slot = by_level[level];
  if (!slot) slot.reset(ZSTD_createCCtx());
  return slot.get();
}

ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  return dctx.get();
}

// Inputs above this size are sampled before being compressed in full.
constexpr size_t kSampleThreshold = 256 << 10;
constexpr size_t kSampleSlices = 4;
constexpr size_t kSliceSize = 16 << 10;

// Compressing a sample at level 1 costs ~1/16 of compressing a 1 MiB chunk. Slices spread over
// the input catch chunks whose start differs from the rest (a file header before random data,
// or a JSON header before tensors). Saving under 96% of the bar on the sample (3% for the
// default 1/32) predicts a full compression that misses the bar.
bool LooksIncompressible(std::span<const uint8_t> in, uint32_t min_saving) {
  thread_local std::unique_ptr<uint8_t[]> sample(new uint8_t[kSampleSlices * kSliceSize]);
  thread_local std::unique_ptr<uint8_t[]> scratch(new uint8_t[ZSTD_COMPRESSBOUND(kSampleSlices * kSliceSize)]);
  size_t stride = (in.size() - kSliceSize) / (kSampleSlices - 1);
  for (size_t i = 0; i < kSampleSlices; ++i) {
    std::memcpy(sample.get() + i * kSliceSize, in.data() + i * stride, kSliceSize);
  }
  constexpr size_t kSampleSize = kSampleSlices * kSliceSize;
  size_t n = ZSTD_compressCCtx(ThreadCCtx(1), scratch.get(), ZSTD_COMPRESSBOUND(kSampleSize), sample.get(),
                               kSampleSize, 1);
  if (ZSTD_isError(n)) return false;  // let the full attempt decide
  return n > kSampleSize - kSampleSize * 24 / (25 * size_t(min_saving));
}

}  // namespace

Codec Compress(std::span<const uint8_t> in, int level, std::string* out, uint32_t min_saving) {
  out->clear();
  if (level == 0 || in.empty() || min_saving == 0) return Codec::kNone;
  if (in.size() > kSampleThreshold && LooksIncompressible(in, min_saving)) return Codec::kNone;

  // Capacity is the largest size worth keeping: zstd stops with dstSize_tooSmall as soon as the
  // output would pass it, so a chunk that does not shrink enough costs no extra copy.
  size_t limit = in.size() - in.size() / min_saving;
  out->resize(limit);
  size_t n = ZSTD_compressCCtx(ThreadCCtx(level), out->data(), limit, in.data(), in.size(), level);
  if (ZSTD_isError(n) || n >= limit) {
    out->clear();
    return Codec::kNone;
  }
  out->resize(n);
  return Codec::kZstd;
}

Status Decompress(Codec codec, std::span<const uint8_t> in, uint8_t* out, size_t raw_size) {
  switch (codec) {
    case Codec::kNone:
      if (in.size() != raw_size) {
        return Status::Corruption("stored chunk is " + std::to_string(in.size()) + " bytes, expected " +
                                  std::to_string(raw_size));
      }
      if (raw_size > 0) std::memcpy(out, in.data(), raw_size);
      return Status::OK();

    case Codec::kZstd: {
      unsigned long long content = ZSTD_getFrameContentSize(in.data(), in.size());
      if (content == ZSTD_CONTENTSIZE_ERROR) return Status::Corruption("not a zstd frame");
      // Compress() always records the size; a frame without it still gets the exact check below.
      if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != raw_size) {
        return Status::Corruption("zstd frame holds " + std::to_string(content) + " bytes, expected " +
                                  std::to_string(raw_size));
      }
      // One-shot decompression writes straight into `out` and stops at its capacity; it also
      // rejects trailing bytes after the last frame.
      size_t n = ZSTD_decompressDCtx(ThreadDCtx(), out, raw_size, in.data(), in.size());
      if (ZSTD_isError(n)) {
        return Status::Corruption(std::string("zstd frame is damaged: ") + ZSTD_getErrorName(n));
      }
      if (n != raw_size) {
        return Status::Corruption("zstd frame decompressed to " + std::to_string(n) + " bytes, expected " +
                                  std::to_string(raw_size));
      }
      return Status::OK();
    }
  }
  return Status::Corruption("unknown codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace strata::codec
