// Serving weights files come from wherever a model was pulled or copied to (`LoadWeights` maps
// them on an inference host): the parser of their prefix and header must refuse every malformed
// file with an error, and whatever it accepts must describe tensors that lie inside the file,
// aligned, in order, without overlap, each the size its dtype and shape say.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <span>
#include <string>

#include "checkpoint/manifest.h"
#include "registry/serving_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  auto h = registry::ParseServingFile(std::span<const uint8_t>(data, size));
  if (!h.ok()) return 0;
  if (h->alignment != 64 && h->alignment != 4096) std::abort();
  if (h->data_offset % h->alignment != 0 || h->data_offset > size || h->data_offset < registry::kServingPrefixBytes) {
    std::abort();
  }
  uint64_t end = h->data_offset;
  std::set<std::string> names;
  for (const auto& t : h->tensors) {
    if (t.name.empty() || !names.insert(t.name).second) std::abort();
    uint64_t n = 0;
    if (!checkpoint::Volume(t.shape, DTypeSize(t.dtype), &n) || n != t.bytes) std::abort();
    if (t.offset % h->alignment != 0 || t.offset < end || t.offset > size || t.bytes > size - t.offset) std::abort();
    end = t.offset + t.bytes;
  }
  return 0;
}
