// Unit tests of the store's binary and JSON formats: trees, chunk lists, pack indexes and
// trailers, index files and the config. Every parser here reads untrusted bytes, so besides
// round trips the tests feed it damaged input and expect a clean error, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/endian.h"
#include "crypto/aead.h"
#include "crypto/keys.h"
#include "store/chunk_index.h"
#include "store/config.h"
#include "store/pack.h"
#include "store/tree.h"
#include "testutil/testutil.h"
#include "volume/backend.h"

namespace strata::store {
namespace {

using strata::testing::RandomBytes;
using strata::testing::TempDir;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

crypto::Key256 KeyFromSeed(uint8_t seed) {
  crypto::Key256 key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(seed * 31 + i);
  return key;
}

ObjectId IdFromSeed(uint64_t seed) {
  ObjectId id;
  std::string b = RandomBytes(seed, ObjectId::kSize);
  std::memcpy(id.bytes.data(), b.data(), ObjectId::kSize);
  return id;
}

TreeEntry FileEntry(std::string name, std::vector<uint32_t> sizes, uint64_t seed) {
  TreeEntry e;
  e.name = std::move(name);
  e.type = EntryType::kFile;
  e.mode = 0640;
  e.mtime_ns = 1'700'000'000'123'456'789 + static_cast<int64_t>(seed);
  for (size_t i = 0; i < sizes.size(); ++i) {
    e.chunks.push_back({IdFromSeed(seed * 100 + i), sizes[i]});
    e.size += sizes[i];
  }
  return e;
}

Tree SampleTree() {
  Tree t;
  t.entries.push_back(FileEntry("a.bin", {100, 200, 1}, 1));
  TreeEntry dir;
  dir.name = "dir";
  dir.type = EntryType::kDirectory;
  dir.mode = 0755;
  dir.mtime_ns = -5;  // before the epoch: must survive the unsigned encoding
  dir.size = 12345;
  dir.subtree = IdFromSeed(77);
  t.entries.push_back(dir);
  t.entries.push_back(FileEntry("empty", {}, 2));
  TreeEntry link;
  link.name = "link";
  link.type = EntryType::kSymlink;
  link.mode = 0777;
  link.target = "../some/where";
  t.entries.push_back(link);
  t.entries.push_back(FileEntry("\xe6\x97\xa5\xe6\x9c\xac", {7}, 3));  // "日本"
  return t;
}

void ExpectSameTree(const Tree& a, const Tree& b) {
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const TreeEntry& x = a.entries[i];
    const TreeEntry& y = b.entries[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.mode, y.mode);
    EXPECT_EQ(x.mtime_ns, y.mtime_ns);
    EXPECT_EQ(x.size, y.size);
    EXPECT_EQ(x.subtree, y.subtree);
    EXPECT_EQ(x.target, y.target);
    ASSERT_EQ(x.chunks.size(), y.chunks.size());
    for (size_t j = 0; j < x.chunks.size(); ++j) {
      EXPECT_EQ(x.chunks[j].id, y.chunks[j].id);
      EXPECT_EQ(x.chunks[j].size, y.chunks[j].size);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Trees and chunk lists

TEST(TreeFormatTest, RoundTrip) {
  Tree t = SampleTree();
  std::string bytes = SerializeTree(t);
  auto parsed = ParseTree(Bytes(bytes));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ExpectSameTree(t, *parsed);
  // Serialization is canonical: equal trees give equal bytes (and so equal ids).
  EXPECT_EQ(SerializeTree(*parsed), bytes);
  ASSERT_NE(parsed->Find("dir"), nullptr);
  EXPECT_EQ(parsed->Find("dir")->subtree, IdFromSeed(77));
  EXPECT_EQ(parsed->Find("di"), nullptr);
  EXPECT_EQ(parsed->Find("zzz"), nullptr);
}

TEST(TreeFormatTest, EmptyTreeRoundTrips) {
  auto parsed = ParseTree(Bytes(SerializeTree(Tree{})));
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->entries.empty());
}

TEST(TreeFormatTest, UnsafeNamesRejected) {
  const std::vector<std::string> bad = {"..", ".", "a/b", "", std::string("a\0b", 3), "/", "x/",
                                        std::string(4097, 'n')};
  for (const auto& name : bad) {
    EXPECT_FALSE(ValidEntryName(name)) << "name of length " << name.size();
    Tree t;
    t.entries.push_back(FileEntry(name, {5}, 9));
    auto parsed = ParseTree(Bytes(SerializeTree(t)));
    ASSERT_FALSE(parsed.ok()) << "accepted unsafe name of length " << name.size();
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption);
  }
  for (const std::string& good : std::vector<std::string>{"...", ".hidden", "a b", "a\\b", "a\nb", std::string(4096, 'n')}) {
    EXPECT_TRUE(ValidEntryName(good));
    Tree t;
    t.entries.push_back(FileEntry(good, {5}, 9));
    EXPECT_TRUE(ParseTree(Bytes(SerializeTree(t))).ok());
  }
}

TEST(TreeFormatTest, UnsortedOrDuplicateNamesRejected) {
  Tree t;
  t.entries.push_back(FileEntry("b", {1}, 1));
  t.entries.push_back(FileEntry("a", {1}, 2));
  auto parsed = ParseTree(Bytes(SerializeTree(t)));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption);

