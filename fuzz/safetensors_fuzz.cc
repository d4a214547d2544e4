// safetensors files come from anywhere (`strata ckpt import`): the header parser must refuse
// every malformed header with an error, and whatever it accepts must lie inside the file.
// Checkpoint manifests are sealed, but are parsed as strictly, so they are fuzzed here too.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "checkpoint/manifest.h"
#include "strata/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  std::span<const uint8_t> bytes(data, size);
  // The file size as given, and as if the data section were larger than what was read.
  for (uint64_t file_size : {uint64_t(size), uint64_t(size) + 4096}) {
    auto h = ParseSafetensorsHeader(bytes, file_size);
    if (!h.ok()) continue;
    if (h->data_offset > file_size) std::abort();
    uint64_t at = 0;
    for (const auto& t : h->tensors) {
      uint64_t n = 0;
      if (!checkpoint::Volume(t.shape, DTypeSize(t.dtype), &n)) std::abort();
      if (t.begin != at || t.end - t.begin != n || h->data_offset + t.end > file_size) std::abort();
      at = t.end;
    }
  }
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool complete : {false, true}) {
    auto m = checkpoint::ParseManifest(text, complete);
    if (!m.ok()) continue;
    // What parses serializes to a manifest that parses to the same thing.
    auto again = checkpoint::ParseManifest(checkpoint::EncodeManifest(*m), complete);
    if (!again.ok() || checkpoint::EncodeManifest(*again) != checkpoint::EncodeManifest(*m)) std::abort();
  }
  return 0;
}
