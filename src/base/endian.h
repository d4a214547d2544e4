// Byte helpers and little-endian fixed-width encoding, used by every binary format in
// docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace strata {

// A string's bytes as a span, for the binary APIs.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline void PutFixed16(std::string* out, uint16_t v) {
  char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  out->append(b, 2);
}
inline void PutFixed32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
inline void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
inline uint16_t GetFixed16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline uint32_t GetFixed32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t GetFixed64(const uint8_t* p) {
  return uint64_t{GetFixed32(p)} | uint64_t{GetFixed32(p + 4)} << 32;
}

// A bounds-checked reader over untrusted bytes: every Get fails (returns false) instead of
// reading past the end, and stays failed.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t n) : p_(data), end_(data + n) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool ok() const { return ok_; }
  bool U8(uint8_t* v) { return Take(1) && (*v = p_[-1], true); }
  bool U16(uint16_t* v) { return Take(2) && (*v = GetFixed16(p_ - 2), true); }
  bool U32(uint32_t* v) { return Take(4) && (*v = GetFixed32(p_ - 4), true); }
  bool U64(uint64_t* v) { return Take(8) && (*v = GetFixed64(p_ - 8), true); }
  bool Bytes(size_t n, const uint8_t** out) { return Take(n) && (*out = p_ - n, true); }
  bool String(size_t n, std::string* out) {
    const uint8_t* b;
    if (!Bytes(n, &b)) return false;
    out->assign(reinterpret_cast<const char*>(b), n);
    return true;
  }

 private:
  bool Take(size_t n) {
    if (!ok_ || remaining() < n) return ok_ = false;
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

}  // namespace strata