  Tree dup;
  dup.entries.push_back(FileEntry("a", {1}, 1));
  dup.entries.push_back(FileEntry("a", {1}, 2));
  EXPECT_FALSE(ParseTree(Bytes(SerializeTree(dup))).ok());
}

TEST(TreeFormatTest, InconsistentEntriesRejected) {
  {  // file size disagrees with its chunks
    Tree t;
    t.entries.push_back(FileEntry("f", {10, 20}, 1));
    t.entries[0].size = 31;
    EXPECT_FALSE(ParseTree(Bytes(SerializeTree(t))).ok());
  }
  {  // a zero-length chunk
    Tree t;
    t.entries.push_back(FileEntry("f", {10, 0}, 1));
    EXPECT_FALSE(ParseTree(Bytes(SerializeTree(t))).ok());
  }
  {  // mode beyond the permission bits
    Tree t;
    t.entries.push_back(FileEntry("f", {10}, 1));
    t.entries[0].mode = 010000;
    EXPECT_FALSE(ParseTree(Bytes(SerializeTree(t))).ok());
  }
  {  // symlink target with NUL
    Tree t;
    TreeEntry l;
    l.name = "l";
    l.type = EntryType::kSymlink;
    l.target = std::string("a\0b", 3);
    t.entries.push_back(l);
    EXPECT_FALSE(ParseTree(Bytes(SerializeTree(t))).ok());
  }
  {  // unknown entry type: patch the type byte (after magic 4, version 1, count 4, len 2, name 1)
    Tree t;
    t.entries.push_back(FileEntry("f", {10}, 1));
    std::string bytes = SerializeTree(t);
    ASSERT_EQ(bytes[12], static_cast<char>(EntryType::kFile));
    bytes[12] = 3;
    EXPECT_FALSE(ParseTree(Bytes(bytes)).ok());
  }
  {  // trailing garbage
    std::string bytes = SerializeTree(SampleTree()) + "x";
    EXPECT_FALSE(ParseTree(Bytes(bytes)).ok());
  }
  {  // wrong magic: a chunk list is not a tree
    std::string bytes = SerializeChunkList({{IdFromSeed(1), 5}});
    EXPECT_FALSE(ParseTree(Bytes(bytes)).ok());
  }
  {  // a newer version is reported as such
    std::string bytes = SerializeTree(SampleTree());
    bytes[4] = 2;
    auto parsed = ParseTree(Bytes(bytes));
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kUnsupported);
  }
}

