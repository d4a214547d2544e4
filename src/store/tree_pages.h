// Large directories are stored as a tree of pages, so that changing one entry of a directory
// of a million files rewrites one page and the index pages above it, not the whole listing.
//
// A directory of at most kMaxSinglePage entries is one leaf (a plain tree object). A larger one
// is cut into leaves at content-defined points: after an entry whose name hashes (XXH3, keyed
// by a repository secret) to 0 modulo kAveragePage, once a page has kMinPage entries, and
// always at kMaxPage. The cut points depend only on the names, so the same set of entries
// always gives the same pages (and ids), and an insertion moves at most one boundary. Index
// pages list their children the same way, level by level, until one page remains.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "store/tree.h"

namespace strata::store {

inline constexpr size_t kMaxSinglePage = 1024;
inline constexpr size_t kMinPage = 64;
inline constexpr size_t kAveragePage = 256;  // a power of two
inline constexpr size_t kMaxPage = 2048;

// One child of an index page.
struct PageRef {
  std::string first_name;  // name of the first entry below it
  ObjectId id;
  uint64_t entries = 0;    // leaf entries below it
  uint64_t size = 0;       // bytes of the entries below it
};

struct TreeIndex {
  uint8_t level = 1;  // 1: children are leaves
  std::vector<PageRef> children;
};

bool IsTreeIndex(std::span<const uint8_t> bytes);
std::string SerializeTreeIndex(const TreeIndex& index);
// Untrusted input (fuzzed).
Result<TreeIndex> ParseTreeIndex(std::span<const uint8_t> bytes);

using PutTreeObject = std::function<ObjectId(std::string_view bytes)>;
using ReadTreeObject = std::function<Result<std::string>(const ObjectId& id)>;

// Stores `tree` (paged when large) through `put` and returns the directory's id.
ObjectId WriteTreePaged(const Tree& tree, uint64_t seed, const PutTreeObject& put);
// Reads a whole directory, whichever form it was stored in. Checks that pages join in order.
Result<Tree> ReadTreePaged(const ObjectId& id, const ReadTreeObject& read);
// A stored directory object parsed: a leaf (a plain tree) or an index page.
struct TreePage {
  bool is_index = false;
  Tree leaf;
  TreeIndex index;
};
// Untrusted input (fuzzed through ParseTree and ParseTreeIndex).
Result<TreePage> ParseTreePage(std::span<const uint8_t> bytes);
using ReadParsedTreePage = std::function<Result<std::shared_ptr<const TreePage>>(const ObjectId& id)>;

// Finds one entry, reading only the pages on its path: through `read` (parsing each page it
// returns), or through pages parsed once and kept by the caller.
Result<std::optional<TreeEntry>> FindEntryPaged(const ObjectId& id, std::string_view name, const ReadTreeObject& read);
Result<std::optional<TreeEntry>> FindEntryPaged(const ObjectId& id, std::string_view name, const ReadParsedTreePage& read);

}  // namespace strata::store
