// Key slot files are read before any key is known, so their parser sees attacker bytes.
// A parsed slot must serialize and re-parse to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::crypto;
  auto slot = ParseKeySlot(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!slot.ok()) {
    auto code = slot.status().code();
    if (code != strata::StatusCode::kCorruption && code != strata::StatusCode::kUnsupported) std::abort();
    return 0;
  }
  auto again = ParseKeySlot(SerializeKeySlot(*slot));
  if (!again.ok() || again->id != slot->id || again->created_unix != slot->created_unix ||
      again->kdf.ops_limit != slot->kdf.ops_limit || again->kdf.mem_limit != slot->kdf.mem_limit ||
      again->salt != slot->salt || again->wrapped != slot->wrapped) {
    std::abort();
  }
  return 0;
}
