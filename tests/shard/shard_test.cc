#include "strata/shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/endian.h"
#include "crypto/aead.h"
#include "shard/block_file.h"
#include "shard/format.h"
#include "shard/reader.h"
#include "testutil/testutil.h"

namespace strata::shard {
namespace {

using strata::testing::RandomBytes;
using strata::testing::ReadFile;
using strata::testing::TempDir;
using strata::testing::WriteFile;

Field Plain(std::string name, FieldType type) {
  Field f;
  f.name = std::move(name);
  f.type = type;
  return f;
}
Field TensorField(std::string name, DType dtype, std::vector<int64_t> shape) {
  Field f = Plain(std::move(name), FieldType::kTensor);
  f.dtype = dtype;
  f.shape = std::move(shape);
  return f;
}
Field LabelField(std::string name, uint32_t classes) {
  Field f = Plain(std::move(name), FieldType::kLabel);
  f.num_classes = classes;
  return f;
}
ReaderOptions WithKey(std::optional<Key> key) {
  ReaderOptions o;
  o.key = key;
  return o;
}

Key TestKey(uint8_t seed) {
  Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

// One field of every type.
Schema AllTypes() {
  return Schema{{
      TensorField("image", DType::kUint8, {-1, 3}),
      TensorField("embedding", DType::kFloat32, {4}),
      Plain("raw", FieldType::kBytes),
      Plain("caption", FieldType::kString),
      Plain("step", FieldType::kInt),
      Plain("score", FieldType::kFloat),
      LabelField("label", 10),
  }};
}

Record AllTypesRecord(uint64_t i) {
  float emb[4] = {1.5f * i, -2.0f, 0.25f, 1e30f};
  std::string emb_bytes(reinterpret_cast<const char*>(emb), sizeof emb);
  uint64_t rows = i % 5;
  return Record{Tensor{DType::kUint8, {rows, 3}, RandomBytes(i, rows * 3)},
                Tensor{DType::kFloat32, {4}, emb_bytes},
                Bytes{RandomBytes(1000 + i, i * 37 % 9000)},
                std::string("caption ") + std::to_string(i) + " \xc3\xa9",
                static_cast<int64_t>(-1234567890123ll * static_cast<int64_t>(i + 1)),
                i * 0.1 - 3.0,
                Label{static_cast<uint32_t>(i % 10)}};
}

// A bytes-only schema, for records of chosen sizes.
Schema BlobSchema() { return Schema{{Plain("blob", FieldType::kBytes)}}; }
// A record whose payload is exactly `payload` bytes (4 go to the length prefix).
Record Blob(uint64_t seed, size_t payload) { return Record{Bytes{RandomBytes(seed, payload - 4)}}; }

ShardInfo WriteShard(const std::string& path, const Schema& schema, const std::vector<Record>& records,
                     std::optional<Key> key = std::nullopt) {
  WriterOptions options;
  options.key = key;
  auto w = ShardWriter::Create(path, schema, options);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  for (const Record& r : records) EXPECT_TRUE((*w)->Add(r).ok());
  auto info = (*w)->Finish();
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  return *info;
}

std::unique_ptr<ShardReader> OpenOk(const std::string& path, std::optional<Key> key = std::nullopt) {
  auto r = ShardReader::Open(path, WithKey(key));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Crc32cTest, MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c(AsBytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c({}), 0u);
  // 32 bytes of zeros: RFC 3720 B.4.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(AsBytes(zeros)), 0x8A9136AAu);
}

TEST(ShardTest, EveryFieldTypeRoundTrips) {
  TempDir dir;
  std::vector<Record> records;
  for (uint64_t i = 0; i < 40; ++i) records.push_back(AllTypesRecord(i));
  ShardInfo info = WriteShard(dir / "a.shard", AllTypes(), records);
  EXPECT_EQ(info.record_count, 40u);
  EXPECT_EQ(info.bytes, std::filesystem::file_size(dir / "a.shard"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a.shard.tmp"));

  auto r = OpenOk(dir / "a.shard");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->schema(), AllTypes());
  EXPECT_EQ(r->record_count(), 40u);
  EXPECT_EQ(r->id(), info.id);
  EXPECT_FALSE(r->encrypted());
  for (uint64_t i = 0; i < 40; ++i) {
    auto got = r->Read(i);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, records[i]) << "record " << i;
  }
  EXPECT_TRUE(r->Verify().ok());
  auto out = r->Read(40);
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardTest, PayloadEncodingIsExact) {
  Schema schema{{TensorField("t", DType::kInt16, {2}), Plain("s", FieldType::kString), Plain("i", FieldType::kInt),
                 Plain("l", FieldType::kLabel)}};
  std::string payload;
  ASSERT_TRUE(EncodeRecord(schema, {Tensor{DType::kInt16, {2}, std::string("\x01\x02\x03\x04", 4)}, std::string("hi"),
                                    int64_t{-2}, Label{258}}, &payload).ok());
  const std::string want = std::string("\x02\0\0\0\0\0\0\0" "\x01\x02\x03\x04", 12) + std::string("\x02\0\0\0hi", 6) +
                           std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8) + std::string("\x02\x01\0\0", 4);
  EXPECT_EQ(payload, want);
  // One byte more or less is corruption.
  EXPECT_FALSE(DecodeRecord(schema, AsBytes(payload + "x")).ok());
  EXPECT_FALSE(DecodeRecord(schema, AsBytes(payload.substr(0, payload.size() - 1))).ok());
}

TEST(ShardTest, TensorFilledInPlaceIsStoredAsAGivenOne) {
  Schema schema{{Plain("s", FieldType::kString), TensorField("t", DType::kInt16, {-1}), Plain("l", FieldType::kLabel)}};
  std::string big(2 * 5000, '\0');  // a record over 4 KiB: placed on a block boundary
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  Record given{std::string("hi"), Tensor{DType::kInt16, {5000}, big}, Label{3}};
  Record open = given;
  std::get<Tensor>(open[1]).data.clear();
  EXPECT_EQ(*EncodedSize(schema, open, 1), *EncodedSize(schema, given));
  for (bool encrypted : {false, true}) {
    TempDir dir;
    WriterOptions options;
    if (encrypted) options.key = Key{1, 2, 3};
    auto w = ShardWriter::Create(dir / "a.shard", schema, options);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add(given).ok());
    ASSERT_TRUE((*w)->Add(open, 1, [&](uint8_t* d) { std::memcpy(d, big.data(), big.size()); }).ok());
    // The open field must be a tensor given without data.
    EXPECT_EQ((*w)->Add(open, 0, [](uint8_t*) {}).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*w)->Add(given, 1, [](uint8_t*) {}).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*w)->Add(open, 7, [](uint8_t*) {}).code(), StatusCode::kInvalidArgument);
    auto info = (*w)->Finish();
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    auto r = ShardReader::Open(info->path, WithKey(options.key));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ((*r)->record_count(), 2u) << encrypted;
    EXPECT_EQ(*(*r)->Read(0), given);
    EXPECT_EQ(*(*r)->Read(1), given);
    EXPECT_TRUE((*r)->Verify().ok());
  }
}

