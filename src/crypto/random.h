// Cryptographically secure random bytes (libsodium's randombytes_buf: the kernel's getrandom).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace strata::crypto {

// Fills `out`. Aborts the process if the system's random source fails: continuing would risk
// nonce reuse, which breaks AES-GCM.
void RandomBytes(std::span<uint8_t> out);

// Initialises libsodium once; aborts the process if it cannot (no usable random source).
void EnsureSodium();

}  // namespace strata::crypto
