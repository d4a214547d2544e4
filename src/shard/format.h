// The shard file format (docs/FORMAT.md, "Shards"): constants, the record placement rule, and
// the parsers of untrusted header, schema, index and trailer bytes. No I/O here, so the fuzz
// target reaches every parser directly.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/crc32c.h"
#include "crypto/aead.h"
#include "strata/shard.h"
#include "strata/status.h"

namespace strata::shard {

inline constexpr char kHeaderMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'S', 'H'};
inline constexpr char kTrailerMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'S', 'F'};
inline constexpr uint16_t kVersion = 1;
inline constexpr uint64_t kBlock = 4096;               // alignment of extents and the header
inline constexpr size_t kHeaderFixedSize = 52;         // bytes before the schema
inline constexpr uint64_t kMaxHeaderSize = 1u << 20;   // a larger header is refused unread
inline constexpr size_t kIndexEntrySize = 16;          // u64 offset, u32 length, u32 crc32c
inline constexpr size_t kTrailerSize = 32;
inline constexpr size_t kTagSize = 28;                 // an empty AES-GCM seal: nonce + tag
inline constexpr uint64_t kMaxRecordSize = 1ull << 31; // stored bytes of one record
inline constexpr size_t kMaxFields = 1024;
inline constexpr size_t kMaxRank = 8;
inline constexpr uint16_t kFlagEncrypted = 1;

// Per-record checksums (base/crc32c.h).
using ::strata::Crc32c;
using ::strata::Crc32cExtend;

inline uint64_t AlignDown(uint64_t v) { return v & ~(kBlock - 1); }
inline uint64_t AlignUp(uint64_t v) { return (v + kBlock - 1) & ~(kBlock - 1); }

// Where a record of `length` stored bytes goes when the file's end is at `pos`: records of a
// block or more start on a block boundary; smaller ones go at `pos` unless they would cross
// a boundary, in which case they start at the next one.
inline uint64_t PlaceRecord(uint64_t pos, uint64_t length) {
  if (length >= kBlock) return AlignUp(pos);
  if ((pos % kBlock) + length > kBlock) return AlignUp(pos);
  return pos;
}

// The aligned extent a single read fetches to get [offset, offset + length).
inline void ExtentOf(uint64_t offset, uint64_t length, uint64_t* extent_offset, uint64_t* extent_length) {
  *extent_offset = AlignDown(offset);
  *extent_length = AlignUp(offset + length) - *extent_offset;
}

// EncodeRecord in two steps, so a writer can encode straight into its output: EncodedSize
// checks the record against the schema (kInvalidArgument, as EncodeRecord) and returns the
// payload's size; EncodeRecordTo then writes exactly that many bytes of a record it accepted.
// (EncodedSize is in strata/shard.h.) With `open`, the index of a tensor field given without
// data, EncodeRecordTo leaves that field's data bytes as they are and returns where they start
// (null without one).
uint8_t* EncodeRecordTo(const Schema& schema, const Record& record, uint8_t* dst, size_t open = kNoOpenField);

// One decoded field of a payload, pointing into the payload's bytes.
struct FieldView {
  const uint8_t* data = nullptr;          // tensor elements, bytes or string
  uint64_t size = 0;                      // bytes at data
  std::array<uint64_t, kMaxRank> shape{}; // tensors: the first field.shape.size() dims
  uint64_t value = 0;                     // int (two's complement), float (IEEE bits), label
};
// DecodeRecord without copies (the loader assembles batches from the views); DecodeRecord is
// built on it. kCorruption, with the same messages, when the payload does not match exactly.
Status DecodeRecordView(const Schema& schema, std::span<const uint8_t> payload, std::vector<FieldView>* out);

std::string SerializeSchema(const Schema& schema);
// Validates everything (names, types, ranks) and refuses trailing bytes; kCorruption.
Result<Schema> ParseSchema(std::span<const uint8_t> bytes);
// kInvalidArgument when a schema built by a caller is not one the format can hold.
Status ValidateSchema(const Schema& schema);

struct Header {
  uint16_t flags = 0;
  uint32_t header_size = 0;     // bytes before the first record (a multiple of kBlock)
  ShardId id{};
  uint64_t first_record = 0;
  uint32_t number = 0;
  Schema schema;
  std::string tag;              // kTagSize bytes when encrypted, else empty
  bool encrypted() const { return (flags & kFlagEncrypted) != 0; }
};

// The whole header region (header_size bytes, zero-padded), its tag made with `aead` when
// the header is flagged encrypted. Sets header->header_size.
std::string BuildHeader(Header* header, const crypto::Aead* aead);
// Parses the first block: magic and header_size (checked against file_size). Version and flags
// are checked by ParseHeader, after the checksum.
Status ParseHeaderFixed(std::string_view name, std::span<const uint8_t> first, uint64_t file_size, Header* out);
// Parses the whole header region: schema, CRC and zero padding; when the header is flagged
// encrypted and `aead` is given, also its tag (kUnauthenticated: wrong key or forged header).
Status ParseHeader(std::string_view name, std::span<const uint8_t> region, uint64_t file_size,
                   const crypto::Aead* aead, Header* out);

struct IndexEntry {
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t crc = 0;
};

struct Trailer {
  uint64_t record_count = 0;
  uint64_t index_offset = 0;
  uint32_t index_crc = 0;
};
Status ParseTrailer(std::string_view name, std::span<const uint8_t> bytes, uint64_t file_size,
                    uint64_t header_size, bool encrypted, Trailer* out);
// The index bytes for `entries` and their tag (when `aead` is given), then the trailer.
std::string BuildFooter(const ShardId& id, const std::vector<IndexEntry>& entries, uint64_t index_offset,
                        const crypto::Aead* aead);
// Parses and checks the index (count entries followed by the tag when encrypted; the CRC is
// over both): ordered, non-overlapping, inside [header_size, index_offset), placed by
// PlaceRecord's rule, the last one ending exactly at index_offset.
// With `aead`, the tag is verified too.
Status ParseIndex(std::string_view name, std::span<const uint8_t> bytes, const Trailer& t, const Header& header,
                  const crypto::Aead* aead, std::vector<IndexEntry>* out);

// Associated data binding a sealed record to its shard and position.
std::string RecordAd(const ShardId& id, uint64_t index);

std::string ShardIdHex(const ShardId& id);

}  // namespace strata::shard