TEST(ShardTest, RecordsThatDoNotMatchTheSchemaAreRefused) {
  TempDir dir;
  auto w = ShardWriter::Create(dir / "a.shard", AllTypes(), {});
  ASSERT_TRUE(w.ok());
  Record r = AllTypesRecord(3);
  r[6] = Label{10};  // 10 classes: 0..9
  EXPECT_EQ((*w)->Add(r).code(), StatusCode::kInvalidArgument);
  r = AllTypesRecord(3);
  std::get<Tensor>(r[1]).shape = {5};  // fixed dimension 4
  std::get<Tensor>(r[1]).data += "abcd";
  EXPECT_EQ((*w)->Add(r).code(), StatusCode::kInvalidArgument);
  r = AllTypesRecord(3);
  std::get<Tensor>(r[0]).data += "x";  // data does not match the shape
  EXPECT_EQ((*w)->Add(r).code(), StatusCode::kInvalidArgument);
  r = AllTypesRecord(3);
  r[2] = std::string("a string where bytes belong");
  EXPECT_EQ((*w)->Add(r).code(), StatusCode::kInvalidArgument);
  r.pop_back();
  EXPECT_EQ((*w)->Add(r).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->record_count(), 0u);

  Schema dup{{Plain("a", FieldType::kInt), Plain("a", FieldType::kFloat)}};
  EXPECT_EQ(ShardWriter::Create(dir / "b.shard", dup, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardWriter::Create(dir / "c.shard", Schema{}, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardTest, LayoutFollowsThePlacementRuleExactly) {
  TempDir dir;
  // Payload sizes (stored sizes, unencrypted): 100, 5000, 3000, 300, 4096, 10.
  std::vector<Record> records{Blob(1, 100), Blob(2, 5000), Blob(3, 3000), Blob(4, 300), Blob(5, 4096), Blob(6, 10)};
  ShardInfo info = WriteShard(dir / "a.shard", BlobSchema(), records);
  auto r = OpenOk(dir / "a.shard");
  ASSERT_NE(r, nullptr);
  const uint64_t want_offset[] = {4096, 8192, 13192, 16384, 20480, 24576};
  for (uint64_t i = 0; i < 6; ++i) {
    RecordLocation loc = r->Locate(i);
    EXPECT_EQ(loc.offset, want_offset[i]) << i;
  }
  // Small record 2 shares the last block of record 1; record 3 would cross 16384, so it starts there.
  EXPECT_EQ(r->Locate(2).extent_offset, 12288u);
  EXPECT_EQ(r->Locate(2).extent_length, 4096u);
  EXPECT_EQ(r->Locate(1).extent_length, 8192u);
  EXPECT_EQ(r->Locate(4).extent_length, 4096u);
  // Index after the last record: 24576 + 10, then 6 entries and the trailer.
  EXPECT_EQ(info.bytes, 24586u + 6 * 16 + 32);
}

TEST(ShardTest, AlignmentPropertyHoldsForMixedSizes) {
  TempDir dir;
  std::mt19937_64 rng(7);
  std::vector<Record> records;
  for (uint64_t i = 0; i < 300; ++i) {
    size_t size = (rng() % 4 == 0) ? 4 + rng() % (300 << 10) : 4 + rng() % 6000;
    records.push_back(Blob(i, size));
  }
  for (bool encrypted : {false, true}) {
    std::optional<Key> key;
    if (encrypted) key = TestKey(1);
    std::string path = dir / (encrypted ? "e.shard" : "p.shard");
    WriteShard(path, BlobSchema(), records, key);
    auto r = OpenOk(path, key);
    ASSERT_NE(r, nullptr);
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < r->record_count(); ++i) {
      RecordLocation loc = r->Locate(i);
      EXPECT_EQ(loc.length, std::get<Bytes>(records[i][0]).data.size() + 4 + (encrypted ? 28 : 0));
      if (loc.length >= 4096) {
        EXPECT_EQ(loc.offset % 4096, 0u) << i;
      }
      if (loc.length < 4096) {
        EXPECT_EQ(loc.offset / 4096, (loc.offset + loc.length - 1) / 4096) << "record " << i << " crosses a block";
        EXPECT_EQ(loc.extent_length, 4096u);
      }
      EXPECT_EQ(loc.extent_offset % 4096, 0u);
      EXPECT_EQ(loc.extent_length % 4096, 0u);
      EXPECT_LE(loc.extent_offset, loc.offset);
      EXPECT_GE(loc.extent_offset + loc.extent_length, loc.offset + loc.length);
      EXPECT_LT(loc.extent_length, loc.length + 4096);
      EXPECT_GE(loc.offset, prev_end);
      prev_end = loc.offset + loc.length;
    }
    EXPECT_TRUE(r->Verify().ok());
    auto one = r->Read(17);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(*one, records[17]);
  }
}

TEST(ShardTest, DirectReadsWhereTheFileSystemAllowsThem) {
  TempDir dir;
  std::vector<Record> records{Blob(1, 100), Blob(2, 70000)};
  WriteShard(dir / "a.shard", BlobSchema(), records);
  auto r = OpenOk(dir / "a.shard");
  ASSERT_NE(r, nullptr);
  // Direct exactly where the file system accepts O_DIRECT (ext4 here; older tmpfs refuses it).
  int fd = open((dir / "a.shard").c_str(), O_RDONLY | O_DIRECT);
  EXPECT_EQ(r->direct_io(), fd >= 0);
  if (fd >= 0) close(fd);
  auto b = r->Read(1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, records[1]);
  if (std::filesystem::is_directory("/dev/shm")) {
    std::string shm = "/dev/shm/strata-shard-test-" + std::to_string(getpid());
    std::filesystem::copy_file(dir / "a.shard", shm, std::filesystem::copy_options::overwrite_existing);
    auto m = ShardReader::Open(shm, {});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto got = (*m)->Read(0);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, records[0]);
    std::filesystem::remove(shm);
  }
  ReaderOptions buffered_options;
  buffered_options.direct_io = false;
  auto buffered = ShardReader::Open(dir / "a.shard", buffered_options);
  ASSERT_TRUE(buffered.ok());
  EXPECT_FALSE((*buffered)->direct_io());
}

TEST(ShardTest, EncryptedRoundTripAndWrongKeys) {
  TempDir dir;
  std::vector<Record> records;
  for (uint64_t i = 0; i < 20; ++i) records.push_back(AllTypesRecord(i));
  ShardInfo info = WriteShard(dir / "e.shard", AllTypes(), records, TestKey(1));
  auto r = OpenOk(dir / "e.shard", TestKey(1));
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->encrypted());
  for (uint64_t i = 0; i < 20; ++i) {
    auto got = r->Read(i);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, records[i]);
  }
  EXPECT_TRUE(r->Verify().ok());
  // The plaintext is not in the file.
  std::string bytes = ReadFile(dir / "e.shard");
  EXPECT_FALSE(Contains(bytes, std::get<Bytes>(records[5][2]).data.substr(0, 64)));
  EXPECT_FALSE(Contains(bytes, "caption 5"));

  auto wrong = ShardReader::Open(dir / "e.shard", WithKey(TestKey(2)));
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(Contains(wrong.status().message(), dir / "e.shard")) << wrong.status().ToString();
  EXPECT_EQ(ShardReader::Open(dir / "e.shard", {}).status().code(), StatusCode::kInvalidArgument);

  // A plaintext shard offered where an encrypted one is expected is refused.
  WriteShard(dir / "p.shard", AllTypes(), records);
  EXPECT_EQ(ShardReader::Open(dir / "p.shard", WithKey(TestKey(1))).status().code(), StatusCode::kUnauthenticated);
}