TEST(TreeFormatTest, EveryTruncationRejected) {
  std::string bytes = SerializeTree(SampleTree());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto parsed = ParseTree(Bytes(std::string_view(bytes).substr(0, n)));
    ASSERT_FALSE(parsed.ok()) << "accepted a tree truncated to " << n << " of " << bytes.size() << " bytes";
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption) << n;
  }
}

TEST(TreeFormatTest, HugeEntryCountRejectedWithoutAllocating) {
  std::string bytes = "STRT";
  bytes.push_back(1);
  PutFixed32(&bytes, 0xffffffffu);
  auto parsed = ParseTree(Bytes(bytes));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption);
}

TEST(ChunkListFormatTest, RoundTripAndTruncation) {
  std::vector<ChunkRef> chunks;
  for (uint32_t i = 0; i < 20; ++i) chunks.push_back({IdFromSeed(i), 1000 + i});
  std::string bytes = SerializeChunkList(chunks);
  auto parsed = ParseChunkList(Bytes(bytes));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ((*parsed)[i].id, chunks[i].id);
    EXPECT_EQ((*parsed)[i].size, chunks[i].size);
  }
  auto empty = ParseChunkList(Bytes(SerializeChunkList({})));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(ParseChunkList(Bytes(std::string_view(bytes).substr(0, n))).ok()) << n;
  }
  EXPECT_FALSE(ParseChunkList(Bytes(bytes + "z")).ok());
  EXPECT_FALSE(ParseChunkList(Bytes(SerializeChunkList({{IdFromSeed(1), 0}}))).ok());
  // A tree is not a chunk list.
  EXPECT_FALSE(ParseChunkList(Bytes(SerializeTree(SampleTree()))).ok());
  std::string huge = "STRL";
  huge.push_back(1);
  PutFixed32(&huge, 0xffffffffu);
  EXPECT_FALSE(ParseChunkList(Bytes(huge)).ok());
}

// ---------------------------------------------------------------------------------------------
// Packs

class PackFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = volume::CreateLocalBackend(Env::Default(), dir_ / "repo");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
  }

  // Writes a pack of `n` objects (mixed compressible and random content); returns its entries.
  std::vector<PackEntry> WritePack(const std::string& name, int n) {
    auto out = backend_->Create(volume::ObjectType::kPack, name);
    EXPECT_TRUE(out.ok());
    PackWriter w(&aead_, name, std::move(*out));
    for (int i = 0; i < n; ++i) {
      std::string plain = i % 2 ? RandomBytes(i, 1000 + 37 * i) : std::string(5000 + i, 'a' + i % 26);
      contents_.push_back(plain);
      std::string sealed;
      PackEntry e;
      SealObject(aead_, IdFromSeed(i), i == 0 ? ObjectKind::kTree : ObjectKind::kData, Bytes(plain), 3, codec::kDefaultMinSaving, &sealed, &e);
      EXPECT_TRUE(w.Add(e, Bytes(sealed)).ok());
    }
    EXPECT_TRUE(w.Finish().ok());
    return w.entries();
  }

  std::string PackBytes(const std::string& name) {
    auto info = backend_->Stat(volume::ObjectType::kPack, name);
    EXPECT_TRUE(info.ok());
    std::string bytes(info->size, '\0');
    EXPECT_TRUE(backend_->ReadAt(volume::ObjectType::kPack, name, 0, bytes.size(),
                                 reinterpret_cast<uint8_t*>(bytes.data())).ok());
    return bytes;
  }

  TempDir dir_;
  std::unique_ptr<volume::Backend> backend_;
  crypto::Aead aead_{KeyFromSeed(1)};
  std::vector<std::string> contents_;
};

