// Reed–Solomon erasure coding over GF(2^8) with ISA-L: k data fragments, m parity fragments,
// any k of the k+m rebuild the rest. The generator is ISA-L's Cauchy matrix (identity on top),
// which keeps every k x k submatrix invertible for k + m <= 255.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "strata/status.h"

namespace strata::volume {

class ErasureCode {
 public:
  // 1 <= k, 0 <= m, k + m <= 32 (the placement format's limit).
  ErasureCode(int k, int m);
  int k() const { return k_; }
  int m() const { return m_; }

  // Computes the m parity buffers from the k data buffers, each `len` bytes.
  void Encode(const uint8_t* const* data, uint8_t* const* parity, size_t len) const;

  // Rebuilds fragments from any k others. `have[i]` is the fragment index (0..k+m-1) of
  // `in[i]` (exactly k distinct indices); `want[j]` the index to rebuild into `out[j]`.
  // kInvalidArgument if the indices are not k distinct valid ones.
  Status Decode(const std::vector<int>& have, const uint8_t* const* in, const std::vector<int>& want,
                uint8_t* const* out, size_t len) const;

 private:
  int k_, m_;
  std::vector<uint8_t> matrix_;   // (k+m) x k, row-major
  std::vector<uint8_t> encode_tables_;
};

}  // namespace strata::volume
