// Trees and chunk lists are decrypted from packs, so only the key holder can write them; they
// are still parsed defensively, because restore trusts the names in them not to escape the
// destination. Parsing is canonical: whatever parses serializes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "store/tree.h"
#include "store/tree_pages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::store;
  std::span<const uint8_t> bytes(data, size);

  auto tree = ParseTree(bytes);
  if (tree.ok()) {
    for (size_t i = 0; i < tree->entries.size(); ++i) {
      const TreeEntry& e = tree->entries[i];
      if (!ValidEntryName(e.name) || e.mode > 07777) std::abort();
      if (i > 0 && !(tree->entries[i - 1].name < e.name)) std::abort();
      if (tree->Find(e.name) != &e) std::abort();
      if (e.type == EntryType::kFile) {
        uint64_t total = 0;
        for (const auto& c : e.chunks) total += c.size;
        if (total != e.size) std::abort();
      }
    }
    std::string again = SerializeTree(*tree);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } else if (tree.status().code() != StatusCode::kCorruption && tree.status().code() != StatusCode::kUnsupported) {
    std::abort();
  }

  auto index = ParseTreeIndex(bytes);
  if (index.ok()) {
    for (size_t i = 0; i < index->children.size(); ++i) {
      if (!ValidEntryName(index->children[i].first_name) || index->children[i].entries == 0) std::abort();
      if (i > 0 && !(index->children[i - 1].first_name < index->children[i].first_name)) std::abort();
    }
    std::string again = SerializeTreeIndex(*index);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } else if (index.status().code() != StatusCode::kCorruption && index.status().code() != StatusCode::kUnsupported) {
    std::abort();
  }

  auto list = ParseChunkList(bytes);
  if (list.ok()) {
    for (const auto& c : *list) {
      if (c.size == 0) std::abort();
    }
    std::string again = SerializeChunkList(*list);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } else if (list.status().code() != StatusCode::kCorruption) {
    std::abort();
  }
  return 0;
}