// The file's index entries (offset, length, crc), parsed with the format's own helpers.
struct ParsedShard {
  std::string bytes;
  Header header;
  Trailer trailer;
  std::vector<IndexEntry> index;
};
ParsedShard Parse(const std::string& bytes, const crypto::Aead* aead) {
  ParsedShard p;
  p.bytes = bytes;
  const uint8_t* b = reinterpret_cast<const uint8_t*>(bytes.data());
  uint32_t header_size = GetFixed32(b + 12);
  EXPECT_TRUE(ParseHeader("t", {b, header_size}, bytes.size(), aead, &p.header).ok());
  EXPECT_TRUE(ParseTrailer("t", {b + bytes.size() - kTrailerSize, kTrailerSize}, bytes.size(), header_size,
                           p.header.encrypted(), &p.trailer).ok());
  uint64_t len = bytes.size() - kTrailerSize - p.trailer.index_offset;
  EXPECT_TRUE(ParseIndex("t", {b + p.trailer.index_offset, len}, p.trailer, p.header, aead, &p.index).ok());
  return p;
}
// Replaces the footer with one for `index`, authenticated with the key: an attacker who could
// forge the index (they cannot) still meets each record's own binding.
std::string WithForgedIndex(const ParsedShard& p, const std::vector<IndexEntry>& index, const crypto::Aead& aead) {
  return p.bytes.substr(0, p.trailer.index_offset) + BuildFooter(p.header.id, index, p.trailer.index_offset, &aead);
}

