#include "base/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>

namespace strata {

// ISA-L's crc32_iscsi computes the bare reflected CRC register, without the customary pre- and
// post-inversion, and takes an int length: the inversions are done here and large buffers are
// fed in pieces.
uint32_t Crc32cExtend(uint32_t start, std::span<const uint8_t> data) {
  uint32_t crc = start ^ 0xFFFFFFFFu;
  const uint8_t* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    size_t n = std::min<size_t>(left, 1u << 30);
    crc = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), crc);
    p += n;
    left -= n;
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t Crc32c(std::span<const uint8_t> data) { return Crc32cExtend(0, data); }

}  // namespace strata