TEST_F(PackFormatTest, WriterOutputParsesBack) {
  const std::string name = "0123456789abcdef0123456789abcdef";
  auto written = WritePack(name, 12);
  ASSERT_EQ(written.size(), 12u);
  auto read = ReadPackIndex(backend_.get(), aead_, name);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->size(), written.size());
  uint64_t next = kPackHeaderSize;
  for (size_t i = 0; i < read->size(); ++i) {
    const PackEntry& e = (*read)[i];
    EXPECT_EQ(e.id, written[i].id);
    EXPECT_EQ(e.offset, next);
    EXPECT_EQ(e.stored_size, written[i].stored_size);
    EXPECT_EQ(e.raw_size, contents_[i].size());
    EXPECT_EQ(e.kind, i == 0 ? ObjectKind::kTree : ObjectKind::kData);
    next += e.stored_size;
    // The objects open back to their content.
    std::string sealed(e.stored_size, '\0'), plain;
    ASSERT_TRUE(backend_->ReadAt(volume::ObjectType::kPack, name, e.offset, e.stored_size,
                                 reinterpret_cast<uint8_t*>(sealed.data())).ok());
    ASSERT_TRUE(OpenObject(aead_, e, name, Bytes(sealed), &plain).ok());
    EXPECT_EQ(plain, contents_[i]);
  }
  // Compressible objects were compressed.
  EXPECT_EQ((*read)[2].codec, codec::Codec::kZstd);
  EXPECT_LT((*read)[2].stored_size, (*read)[2].raw_size);

  // A pack is header + objects + sealed index + trailer, exactly.
  std::string bytes = PackBytes(name);
  EXPECT_EQ(bytes.substr(0, 8), std::string(kPackMagic, 8));
  EXPECT_EQ(bytes.substr(bytes.size() - 8), std::string(kPackTrailerMagic, 8));
  auto len = ParsePackTrailer(name, Bytes(bytes.substr(bytes.size() - kPackTrailerSize)), bytes.size());
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(next + *len + kPackTrailerSize, bytes.size());
}

TEST_F(PackFormatTest, EmptyPackParses) {
  const std::string name = "00000000000000000000000000000000";
  WritePack(name, 0);
  auto read = ReadPackIndex(backend_.get(), aead_, name);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(read->empty());
}

TEST_F(PackFormatTest, ObjectBoundToItsMetadata) {
  // The AD binds id, kind, codec and size: an index that lies about any of them fails.
  std::string plain = "some object content";
  std::string sealed;
  PackEntry e;
  SealObject(aead_, IdFromSeed(5), ObjectKind::kData, Bytes(plain), 0, codec::kDefaultMinSaving, &sealed, &e);
  std::string out;
  ASSERT_TRUE(OpenObject(aead_, e, "p", Bytes(sealed), &out).ok());
  EXPECT_EQ(out, plain);
  PackEntry lie = e;
  lie.id = IdFromSeed(6);
  EXPECT_EQ(OpenObject(aead_, lie, "p", Bytes(sealed), &out).code(), StatusCode::kCorruption);
  lie = e;
  lie.kind = ObjectKind::kTree;
  EXPECT_EQ(OpenObject(aead_, lie, "p", Bytes(sealed), &out).code(), StatusCode::kCorruption);
  lie = e;
  lie.raw_size += 1;
  EXPECT_EQ(OpenObject(aead_, lie, "p", Bytes(sealed), &out).code(), StatusCode::kCorruption);
  crypto::Aead other(KeyFromSeed(2));
  EXPECT_EQ(OpenObject(other, e, "p", Bytes(sealed), &out).code(), StatusCode::kCorruption);
  EXPECT_EQ(OpenObject(aead_, e, "p", Bytes(std::string_view(sealed).substr(0, 10)), &out).code(),
            StatusCode::kCorruption);
}

