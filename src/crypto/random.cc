#include "crypto/random.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include <openssl/err.h>
#include <openssl/rand.h>

namespace strata::crypto {

void RandomBytes(std::span<uint8_t> out) {
  // RAND_bytes takes an int length; nonces and keys are tiny, but stay correct for any span.
  constexpr size_t kMaxPerCall = std::numeric_limits<int>::max();
  size_t done = 0;
  while (done < out.size()) {
    size_t n = std::min(out.size() - done, kMaxPerCall);
    if (RAND_bytes(out.data() + done, static_cast<int>(n)) != 1) {
      char err[256];
      ERR_error_string_n(ERR_get_error(), err, sizeof(err));
      std::fprintf(stderr, "strata: fatal: the system random source failed (%s); refusing to continue "
                           "because a repeated nonce would break encryption\n", err);
      std::abort();
    }
    done += n;
  }
}

}  // namespace strata::crypto
