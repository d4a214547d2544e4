// The config is plain JSON read before any key is known: its parser sees attacker bytes.
// What parses must be valid, serialize back, and re-parse to the same values.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/aead.h"
#include "store/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::store;
  auto parsed = ParseConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) {
    auto code = parsed.status().code();
    if (code != StatusCode::kCorruption && code != StatusCode::kUnsupported) std::abort();
    return 0;
  }
  const RepositoryConfig& c = parsed->config;
  if (!c.chunker.Validate().ok() || c.compression_level < 0 || c.compression_level > 22 ||
      c.pack_size < (1u << 20) || c.pack_size > (1u << 30) || (c.version != RepositoryConfig::kFormatVersion && c.version != RepositoryConfig::kVolumesFormatVersion)) {
    std::abort();
  }
  crypto::Key256 key{};
  key[0] = 1;
  crypto::KeyedHash mac(key);
  auto again = ParseConfig(SerializeConfig(c, mac));
  if (!again.ok() || again->body != parsed->body || !CheckConfigMac(*again, mac).ok()) std::abort();
  const RepositoryConfig& d = again->config;
  if (d.id != c.id || d.created_unix != c.created_unix || d.chunker.min_size != c.chunker.min_size ||
      d.chunker.avg_size != c.chunker.avg_size || d.chunker.max_size != c.chunker.max_size ||
      d.compression_level != c.compression_level || d.pack_size != c.pack_size) {
    std::abort();
  }
  return 0;
}
