// Index files are read at every open. The sealed form is fuzzed as is (authentication must
// reject it cleanly), and the input is also sealed under a fixed key so the plaintext parser
// behind the tag is reached; both paths must agree, and what parses must round trip.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crypto/aead.h"
#include "store/chunk_index.h"

namespace {
using namespace strata;
using namespace strata::store;

const crypto::Aead& FixedAead() {
  static const crypto::Aead aead([] {
    crypto::Key256 k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 13 + 5);
    return k;
  }());
  return aead;
}

bool Same(const std::vector<PackListing>& a, const std::vector<PackListing>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].pack != b[i].pack || a[i].entries.size() != b[i].entries.size()) return false;
    for (size_t j = 0; j < a[i].entries.size(); ++j) {
      const PackEntry& x = a[i].entries[j];
      const PackEntry& y = b[i].entries[j];
      if (x.id != y.id || x.kind != y.kind || x.codec != y.codec || x.offset != y.offset ||
          x.stored_size != y.stored_size || x.raw_size != y.raw_size) {
        return false;
      }
    }
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "fedcba9876543210fedcba9876543210";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto raw = ParseIndexFile(FixedAead(), name, bytes);
  if (!raw.ok() && raw.status().code() != StatusCode::kCorruption &&
      raw.status().code() != StatusCode::kUnsupported) {
    std::abort();
  }

  auto plain = ParseIndexFilePlain(name, bytes);
  auto opened = ParseIndexFile(FixedAead(), name, FixedAead().Seal(bytes, "strata-index-v1:" + name));
  if (plain.ok() != opened.ok()) std::abort();
  if (!plain.ok()) {
    auto code = plain.status().code();
    if (code != StatusCode::kCorruption && code != StatusCode::kUnsupported) std::abort();
    if (opened.status().code() != code) std::abort();
    return 0;
  }
  if (!Same(*plain, *opened)) std::abort();
  for (const auto& p : *plain) {
    if (p.pack.empty() || p.pack.size() > 128) std::abort();
  }
  // What parses serializes back to something that parses the same.
  auto again = ParseIndexFile(FixedAead(), name, SerializeIndexFile(FixedAead(), name, *plain));
  if (!again.ok() || !Same(*again, *plain)) std::abort();
  return 0;
}
