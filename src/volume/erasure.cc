#include "volume/erasure.h"

#include <isa-l/erasure_code.h>

#include <algorithm>

#include <fmt/format.h>

namespace strata::volume {

namespace {
// ISA-L takes int lengths: feed large buffers in pieces.
constexpr size_t kMaxPiece = 1u << 30;
}  // namespace

ErasureCode::ErasureCode(int k, int m) : k_(k), m_(m), matrix_(size_t(k + m) * k) {
  gf_gen_cauchy1_matrix(matrix_.data(), k + m, k);
  if (m > 0) {
    encode_tables_.resize(size_t(32) * k * m);
    ec_init_tables(k, m, matrix_.data() + size_t(k) * k, encode_tables_.data());
  }
}

void ErasureCode::Encode(const uint8_t* const* data, uint8_t* const* parity, size_t len) const {
  if (m_ == 0) return;
  std::vector<uint8_t*> in(k_), out(m_);
  for (size_t done = 0; done < len;) {
    size_t n = std::min(len - done, kMaxPiece);
    for (int i = 0; i < k_; ++i) in[i] = const_cast<uint8_t*>(data[i]) + done;
    for (int i = 0; i < m_; ++i) out[i] = parity[i] + done;
    ec_encode_data(static_cast<int>(n), k_, m_, const_cast<uint8_t*>(encode_tables_.data()), in.data(), out.data());
    done += n;
  }
}

Status ErasureCode::Decode(const std::vector<int>& have, const uint8_t* const* in, const std::vector<int>& want,
                           uint8_t* const* out, size_t len) const {
  const int n = k_ + m_;
  if (static_cast<int>(have.size()) != k_) {
    return Status::InvalidArgument(fmt::format("decoding needs {} fragments, got {}", k_, have.size()));
  }
  std::vector<bool> seen(n, false);
  for (int h : have) {
    if (h < 0 || h >= n || seen[h]) return Status::InvalidArgument("decoding: bad or repeated fragment index");
    seen[h] = true;
  }
  for (int w : want) {
    if (w < 0 || w >= n) return Status::InvalidArgument("decoding: bad wanted fragment index");
  }
  if (want.empty()) return Status::OK();
  // The rows of the generator for the fragments we have form a k x k matrix B with
  // B * data = have; its inverse gives the data, and row w of the generator times the inverse
  // gives fragment w directly from what we have.
  std::vector<uint8_t> b(size_t(k_) * k_), inv(size_t(k_) * k_);
  for (int r = 0; r < k_; ++r) std::copy_n(&matrix_[size_t(have[r]) * k_], k_, &b[size_t(r) * k_]);
  if (gf_invert_matrix(b.data(), inv.data(), k_) != 0) {
    return Status::Internal("erasure decoding matrix is singular");
  }
  // That product is itself an encoding: of the k rows of the inverse, by the wanted rows of the
  // generator. (ISA-L's encoder does the field arithmetic; `strata` does not call gf_mul, a name
  // that OpenSSL's static archive also defines.)
  const int rows = static_cast<int>(want.size());
  std::vector<uint8_t> generator_rows(size_t(rows) * k_), decode(size_t(rows) * k_);
  for (int j = 0; j < rows; ++j) std::copy_n(&matrix_[size_t(want[j]) * k_], k_, &generator_rows[size_t(j) * k_]);
  std::vector<uint8_t> tables(size_t(32) * k_ * rows);
  ec_init_tables(k_, rows, generator_rows.data(), tables.data());
  std::vector<uint8_t*> inv_rows(k_), decode_rows(rows);
  for (int t = 0; t < k_; ++t) inv_rows[t] = &inv[size_t(t) * k_];
  for (int j = 0; j < rows; ++j) decode_rows[j] = &decode[size_t(j) * k_];
  ec_encode_data(k_, k_, rows, tables.data(), inv_rows.data(), decode_rows.data());
  ec_init_tables(k_, rows, decode.data(), tables.data());
  std::vector<uint8_t*> src(k_), dst(rows);
  for (size_t done = 0; done < len;) {
    size_t piece = std::min(len - done, kMaxPiece);
    for (int i = 0; i < k_; ++i) src[i] = const_cast<uint8_t*>(in[i]) + done;
    for (int j = 0; j < rows; ++j) dst[j] = out[j] + done;
    ec_encode_data(static_cast<int>(piece), k_, rows, tables.data(), src.data(), dst.data());
    done += piece;
  }
  return Status::OK();
}

}  // namespace strata::volume