TEST_F(PackFormatTest, TrailerChecks) {
  const std::string name = "11111111111111111111111111111111";
  WritePack(name, 3);
  std::string bytes = PackBytes(name);
  std::string trailer = bytes.substr(bytes.size() - kPackTrailerSize);
  ASSERT_TRUE(ParsePackTrailer(name, Bytes(trailer), bytes.size()).ok());
  // Every single-byte change of the trailer is caught here or by the index's authentication.
  for (size_t i = 0; i < trailer.size(); ++i) {
    std::string t = trailer;
    t[i] ^= 0x40;
    auto len = ParsePackTrailer(name, Bytes(t), bytes.size());
    if (!len.ok()) {
      EXPECT_EQ(len.status().code(), StatusCode::kCorruption);
      continue;
    }
    // Only the length field can change and still parse; the index then fails to open.
    ASSERT_LT(i, 4u);
    uint64_t index_offset = bytes.size() - kPackTrailerSize - *len;
    std::string sealed = bytes.substr(index_offset, *len);
    EXPECT_FALSE(ParsePackIndex(aead_, name, Bytes(sealed), index_offset).ok()) << i;
  }
  // Lengths that do not fit the pack.
  std::string t = trailer;
  std::memcpy(t.data(), "\xff\xff\xff\x7f", 4);
  EXPECT_FALSE(ParsePackTrailer(name, Bytes(t), bytes.size()).ok());
  EXPECT_FALSE(ParsePackTrailer(name, Bytes(trailer), 20).ok());
  EXPECT_FALSE(ParsePackTrailer(name, Bytes(std::string_view(trailer).substr(1)), bytes.size()).ok());
}

TEST_F(PackFormatTest, IndexFailsUnderWrongKeyOrName) {
  const std::string name = "22222222222222222222222222222222";
  WritePack(name, 4);
  crypto::Aead other(KeyFromSeed(9));
  auto r = ReadPackIndex(backend_.get(), other, name);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find(name), std::string::npos) << r.status().message();

  // The index is bound to the pack's name: a pack copied under another name fails.
  std::string bytes = PackBytes(name);
  const std::string copy = "33333333333333333333333333333333";
  ASSERT_TRUE(backend_->Put(volume::ObjectType::kPack, copy, bytes).ok());
  EXPECT_FALSE(ReadPackIndex(backend_.get(), aead_, copy).ok());
}

TEST_F(PackFormatTest, HeaderChecks) {
  const std::string name = "44444444444444444444444444444444";
  WritePack(name, 2);
  std::string bytes = PackBytes(name);
  for (size_t i = 0; i < kPackHeaderSize; ++i) {
    std::string b = bytes;
    b[i] ^= 0x01;
    // The index is sealed under the pack's name, so the damaged copy replaces the original.
    ASSERT_TRUE(backend_->Put(volume::ObjectType::kPack, name, b).ok());
    auto r = ReadPackIndex(backend_.get(), aead_, name);
    EXPECT_FALSE(r.ok()) << "header byte " << i;
    ASSERT_TRUE(backend_->Put(volume::ObjectType::kPack, name, bytes).ok());
  }
  // A newer pack version is reported as unsupported, not as damage.
  std::string b = bytes;
  b[8] = 2;
  ASSERT_TRUE(backend_->Put(volume::ObjectType::kPack, name, b).ok());
  auto r = ReadPackIndex(backend_.get(), aead_, name);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
}