TEST(ShardTest, SwappedRecordsFail) {
  TempDir dir;
  crypto::Aead aead(TestKey(1));
  std::vector<Record> records;
  for (uint64_t i = 0; i < 6; ++i) records.push_back(Blob(i, 1000));  // equal sizes: swappable
  WriteShard(dir / "a.shard", BlobSchema(), records, TestKey(1));
  WriteShard(dir / "b.shard", BlobSchema(), records, TestKey(1));  // same content, other shard id
  ParsedShard a = Parse(ReadFile(dir / "a.shard"), &aead);
  ParsedShard b = Parse(ReadFile(dir / "b.shard"), &aead);
  ASSERT_EQ(a.index.size(), 6u);
  const IndexEntry e1 = a.index[1], e4 = a.index[4];
  ASSERT_EQ(e1.length, e4.length);

  // Swap the bytes of records 1 and 4, leaving the index alone: checksums catch it.
  std::string swapped = a.bytes;
  swapped.replace(e1.offset, e1.length, a.bytes.substr(e4.offset, e4.length));
  swapped.replace(e4.offset, e4.length, a.bytes.substr(e1.offset, e1.length));
  WriteFile(dir / "s1.shard", swapped);
  auto r = OpenOk(dir / "s1.shard", TestKey(1));
  ASSERT_NE(r, nullptr);
  auto got = r->Read(1);
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(got.status().message(), "record 1")) << got.status().ToString();
  EXPECT_TRUE(r->Read(0).ok());

  // With the index forged to match (checksums swapped too), authentication still fails.
  std::vector<IndexEntry> forged = a.index;
  std::swap(forged[1].crc, forged[4].crc);
  WriteFile(dir / "s2.shard", WithForgedIndex(Parse(swapped, &aead), forged, aead));
  r = OpenOk(dir / "s2.shard", TestKey(1));
  ASSERT_NE(r, nullptr);
  got = r->Read(4);
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(got.status().message(), "record 4: failed authentication")) << got.status().ToString();
  EXPECT_TRUE(r->Read(2).ok());

  // Record 2 of shard b put in place of record 2 of shard a (same position, other shard).
  std::string moved = a.bytes;
  moved.replace(a.index[2].offset, a.index[2].length, b.bytes.substr(b.index[2].offset, b.index[2].length));
  forged = a.index;
  forged[2].crc = b.index[2].crc;
  WriteFile(dir / "s3.shard", WithForgedIndex(Parse(moved, &aead), forged, aead));
  r = OpenOk(dir / "s3.shard", TestKey(1));
  ASSERT_NE(r, nullptr);
  got = r->Read(2);
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(got.status().message(), "record 2: failed authentication")) << got.status().ToString();

  // An index edited without the key fails at open.
  std::string edited = a.bytes;
  edited[a.trailer.index_offset + 12] ^= 1;  // record 0's crc
  WriteFile(dir / "s4.shard", edited);
  EXPECT_EQ(ShardReader::Open(dir / "s4.shard", WithKey(TestKey(1))).status().code(), StatusCode::kCorruption);
}

