#include "store/tree_pages.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <xxhash.h>

#include "base/endian.h"

namespace strata::store {

namespace {

constexpr char kIndexMagic[4] = {'S', 'T', 'R', 'I'};
constexpr uint8_t kIndexVersion = 1;
constexpr uint8_t kMaxLevel = 8;  // 2048^8 entries: far beyond any directory

bool CutAfter(std::string_view name, uint64_t seed, size_t count) {
  if (count >= kMaxPage) return true;
  if (count < kMinPage) return false;
  return (XXH3_64bits_withSeed(name.data(), name.size(), seed) & (kAveragePage - 1)) == 0;
}

// Groups `n` items into pages by the cut rule; returns the page sizes.
template <class NameOf>
std::vector<size_t> Cut(size_t n, uint64_t seed, NameOf name_of) {
  std::vector<size_t> pages;
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    ++count;
    if (CutAfter(name_of(i), seed, count) || i + 1 == n) {
      pages.push_back(count);
      count = 0;
    }
  }
  return pages;
}

Status Append(const ObjectId& id, const ReadTreeObject& read, int expected_level, std::string* last_name, Tree* out) {
  STRATA_ASSIGN_OR_RETURN(std::string bytes, read(id));
  std::span<const uint8_t> b = AsBytes(bytes);
  if (!IsTreeIndex(b)) {
    if (expected_level > 0) return Status::Corruption(fmt::format("tree page {}: a leaf where an index was expected", id.Short()));
    auto leaf = ParseTree(b);
    if (!leaf.ok()) return leaf.status().WithContext("tree " + id.Short());
    if (!leaf->entries.empty() && !out->entries.empty() && !(*last_name < leaf->entries.front().name)) {
      return Status::Corruption(fmt::format("tree page {} is out of order", id.Short()));
    }
    if (!leaf->entries.empty()) *last_name = leaf->entries.back().name;
    for (auto& e : leaf->entries) out->entries.push_back(std::move(e));
    return Status::OK();
  }
  auto index = ParseTreeIndex(b);
  if (!index.ok()) return index.status().WithContext("tree " + id.Short());
  if (expected_level >= 0 && index->level != expected_level) {
    return Status::Corruption(fmt::format("tree page {}: level {} where {} was expected", id.Short(), index->level, expected_level));
  }
  for (const auto& child : index->children) {
    size_t before = out->entries.size();
    STRATA_RETURN_IF_ERROR(Append(child.id, read, index->level - 1, last_name, out));
    if (out->entries.size() - before != child.entries || out->entries[before].name != child.first_name) {
      return Status::Corruption(fmt::format("tree page {} does not match its index entry", child.id.Short()));
    }
  }
  return Status::OK();
}

}  // namespace

bool IsTreeIndex(std::span<const uint8_t> bytes) {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), kIndexMagic, 4) == 0;
}

std::string SerializeTreeIndex(const TreeIndex& index) {
  std::string out(kIndexMagic, 4);
  out.push_back(static_cast<char>(kIndexVersion));
  out.push_back(static_cast<char>(index.level));
  PutFixed32(&out, static_cast<uint32_t>(index.children.size()));
  for (const auto& c : index.children) {
    PutFixed16(&out, static_cast<uint16_t>(c.first_name.size()));
    out += c.first_name;
    out.append(reinterpret_cast<const char*>(c.id.bytes.data()), ObjectId::kSize);
    PutFixed64(&out, c.entries);
    PutFixed64(&out, c.size);
  }
  return out;
}

Result<TreeIndex> ParseTreeIndex(std::span<const uint8_t> bytes) {
  ByteReader r(bytes.data(), bytes.size());
  const uint8_t* magic = nullptr;
  uint8_t version = 0;
  TreeIndex index;
  uint32_t count = 0;
  if (!r.Bytes(4, &magic) || std::memcmp(magic, kIndexMagic, 4) != 0 || !r.U8(&version)) {
    return Status::Corruption("not a tree index page");
  }
  if (version != kIndexVersion) return Status::Unsupported(fmt::format("tree index version {} is not supported", version));
  if (!r.U8(&index.level) || index.level == 0 || index.level > kMaxLevel || !r.U32(&count) || count < 2 ||
      count > r.remaining() / 51) {
    return Status::Corruption("tree index page: bad header");
  }
  index.children.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    PageRef& c = index.children[i];
    uint16_t len = 0;
    const uint8_t* id = nullptr;
    if (!r.U16(&len) || !r.String(len, &c.first_name) || !r.Bytes(ObjectId::kSize, &id) || !r.U64(&c.entries) ||
        !r.U64(&c.size)) {
      return Status::Corruption(fmt::format("tree index page: child {} is truncated", i));
    }
    std::memcpy(c.id.bytes.data(), id, ObjectId::kSize);
    if (!ValidEntryName(c.first_name) || c.entries == 0 || (i > 0 && !(index.children[i - 1].first_name < c.first_name))) {
      return Status::Corruption(fmt::format("tree index page: child {} is malformed", i));
    }
  }
  if (r.remaining() != 0) return Status::Corruption("tree index page: trailing bytes");
  return index;
}

