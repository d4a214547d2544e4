// Large directories split into pages: round trips, canonical form, locality of changes,
// lookups that read only one path of pages, and damaged page structures.
#include "store/tree_pages.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/endian.h"
#include "crypto/aead.h"

namespace strata::store {
namespace {

// An in-memory object store for pages, counting reads.
struct Pages {
  std::map<ObjectId, std::string> objects;
  crypto::KeyedHash mac{crypto::Key256{}};
  mutable size_t reads = 0;
  PutTreeObject put() {
    return [this](std::string_view bytes) {
      ObjectId id = mac.Hash(bytes);
      objects.emplace(id, std::string(bytes));
      return id;
    };
  }
  ReadTreeObject read() const {
    return [this](const ObjectId& id) -> Result<std::string> {
      ++reads;
      auto it = objects.find(id);
      if (it == objects.end()) return Status::NotFound("no such page");
      return it->second;
    };
  }
};

Tree MakeTree(size_t n, const std::string& prefix = "file-") {
  Tree t;
  for (size_t i = 0; i < n; ++i) {
    TreeEntry e;
    e.name = prefix + std::to_string(1000000 + i);
    e.size = i;
    if (i > 0) e.chunks.push_back({ObjectId{}, static_cast<uint32_t>(i)});
    t.entries.push_back(e);
  }
  return t;
}

TEST(TreePagesTest, SmallDirectoriesStayOneObject) {
  Pages p;
  Tree t = MakeTree(kMaxSinglePage);
  ObjectId id = WriteTreePaged(t, 7, p.put());
  EXPECT_EQ(p.objects.size(), 1u);
  EXPECT_EQ(id, p.mac.Hash(SerializeTree(t)));
}

TEST(TreePagesTest, LargeDirectoriesRoundTrip) {
  for (size_t n : {kMaxSinglePage + 1, size_t{20000}, size_t{300000}}) {
    Pages p;
    Tree t = MakeTree(n);
    ObjectId id = WriteTreePaged(t, 7, p.put());
    EXPECT_GT(p.objects.size(), 2u);
    auto back = ReadTreePaged(id, p.read());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_EQ(back->entries.size(), n);
    for (size_t i = 0; i < n; i += 997) {
      EXPECT_EQ(back->entries[i].name, t.entries[i].name);
      EXPECT_EQ(back->entries[i].size, t.entries[i].size);
    }
    for (const auto& [oid, bytes] : p.objects) {
      std::span<const uint8_t> b = AsBytes(bytes);
      if (IsTreeIndex(b)) {
        auto index = ParseTreeIndex(b);
        ASSERT_TRUE(index.ok());
        EXPECT_LE(index->children.size(), kMaxPage);
      } else {
        auto leaf = ParseTree(b);
        ASSERT_TRUE(leaf.ok());
        EXPECT_LE(leaf->entries.size(), kMaxPage);
      }
    }
  }
}

TEST(TreePagesTest, SameEntriesSameIdAndOneChangeRewritesFewPages) {
  Pages p;
  Tree t = MakeTree(200000);
  ObjectId a = WriteTreePaged(t, 7, p.put());
  EXPECT_EQ(WriteTreePaged(t, 7, p.put()), a) << "paging must be canonical";
  size_t before = p.objects.size();
  t.entries[123456].size += 1;  // modify one entry
  ObjectId b = WriteTreePaged(t, 7, p.put());
  EXPECT_NE(a, b);
  EXPECT_LE(p.objects.size() - before, 4u) << "one leaf and its index path, not the whole directory";
  // Insert one entry: still only a few new pages.
  before = p.objects.size();
  TreeEntry extra;
  extra.name = "file-1050000x";
  t.entries.insert(std::upper_bound(t.entries.begin(), t.entries.end(), extra,
                                    [](const TreeEntry& x, const TreeEntry& y) { return x.name < y.name; }),
                   extra);
  WriteTreePaged(t, 7, p.put());
  EXPECT_LE(p.objects.size() - before, 6u);
}

TEST(TreePagesTest, FindReadsOnlyOnePathOfPages) {
  Pages p;
  Tree t = MakeTree(300000);
  ObjectId id = WriteTreePaged(t, 7, p.put());
  p.reads = 0;
  auto e = FindEntryPaged(id, "file-1123456", p.read());
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->size, 123456u);
  EXPECT_LE(p.reads, 4u);
  auto missing = FindEntryPaged(id, "file-0", p.read());
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto after = FindEntryPaged(id, "zzz", p.read());
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
}

TEST(TreePagesTest, DamagedStructureIsReported) {
  Pages p;
  Tree t = MakeTree(5000);
  ObjectId id = WriteTreePaged(t, 7, p.put());
  auto index = ParseTreeIndex(AsBytes(p.objects.at(id)));
  ASSERT_TRUE(index.ok());
  // Swap two children: pages out of order.
  TreeIndex swapped = *index;
  std::swap(swapped.children[0].id, swapped.children[1].id);
  p.objects[id] = SerializeTreeIndex(swapped);
  EXPECT_EQ(ReadTreePaged(id, p.read()).status().code(), StatusCode::kCorruption);
  // A lying entry count.
  TreeIndex lying = *index;
  lying.children[0].entries += 1;
  p.objects[id] = SerializeTreeIndex(lying);
  EXPECT_EQ(ReadTreePaged(id, p.read()).status().code(), StatusCode::kCorruption);
  // Truncated at every length: an error, never a crash.
  std::string good = SerializeTreeIndex(*index);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseTreeIndex(AsBytes(std::string_view(good).substr(0, n))).ok()) << n;
  }
}

}  // namespace
}  // namespace strata::store
