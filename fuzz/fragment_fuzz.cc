// Fragment headers and placement records are read from volumes and the repository directory:
// their parsers see attacker bytes. What parses must be consistent and serialize back to the
// same bytes.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "volume/fragment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::volume;
  std::span<const uint8_t> bytes(data, size);
  auto header_size = FragmentHeaderSize(bytes);
  auto header = ParseFragmentHeader(bytes);
  if (header.ok()) {
    if (!header_size.ok() || *header_size > size) std::abort();
    if (header->index >= header->k + header->m) std::abort();
    if (header->body_size != FragmentBodySize(header->scheme, header->k, header->pack_size)) std::abort();
    std::string again = SerializeFragmentHeader(*header);
    if (again.size() != *header_size || again != std::string(reinterpret_cast<const char*>(data), again.size())) {
      std::abort();
    }
  }
  auto placement = ParsePlacement(bytes);
  if (placement.ok()) {
    if (placement->width() != placement->k + placement->m || placement->needed() > placement->width()) std::abort();
    std::string again = SerializePlacement(*placement);
    if (again != std::string(reinterpret_cast<const char*>(data), size)) std::abort();
  }
  return 0;
}