ObjectId WriteTreePaged(const Tree& tree, uint64_t seed, const PutTreeObject& put) {
  if (tree.entries.size() <= kMaxSinglePage) return put(SerializeTree(tree));
  // Leaves.
  std::vector<PageRef> level;
  size_t start = 0;
  for (size_t n : Cut(tree.entries.size(), seed, [&](size_t i) -> std::string_view { return tree.entries[i].name; })) {
    Tree page;
    PageRef ref;
    page.entries.assign(tree.entries.begin() + start, tree.entries.begin() + start + n);
    for (const auto& e : page.entries) ref.size += e.size;
    ref.first_name = page.entries.front().name;
    ref.entries = n;
    ref.id = put(SerializeTree(page));
    level.push_back(std::move(ref));
    start += n;
  }
  // Index levels until one page is left.
  for (uint8_t depth = 1;; ++depth) {
    if (level.size() == 1 && depth > 1) return level.front().id;
    std::vector<PageRef> next;
    start = 0;
    uint64_t level_seed = seed + depth;
    std::vector<size_t> cuts = level.size() <= kMaxSinglePage
                                   ? std::vector<size_t>{level.size()}
                                   : Cut(level.size(), level_seed, [&](size_t i) -> std::string_view { return level[i].first_name; });
    for (size_t n : cuts) {
      TreeIndex index;
      index.level = depth;
      index.children.assign(level.begin() + start, level.begin() + start + n);
      PageRef ref;
      ref.first_name = index.children.front().first_name;
      for (const auto& c : index.children) {
        ref.entries += c.entries;
        ref.size += c.size;
      }
      ref.id = put(SerializeTreeIndex(index));
      next.push_back(std::move(ref));
      start += n;
    }
    level = std::move(next);
    if (level.size() == 1) return level.front().id;
  }
}

Result<Tree> ReadTreePaged(const ObjectId& id, const ReadTreeObject& read) {
  Tree tree;
  std::string last;
  STRATA_RETURN_IF_ERROR(Append(id, read, -1, &last, &tree));
  return tree;
}

Result<TreePage> ParseTreePage(std::span<const uint8_t> bytes) {
  TreePage page;
  page.is_index = IsTreeIndex(bytes);
  if (page.is_index) {
    STRATA_ASSIGN_OR_RETURN(page.index, ParseTreeIndex(bytes));
  } else {
    STRATA_ASSIGN_OR_RETURN(page.leaf, ParseTree(bytes));
  }
  return page;
}

Result<std::optional<TreeEntry>> FindEntryPaged(const ObjectId& id, std::string_view name, const ReadTreeObject& read) {
  return FindEntryPaged(id, name, [&](const ObjectId& at) -> Result<std::shared_ptr<const TreePage>> {
    STRATA_ASSIGN_OR_RETURN(std::string bytes, read(at));
    auto page = ParseTreePage(AsBytes(bytes));
    if (!page.ok()) return page.status().WithContext("tree " + at.Short());
    return std::make_shared<const TreePage>(std::move(*page));
  });
}

Result<std::optional<TreeEntry>> FindEntryPaged(const ObjectId& id, std::string_view name, const ReadParsedTreePage& read) {
  ObjectId at = id;
  for (int depth = 0; depth <= kMaxLevel + 1; ++depth) {
    STRATA_ASSIGN_OR_RETURN(std::shared_ptr<const TreePage> page, read(at));
    if (!page->is_index) {
      const TreeEntry* e = page->leaf.Find(name);
      if (!e) return std::optional<TreeEntry>();
      return std::optional<TreeEntry>(*e);
    }
    // The last child whose first name is <= name.
    const auto& children = page->index.children;
    auto it = std::upper_bound(children.begin(), children.end(), name,
                               [](std::string_view n, const PageRef& c) { return n < c.first_name; });
    if (it == children.begin()) return std::optional<TreeEntry>();
    at = std::prev(it)->id;
  }
  return Status::Corruption(fmt::format("tree {} is nested too deeply", id.Short()));
}

}  // namespace strata::store
