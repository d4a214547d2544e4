// Cryptographically secure random bytes (OpenSSL RAND_bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace strata::crypto {

// Fills `out`. Aborts the process if the system's random source fails: continuing would risk
// nonce reuse, which breaks AES-GCM.
void RandomBytes(std::span<uint8_t> out);

}  // namespace strata::crypto