TEST(PackIndexPlainTest, LayoutChecks) {
  // Builds a plaintext index of objects with the given (offset, stored_size).
  auto build = [](std::vector<std::pair<uint64_t, uint32_t>> objs) {
    std::string plain;
    PutFixed32(&plain, static_cast<uint32_t>(objs.size()));
    for (size_t i = 0; i < objs.size(); ++i) {
      PackEntry e;
      e.id = IdFromSeed(i);
      e.offset = objs[i].first;
      e.stored_size = objs[i].second;
      e.raw_size = 10;
      AppendEntryRecord(e, &plain);
    }
    return plain;
  };
  auto parse = [](const std::string& plain, uint64_t end) { return ParsePackIndexPlain("p", Bytes(plain), end); };
  EXPECT_TRUE(parse(build({{16, 100}, {116, 50}}), 166).ok());
  EXPECT_FALSE(parse(build({{16, 100}, {116, 50}}), 167).ok());  // gap before the index
  EXPECT_FALSE(parse(build({{16, 100}, {116, 50}}), 165).ok());  // runs into the index
  EXPECT_FALSE(parse(build({{16, 100}, {117, 50}}), 167).ok());  // gap between objects
  EXPECT_FALSE(parse(build({{16, 100}, {100, 66}}), 166).ok());  // overlap
  EXPECT_FALSE(parse(build({{17, 100}}), 117).ok());             // does not start after the header
  EXPECT_FALSE(parse(build({{16, 10}}), 26).ok());               // smaller than the AEAD overhead
  EXPECT_TRUE(parse(build({}), 16).ok());
  EXPECT_FALSE(parse(build({}), 0).ok());
  std::string good = build({{16, 100}, {116, 50}});
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(parse(good.substr(0, n), 166).ok()) << n;
  std::string bad_kind = good;
  bad_kind[4 + 32] = 7;
  EXPECT_FALSE(parse(bad_kind, 166).ok());
  std::string bad_codec = good;
  bad_codec[4 + 33] = 9;
  EXPECT_FALSE(parse(bad_codec, 166).ok());
  std::string huge_offset = build({{~uint64_t{0} - 10, 100}});
  EXPECT_FALSE(parse(huge_offset, 166).ok());
}

// ---------------------------------------------------------------------------------------------
// Index files

std::vector<PackListing> SampleListings() {
  std::vector<PackListing> packs;
  for (int p = 0; p < 3; ++p) {
    PackListing l;
    l.pack = std::string(32, static_cast<char>('a' + p));
    uint64_t off = kPackHeaderSize;
    for (int i = 0; i < 5 * p; ++i) {
      PackEntry e;
      e.id = IdFromSeed(p * 100 + i);
      e.kind = i % 3 == 0 ? ObjectKind::kTree : ObjectKind::kData;
      e.codec = i % 2 ? codec::Codec::kZstd : codec::Codec::kNone;
      e.offset = off;
      e.stored_size = 100 + i;
      e.raw_size = 200 + i;
      off += e.stored_size;
      l.entries.push_back(e);
    }
    packs.push_back(l);
  }
  return packs;
}

TEST(IndexFileFormatTest, RoundTrip) {
  crypto::Aead aead(KeyFromSeed(3));
  auto packs = SampleListings();
  std::string bytes = SerializeIndexFile(aead, "idx1", packs);
  auto parsed = ParseIndexFile(aead, "idx1", bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), packs.size());
  for (size_t p = 0; p < packs.size(); ++p) {
    EXPECT_EQ((*parsed)[p].pack, packs[p].pack);
    ASSERT_EQ((*parsed)[p].entries.size(), packs[p].entries.size());
    for (size_t i = 0; i < packs[p].entries.size(); ++i) {
      const PackEntry& a = packs[p].entries[i];
      const PackEntry& b = (*parsed)[p].entries[i];
      EXPECT_EQ(a.id, b.id);
      EXPECT_EQ(a.kind, b.kind);
      EXPECT_EQ(a.codec, b.codec);
      EXPECT_EQ(a.offset, b.offset);
      EXPECT_EQ(a.stored_size, b.stored_size);
      EXPECT_EQ(a.raw_size, b.raw_size);
    }
  }
}

TEST(IndexFileFormatTest, WrongKeyNameOrBytesIsCorruption) {
  crypto::Aead aead(KeyFromSeed(3));
  std::string bytes = SerializeIndexFile(aead, "idx1", SampleListings());
  crypto::Aead other(KeyFromSeed(4));
  auto r = ParseIndexFile(other, "idx1", bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  // Bound to its name: an index file renamed is rejected.
  EXPECT_EQ(ParseIndexFile(aead, "idx2", bytes).status().code(), StatusCode::kCorruption);
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string b = bytes;
    b[i] ^= 0x10;
    EXPECT_EQ(ParseIndexFile(aead, "idx1", b).status().code(), StatusCode::kCorruption) << i;
  }
  for (size_t n : {size_t{0}, size_t{1}, size_t{27}, size_t{28}, bytes.size() - 1}) {
    EXPECT_EQ(ParseIndexFile(aead, "idx1", bytes.substr(0, n)).status().code(), StatusCode::kCorruption) << n;
  }
}

