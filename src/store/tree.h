// Trees (directories) and chunk lists (file contents), serialized as stored objects.
// Byte layout in docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "strata/object_id.h"
#include "strata/status.h"

namespace strata::store {

// One chunk of a file: its id and plaintext length.
struct ChunkRef {
  ObjectId id;
  uint32_t size = 0;
};

enum class EntryType : uint8_t { kFile = 0, kDirectory = 1, kSymlink = 2 };

struct TreeEntry {
  std::string name;        // one path component: not empty, not "." or "..", no '/' or NUL
  EntryType type = EntryType::kFile;
  uint32_t mode = 0644;    // permission bits
  int64_t mtime_ns = 0;
  uint64_t size = 0;       // file: content bytes; directory: total bytes below it
  std::vector<ChunkRef> chunks;  // file content, in order
  ObjectId subtree;        // directory
  std::string target;      // symlink
};

// Entries sorted by name, names unique.
struct Tree {
  std::vector<TreeEntry> entries;
  const TreeEntry* Find(std::string_view name) const;  // binary search
};

// True if `name` is a safe single path component. Restores rely on this: a tree from a hostile
// repository must not be able to write outside the destination.
bool ValidEntryName(std::string_view name);

std::string SerializeTree(const Tree& tree);
// Untrusted input (fuzzed): checks names, order, types and sizes.
Result<Tree> ParseTree(std::span<const uint8_t> bytes);

std::string SerializeChunkList(const std::vector<ChunkRef>& chunks);
Result<std::vector<ChunkRef>> ParseChunkList(std::span<const uint8_t> bytes);

}  // namespace strata::store