// A shard of mixed records, for the damage tests; small enough to flip every region.
std::vector<Record> DamageRecords() {
  return {Blob(1, 200), Blob(2, 5000), Blob(3, 1500), Blob(4, 3000), Blob(5, 9000), Blob(6, 40)};
}

TEST(ShardTest, TruncationIsDetectedAtOpen) {
  TempDir dir;
  for (bool encrypted : {false, true}) {
    std::optional<Key> key;
    if (encrypted) key = TestKey(3);
    WriteShard(dir / "full.shard", BlobSchema(), DamageRecords(), key);
    std::string full = ReadFile(dir / "full.shard");
    std::vector<size_t> cuts;
    for (size_t c = 0; c < full.size(); c += 97) cuts.push_back(c);
    for (size_t c = full.size() - 80; c < full.size(); ++c) cuts.push_back(c);
    for (size_t c : {size_t{4096}, size_t{4095}, size_t{8192}, size_t{1}, size_t{52}}) cuts.push_back(c);
    for (size_t cut : cuts) {
      std::string path = dir / "cut.shard";
      WriteFile(path, full.substr(0, cut));
      auto r = ShardReader::Open(path, WithKey(key));
      ASSERT_FALSE(r.ok()) << "cut at " << cut;
      EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << cut << ": " << r.status().ToString();
      EXPECT_TRUE(Contains(r.status().message(), "shard " + path)) << r.status().ToString();
    }
  }
}

