// CRC32C (Castagnoli), as in iSCSI and ext4: the per-record and per-block checksums of shards
// and fragments. ISA-L computes it; crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstdint>
#include <span>

namespace strata {

uint32_t Crc32c(std::span<const uint8_t> data);
// The CRC32C of bytes whose CRC32C is `crc` followed by `data`, for data that comes in pieces:
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b), and Crc32cExtend(0, a) == Crc32c(a).
uint32_t Crc32cExtend(uint32_t crc, std::span<const uint8_t> data);

}  // namespace strata