TEST(IndexFileFormatTest, PlainParserChecks) {
  auto plain_of = [](const std::vector<PackListing>& packs) {
    // The plaintext is what SerializeIndexFile seals; rebuild it the documented way.
    std::string plain;
    PutFixed32(&plain, 1);
    PutFixed32(&plain, static_cast<uint32_t>(packs.size()));
    for (const auto& p : packs) {
      PutFixed16(&plain, static_cast<uint16_t>(p.pack.size()));
      plain += p.pack;
      PutFixed32(&plain, static_cast<uint32_t>(p.entries.size()));
      for (const auto& e : p.entries) AppendEntryRecord(e, &plain);
    }
    return plain;
  };
  std::string plain = plain_of(SampleListings());
  // The documented layout is what the sealed file holds.
  crypto::Aead aead(KeyFromSeed(3));
  auto opened = aead.Open(SerializeIndexFile(aead, "n", SampleListings()), "strata-index-v1:n");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, plain);

  ASSERT_TRUE(ParseIndexFilePlain("n", plain).ok());
  for (size_t n = 0; n < plain.size(); ++n) {
    EXPECT_FALSE(ParseIndexFilePlain("n", plain.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(ParseIndexFilePlain("n", plain + "x").ok());
  std::string v2 = plain;
  v2[0] = 2;
  EXPECT_EQ(ParseIndexFilePlain("n", v2).status().code(), StatusCode::kUnsupported);
  std::string huge = plain.substr(0, 4);
  PutFixed32(&huge, 0xffffffffu);
  EXPECT_FALSE(ParseIndexFilePlain("n", huge).ok());
  std::vector<PackListing> unnamed = SampleListings();
  unnamed[0].pack.clear();
  EXPECT_FALSE(ParseIndexFilePlain("n", plain_of(unnamed)).ok());
}

// ---------------------------------------------------------------------------------------------
// Config

TEST(ConfigFormatTest, RoundTripAndMac) {
  crypto::KeyedHash mac(KeyFromSeed(5));
  RepositoryConfig c;
  c.id = "0123456789abcdef0123456789abcdef";
  c.created_unix = 1700000000;
  c.chunker.min_size = 16 << 10;
  c.chunker.avg_size = 64 << 10;
  c.chunker.max_size = 256 << 10;
  c.compression_level = 7;
  c.pack_size = 8 << 20;
  std::string text = SerializeConfig(c, mac);
  auto p = ParseConfig(text);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.id, c.id);
  EXPECT_EQ(p->config.created_unix, c.created_unix);
  EXPECT_EQ(p->config.chunker.min_size, c.chunker.min_size);
  EXPECT_EQ(p->config.chunker.avg_size, c.chunker.avg_size);
  EXPECT_EQ(p->config.chunker.max_size, c.chunker.max_size);
  EXPECT_EQ(p->config.compression_level, 7);
  EXPECT_EQ(p->config.pack_size, 8u << 20);
  EXPECT_TRUE(CheckConfigMac(*p, mac).ok());
  crypto::KeyedHash other(KeyFromSeed(6));
  EXPECT_EQ(CheckConfigMac(*p, other).code(), StatusCode::kCorruption);

  // Reformatting the JSON (whitespace, key order) keeps the MAC valid: it covers the
  // canonical form, not the bytes.
  auto j = nlohmann::json::parse(text);
  auto p2 = ParseConfig(j.dump());
  ASSERT_TRUE(p2.ok());
  EXPECT_TRUE(CheckConfigMac(*p2, mac).ok());
  // A changed value parses but fails the MAC.
  j["compression"]["level"] = 9;
  auto p3 = ParseConfig(j.dump());
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(CheckConfigMac(*p3, mac).code(), StatusCode::kCorruption);
}

TEST(ConfigFormatTest, EveryFieldMissingOrMistypedIsAnError) {
  crypto::KeyedHash mac(KeyFromSeed(5));
  RepositoryConfig c;
  c.id = "0123456789abcdef0123456789abcdef";
  const auto full = nlohmann::json::parse(SerializeConfig(c, mac));
  ASSERT_TRUE(ParseConfig(full.dump()).ok());

  // Every path to a leaf or object in the config.
  std::vector<std::vector<std::string>> paths;
  for (auto it = full.begin(); it != full.end(); ++it) {
    paths.push_back({it.key()});
    if (it->is_object()) {
      for (auto jt = it->begin(); jt != it->end(); ++jt) paths.push_back({it.key(), jt.key()});
    }
  }
  ASSERT_GE(paths.size(), 10u);
  auto edit = [&](const std::vector<std::string>& path, const std::function<void(nlohmann::json&, const std::string&)>& f) {
    nlohmann::json j = full;
    nlohmann::json* parent = &j;
    for (size_t i = 0; i + 1 < path.size(); ++i) parent = &(*parent)[path[i]];
    f(*parent, path.back());
    return j.dump();
  };
  for (const auto& path : paths) {
    std::string where = path.size() == 1 ? path[0] : path[0] + "." + path[1];
    auto missing = ParseConfig(edit(path, [](nlohmann::json& p, const std::string& k) { p.erase(k); }));
    EXPECT_FALSE(missing.ok()) << "config without " << where << " accepted";
    for (nlohmann::json bad : {nlohmann::json(nullptr), nlohmann::json("str"), nlohmann::json(-1),
                               nlohmann::json(1.5), nlohmann::json(1e300), nlohmann::json::array(),
                               nlohmann::json::object()}) {
      std::string text = edit(path, [&](nlohmann::json& p, const std::string& k) { p[k] = bad; });
      auto r = ParseConfig(text);
      // Free-form fields accept any string, "created" any integer; the MAC covers them.
      const bool legal = (bad.is_string() && (where == "id" || where == "mac")) ||
                         (bad.is_number_integer() && where == "created");
      if (r.ok() != legal) {
        ADD_FAILURE() << where << " = " << bad.dump() << (legal ? " rejected" : " accepted");
      } else if (r.ok()) {
        EXPECT_EQ(CheckConfigMac(*r, mac).code(), StatusCode::kCorruption) << where << " = " << bad.dump();
      } else {
        EXPECT_TRUE(r.status().code() == StatusCode::kCorruption || r.status().code() == StatusCode::kUnsupported)
            << r.status().ToString();
      }
    }
  }
  // Chunker sizes that break its rules are damage, not a caller's bad argument.
  nlohmann::json inverted = full;
  inverted["chunker"]["min"] = inverted["chunker"]["max"].get<uint32_t>() + 1;
  EXPECT_EQ(ParseConfig(inverted.dump()).status().code(), StatusCode::kCorruption);
  // Unknown extra fields are rejected too (the MAC would not cover them).
  nlohmann::json extra = full;
  extra["surprise"] = 1;
  EXPECT_FALSE(ParseConfig(extra.dump()).ok());
  // Not JSON / not an object / truncated at every length.
  EXPECT_FALSE(ParseConfig("").ok());
  EXPECT_FALSE(ParseConfig("[1,2]").ok());
  std::string text = full.dump();
  for (size_t n = 0; n < text.size(); ++n) EXPECT_FALSE(ParseConfig(text.substr(0, n)).ok()) << n;
}

TEST(ConfigFormatTest, NewerVersionIsUnsupported) {
  crypto::KeyedHash mac(KeyFromSeed(5));
  RepositoryConfig c;
  c.id = "0123456789abcdef0123456789abcdef";
  auto j = nlohmann::json::parse(SerializeConfig(c, mac));
  j["version"] = 2;
  auto r = ParseConfig(j.dump());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("upgrade"), std::string::npos);
  j["version"] = 0;
  EXPECT_EQ(ParseConfig(j.dump()).status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace strata::store