TEST(ShardTest, TruncationAfterOpenNamesTheRecord) {
  TempDir dir;
  std::vector<Record> records = DamageRecords();
  WriteShard(dir / "a.shard", BlobSchema(), records);
  auto probe = OpenOk(dir / "a.shard");
  ASSERT_NE(probe, nullptr);
  std::string full = ReadFile(dir / "a.shard");
  for (uint64_t victim = 0; victim < records.size(); ++victim) {
    RecordLocation loc = probe->Locate(victim);
    for (uint64_t cut : {loc.offset, loc.offset + loc.length / 2, loc.offset + loc.length - 1}) {
      std::string path = dir / "t.shard";
      WriteFile(path, full);
      auto r = OpenOk(path);
      ASSERT_NE(r, nullptr);
      ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(cut)), 0);
      for (uint64_t i = 0; i < records.size(); ++i) {
        auto got = r->Read(i);
        RecordLocation li = r->Locate(i);
        if (li.offset + li.length <= cut) {
          ASSERT_TRUE(got.ok()) << "record " << i << " cut " << cut << ": " << got.status().ToString();
          EXPECT_EQ(*got, records[i]);
        } else {
          EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
          EXPECT_TRUE(Contains(got.status().message(), fmt::format("shard {}: record {}: truncated", path, i)))
              << got.status().ToString();
        }
      }
      EXPECT_EQ(r->Verify().code(), StatusCode::kCorruption);
    }
  }
}

// Flips one bit in every byte and requires the damage to be
// reported: at open (header, schema, index, trailer), by Read of the record that holds the
// byte, or by Verify (padding).
void FlipEverywhere(bool encrypted) {
  std::optional<Key> key;
  if (encrypted) key = TestKey(9);
  TempDir dir;
  std::vector<Record> records = DamageRecords();
  WriteShard(dir / "a.shard", BlobSchema(), records, key);
  const std::string full = ReadFile(dir / "a.shard");
  auto clean = OpenOk(dir / "a.shard", key);
  ASSERT_NE(clean, nullptr);
  const std::string name = "flip.shard";
  int at_open = 0, at_read = 0, at_verify = 0;
  for (size_t pos = 0; pos < full.size(); ++pos) {
    std::string bad = full;
    bad[pos] ^= static_cast<char>(1 << (pos % 8));
    auto r = OpenShard(name, NewMemoryBlockSource(bad), WithKey(key));
    if (!r.ok()) {
      EXPECT_TRUE(r.status().code() == StatusCode::kCorruption) << pos << ": " << r.status().ToString();
      EXPECT_TRUE(Contains(r.status().message(), "shard flip.shard")) << r.status().ToString();
      ++at_open;
      continue;
    }
    // Which record holds the byte, if any.
    std::optional<uint64_t> holder;
    for (uint64_t i = 0; i < records.size(); ++i) {
      RecordLocation loc = clean->Locate(i);
      if (pos >= loc.offset && pos < loc.offset + loc.length) holder = i;
    }
    Status v = (*r)->Verify();
    EXPECT_EQ(v.code(), StatusCode::kCorruption) << "flip at " << pos << " not detected";
    EXPECT_TRUE(Contains(v.message(), "shard flip.shard")) << v.ToString();
    if (holder) {
      auto got = (*r)->Read(*holder);
      EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << pos;
      EXPECT_TRUE(Contains(got.status().message(), fmt::format("shard flip.shard: record {}:", *holder)))
          << got.status().ToString();
      // The neighbours are untouched.
      uint64_t other = (*holder + 1) % records.size();
      auto ok = (*r)->Read(other);
      EXPECT_TRUE(ok.ok()) << ok.status().ToString();
      ++at_read;
    } else {
      EXPECT_TRUE(Contains(v.message(), "padding")) << pos << ": " << v.ToString();
      ++at_verify;
    }
  }
  // Every region was hit.
  EXPECT_GT(at_open, 1000);
  EXPECT_GT(at_read, 10000);
  EXPECT_GT(at_verify, 1000);
}

