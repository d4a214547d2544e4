// Content-defined chunking (FastCDC with normalized chunking) and fixed-size chunking.
//
// The gear table is derived from a repository secret, so an outsider who knows a file cannot
// predict where its chunk boundaries fall (docs/SECURITY.md says what still leaks).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "crypto/keys.h"

namespace strata::store {

struct ChunkerParams {
  uint32_t min_size = 256u << 10;
  uint32_t avg_size = 1u << 20;  // must be a power of two
  uint32_t max_size = 4u << 20;
  // 0 = content-defined; otherwise every chunk is exactly this size (the last may be shorter).
  uint32_t fixed_size = 0;
  // OK if min < avg < max, avg a power of two, max <= 64 MiB (or fixed_size set and <= 64 MiB).
  Status Validate() const;
};

using GearTable = std::array<uint64_t, 256>;
// Deterministic in `secret`: SHA-256 in counter mode, expanded to 256 64-bit values.
GearTable DeriveGearTable(const crypto::Key256& secret);

class Chunker {
 public:
  Chunker(const ChunkerParams& params, const GearTable& gear);

  // Returns the length of the next chunk starting at `data`. `n` is the number of bytes
  // available; `eof` says whether more bytes follow them. When !eof, callers must provide at
  // least max_size bytes (or all that remain). The result is in [1, n] when n > 0; when the
  // input ends before a boundary, the result is n (the final chunk may be shorter than min).
  size_t NextCut(const uint8_t* data, size_t n, bool eof) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  GearTable gear_;
  GearTable gear_shifted_;  // gear_ << 1, for the two-bytes-per-step scan
  uint64_t mask_small_;  // harder mask, used before the average size (normalization level 2)
  uint64_t mask_large_;  // easier mask, used after it
};

}  // namespace strata::store
