// Commit objects and ref events come out of the repository (sealed, so only a key holder writes
// them) and references come from users: all three are parsed defensively. A commit that parses
// serializes to bytes that parse to the same commit.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "base/endian.h"
#include "strata/lake.h"
#include "version/commit.h"
#include "version/records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto commit = version::ParseCommit(std::span<const uint8_t>(data, size));
  if (commit.ok()) {
    std::string bytes = version::SerializeCommit(*commit);
    auto again = version::ParseCommit(AsBytes(bytes));
    if (!again.ok() || version::SerializeCommit(*again) != bytes) std::abort();
    if (again->tree != commit->tree || again->parents != commit->parents || again->meta != commit->meta) std::abort();
  }

  (void)version::DecodeRefEvents(text);

  auto spec = ParseRefSpec(text);
  if (spec.ok()) {
    // The canonical form parses to itself.
    auto again = ParseRefSpec(spec->ToString());
    if (!again.ok() || again->ToString() != spec->ToString()) std::abort();
  }
  return 0;
}