TEST(ShardTest, BitFlipsAnywhereAreDetected) { FlipEverywhere(false); }
TEST(ShardTest, BitFlipsAnywhereAreDetectedEncrypted) { FlipEverywhere(true); }

TEST(ShardTest, HostileCountsAreRefusedWithoutAllocating) {
  TempDir dir;
  WriteShard(dir / "a.shard", BlobSchema(), DamageRecords());
  std::string full = ReadFile(dir / "a.shard");
  // A trailer claiming 2^60 records, with a valid trailer checksum.
  std::string t;
  PutFixed64(&t, 1ull << 60);
  t.append(full, full.size() - 24, 12);  // index offset, index crc
  PutFixed32(&t, Crc32c(AsBytes(t)));
  t.append(kTrailerMagic, 8);
  auto r = OpenShard("big", NewMemoryBlockSource(full.substr(0, full.size() - 32) + t), {});
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "does not fill")) << r.status().ToString();
  // A header claiming to be 1 GiB long.
  std::string h = full;
  h[14] = 0x40;
  r = OpenShard("hdr", NewMemoryBlockSource(h), {});
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  // Not a shard at all; empty.
  EXPECT_EQ(OpenShard("x", NewMemoryBlockSource("hello"), {}).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(OpenShard("x", NewMemoryBlockSource(""), {}).status().code(), StatusCode::kCorruption);
}

TEST(ShardTest, ANewerVersionIsReportedAsSuch) {
  TempDir dir;
  WriteShard(dir / "a.shard", BlobSchema(), DamageRecords());
  std::string full = ReadFile(dir / "a.shard");
  full[8] = 2;
  // Re-checksum the header as a writer of version 2 would (same layout).
  const uint8_t* b = reinterpret_cast<const uint8_t*>(full.data());
  size_t crc_at = kHeaderFixedSize + GetFixed32(b + 48);
  std::string crc;
  PutFixed32(&crc, Crc32c({b, crc_at}));
  full.replace(crc_at, 4, crc);
  auto r = OpenShard("v2", NewMemoryBlockSource(full), {});
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().ToString();
}

TEST(ShardSetTest, RollsToNewShardsAtTheTargetSize) {
  TempDir dir;
  constexpr uint64_t kTarget = 64 << 10;
  ShardSetOptions options;
  options.dir = dir / "set";
  options.prefix = "train";
  options.schema = BlobSchema();
  options.target_size = kTarget;
  auto set = ShardSetWriter::Create(options);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  std::vector<Record> records;
  std::mt19937_64 rng(3);
  for (uint64_t i = 0; i < 100; ++i) {
    records.push_back(Blob(i, 100 + rng() % 9000));
    ASSERT_TRUE((*set)->Add(records.back()).ok());
  }
  records.push_back(Blob(1000, 100 << 10));  // larger than the target: a shard of its own
  ASSERT_TRUE((*set)->Add(records.back()).ok());
  records.push_back(Blob(1001, 10));
  ASSERT_TRUE((*set)->Add(records.back()).ok());
  auto shards = (*set)->Finish();
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  ASSERT_GE(shards->size(), 5u);
  uint64_t next = 0;
  for (size_t s = 0; s < shards->size(); ++s) {
    const ShardInfo& info = (*shards)[s];
    EXPECT_EQ(info.path, dir / fmt::format("set/train-{:05d}.shard", s));
    EXPECT_EQ(info.number, s);
    EXPECT_EQ(info.first_record, next);
    EXPECT_GT(info.record_count, 0u);
    EXPECT_EQ(std::filesystem::file_size(info.path), info.bytes);
    if (info.record_count > 1) {
      EXPECT_LE(info.bytes, kTarget) << info.path;
    }
    auto r = OpenOk(info.path);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->number(), s);
    EXPECT_EQ(r->first_record(), next);
    EXPECT_EQ(r->record_count(), info.record_count);
    for (uint64_t i = 0; i < info.record_count; ++i) {
      auto got = r->Read(i);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(*got, records[next + i]) << "global record " << next + i;
    }
    next += info.record_count;
  }
  EXPECT_EQ(next, records.size());
  // The 100 KiB record is alone in its shard; the shard before it was not overfilled.
  auto big = std::find_if(shards->begin(), shards->end(), [&](const ShardInfo& i) { return i.first_record == 100; });
  ASSERT_NE(big, shards->end());
  EXPECT_EQ(big->record_count, 1u);
  EXPECT_EQ((*set)->Finish().status().code(), StatusCode::kFailedPrecondition);
}

