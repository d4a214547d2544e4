// A commit's records file (.strata/records.jsonl) is a file of the dataset: anyone who can
// commit can write it, so it is parsed defensively. A file that parses serializes to a
// canonical form that parses to the same rows and serializes to itself.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "version/record_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto rows = version::ParseRecordsFile(text);
  if (!rows.ok()) return 0;
  std::string canonical = version::SerializeRecordsFile(*rows);
  auto again = version::ParseRecordsFile(canonical);
  if (!again.ok()) std::abort();
  if (version::SerializeRecordsFile(*again) != canonical) std::abort();
  if (again->size() != rows->size()) std::abort();
  return 0;
}
