#include "crypto/random.h"

#include <cstdio>
#include <cstdlib>

#include <sodium.h>

namespace strata::crypto {

void EnsureSodium() {
  static const bool ready = [] {
    if (sodium_init() < 0) {
      std::fprintf(stderr, "strata: fatal: libsodium failed to initialise\n");
      std::abort();
    }
    return true;
  }();
  (void)ready;
}

void RandomBytes(std::span<uint8_t> out) {
  // getrandom(2) underneath, which blocks until the kernel's pool is seeded and never returns
  // short; libsodium aborts the process itself if it fails, so a nonce is never reused.
  if (out.empty()) return;  // randombytes_buf's buffer must not be null
  EnsureSodium();
  randombytes_buf(out.data(), out.size());
}

}  // namespace strata::crypto