// Counts the reads that reach the file.
class CountingSource final : public BlockSource {
 public:
  CountingSource(std::unique_ptr<BlockSource> inner, int* reads) : inner_(std::move(inner)), reads_(reads) {}
  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    ++*reads_;
    return inner_->Read(offset, n, dst, got);
  }
  uint64_t size() const override { return inner_->size(); }
  bool direct() const override { return false; }

 private:
  std::unique_ptr<BlockSource> inner_;
  int* reads_;
};

TEST(ShardTest, BatchReadsReturnRequestedOrderAndCoalesce) {
  TempDir dir;
  std::vector<Record> records;
  for (uint64_t i = 0; i < 64; ++i) records.push_back(Blob(i, 500));  // 8 per block
  for (uint64_t i = 64; i < 70; ++i) records.push_back(Blob(i, 20000));
  WriteShard(dir / "a.shard", BlobSchema(), records);
  int reads = 0;
  auto r = OpenShard("a", std::make_unique<CountingSource>(NewMemoryBlockSource(ReadFile(dir / "a.shard")), &reads), {});
  ASSERT_TRUE(r.ok());
  reads = 0;
  // Records 0..7 share one block, and 8..15 the next one: one read for all.
  std::vector<uint64_t> ids{7, 3, 12, 0, 3, 15, 9};
  auto got = (*r)->ReadBatch(ids);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), ids.size());
  for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ((*got)[k], records[ids[k]]) << k;
  EXPECT_EQ(reads, 1);

  // Far-apart records are separate reads.
  reads = 0;
  ids = {69, 0, 40};
  got = (*r)->ReadBatch(ids);
  ASSERT_TRUE(got.ok());
  for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ((*got)[k], records[ids[k]]);
  EXPECT_EQ(reads, 3);

  // Every record, shuffled.
  ids.clear();
  for (uint64_t i = 0; i < records.size(); ++i) ids.push_back(i);
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(5));
  got = (*r)->ReadBatch(ids);
  ASSERT_TRUE(got.ok());
  for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ((*got)[k], records[ids[k]]);

  EXPECT_EQ((*r)->ReadBatch(std::vector<uint64_t>{1, 70}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*r)->ReadBatch({}).ok());
}

TEST(ShardTest, BatchReadReportsTheDamagedRecord) {
  TempDir dir;
  std::vector<Record> records;
  for (uint64_t i = 0; i < 16; ++i) records.push_back(Blob(i, 500));
  WriteShard(dir / "a.shard", BlobSchema(), records);
  auto probe = OpenOk(dir / "a.shard");
  std::string bytes = ReadFile(dir / "a.shard");
  bytes[probe->Locate(5).offset + 100] ^= 0x10;
  auto r = OpenShard("a", NewMemoryBlockSource(bytes), {});
  ASSERT_TRUE(r.ok());
  auto got = (*r)->ReadBatch(std::vector<uint64_t>{1, 2, 5, 6});
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(got.status().message(), "shard a: record 5: checksum mismatch")) << got.status().ToString();
}

TEST(ShardTest, UnfinishedWriterLeavesNoShard) {
  TempDir dir;
  {
    auto w = ShardWriter::Create(dir / "a.shard", BlobSchema(), {});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add(Blob(1, 100)).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "a.shard"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a.shard.tmp"));
}

}  // namespace
}  // namespace strata::shard
