// The local index cache is mapped at every open and is not authenticated: whatever its bytes,
// parsing and every lookup must stay in bounds, and a lookup may only ever return an entry
// whose id is the one asked for.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "store/index_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::store;
  auto cache = IndexCache::Parse(std::span<const uint8_t>(data, size));
  if (!cache.ok()) {
    auto code = cache.status().code();
    if (code != StatusCode::kCorruption && code != StatusCode::kUnsupported) std::abort();
    return 0;
  }
  const IndexCache& c = **cache;
  uint64_t n = c.size();
  if (n > size) std::abort();
  uint64_t prev_end = 0;
  for (int b = 0; b < 256; ++b) {
    auto [begin, end] = c.Bucket(static_cast<uint8_t>(b));
    if (begin != prev_end || end < begin || end > n) std::abort();
    prev_end = end;
  }
  for (uint64_t i = 0; i < n && i < 4096; ++i) {
    ObjectId id = c.IdAt(i);
    auto at = c.At(i);
    if (at && (at->first >= c.packs().size() || at->second.id != id)) std::abort();
    auto pos = c.Find(id);
    if (pos && (*pos >= n || c.IdAt(*pos) != id)) std::abort();
  }
  ObjectId probe;
  std::memset(probe.bytes.data(), size > 0 ? data[0] : 0, ObjectId::kSize);
  if (auto pos = c.Find(probe); pos && c.IdAt(*pos) != probe) std::abort();
  for (const auto& name : c.packs()) {
    if (name.empty() || name.size() > 128) std::abort();
  }
  return 0;
}
