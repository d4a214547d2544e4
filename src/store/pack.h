// Packs: append-only files of compressed, encrypted objects followed by an encrypted index of
// them (byte layout in docs/FORMAT.md). A sealed pack is never modified.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "codec/compress.h"
#include "crypto/aead.h"
#include "strata/object_id.h"
#include "strata/status.h"
#include "volume/backend.h"

namespace strata::store {

enum class ObjectKind : uint8_t {
  kData = 0,      // a chunk of file content
  kTree = 1,      // a serialized directory (tree.h)
  kChunkList = 2, // the chunk list of a stream put (tree.h)
  kCommit = 3,    // a dataset commit (version/commit.h)
};
bool ValidObjectKind(uint8_t kind);
const char* ObjectKindName(ObjectKind kind);  // "tree", "commit", ... for messages

// Where one object lives inside its pack.
struct PackEntry {
  ObjectId id;
  ObjectKind kind = ObjectKind::kData;
  codec::Codec codec = codec::Codec::kNone;
  uint64_t offset = 0;       // of the sealed bytes, from the start of the pack
  uint32_t stored_size = 0;  // sealed bytes: nonce + ciphertext + tag
  uint32_t raw_size = 0;     // plaintext bytes after decompression
};

// Fixed sizes of the format (FORMAT.md).
inline constexpr char kPackMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'K'};
inline constexpr char kPackTrailerMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'I', 'X'};
inline constexpr uint16_t kPackVersion = 1;
inline constexpr size_t kPackHeaderSize = 16;
inline constexpr size_t kPackTrailerSize = 16;
inline constexpr size_t kPackEntryRecordSize = 52;
// An object's compressed plaintext may not exceed this (the largest chunk is 64 MiB).
inline constexpr uint32_t kMaxObjectSize = 64u << 20;

// Associated data that binds a sealed object to its id, kind, codec and size, so an index
// that lies about any of them fails authentication on read.
std::string ObjectAd(const PackEntry& entry);

// Encrypts one object for a pack: compresses (where that saves 1/min_saving of it, level > 0;
// codec::Compress), seals with the object's AD. `entry` gets id, kind, codec, stored_size and
// raw_size (offset is the writer's).
void SealObject(const crypto::Aead& aead, const ObjectId& id, ObjectKind kind,
                std::span<const uint8_t> plain, int compression_level, uint32_t min_saving,
                std::string* sealed, PackEntry* entry);

// Decrypts and decompresses a sealed object into `out`, exactly entry.raw_size bytes. Errors
// name the object and pack; on any error `out` is zeroed, so no unauthenticated byte stays there.
Status OpenObject(const crypto::Aead& aead, const PackEntry& entry, std::string_view pack,
                  std::span<const uint8_t> sealed, std::span<uint8_t> out);
// The same into `plain`, resized to the object's size.
Status OpenObject(const crypto::Aead& aead, const PackEntry& entry, std::string_view pack,
                  std::span<const uint8_t> sealed, std::string* plain);

// Writes one pack through a backend writer: header, sealed objects, sealed index, trailer.
class PackWriter {
 public:
  PackWriter(const crypto::Aead* aead, std::string name, std::unique_ptr<volume::ObjectWriter> out);
  // Appends an already sealed object (see SealObject). `entry.offset` is set here.
  Status Add(PackEntry entry, std::span<const uint8_t> sealed);
  // Writes the index and trailer and commits the pack (durable and visible on OK).
  Status Finish();
  uint64_t size() const { return size_; }
  size_t count() const { return entries_.size(); }
  const std::string& name() const { return name_; }
  const std::vector<PackEntry>& entries() const { return entries_; }

 private:
  const crypto::Aead* aead_;
  std::string name_;
  std::unique_ptr<volume::ObjectWriter> out_;
  std::vector<PackEntry> entries_;
  uint64_t size_ = 0;
  Status status_;
};

// Parses the trailer (last kPackTrailerSize bytes of a pack of `pack_size` bytes) and returns
// the sealed index's length. Untrusted input: malformed bytes give kCorruption.
Result<uint32_t> ParsePackTrailer(std::string_view pack, std::span<const uint8_t> trailer,
                                  uint64_t pack_size);
// Decrypts and parses a pack's sealed index. Every entry is checked to lie within the pack's
// data region, in order and without overlap. Untrusted input (fuzzed).
Result<std::vector<PackEntry>> ParsePackIndex(const crypto::Aead& aead, std::string_view pack,
                                              std::span<const uint8_t> sealed_index,
                                              uint64_t data_end);
// The part of ParsePackIndex after decryption: parses and checks the plaintext index. Split out
// so the fuzzer can reach it without forging an authentication tag.
Result<std::vector<PackEntry>> ParsePackIndexPlain(std::string_view pack, std::span<const uint8_t> plain,
                                                   uint64_t data_end);
// Plaintext (de)serialization of index entries, shared with the repository's index files.
void AppendEntryRecord(const PackEntry& e, std::string* out);
Result<PackEntry> ParseEntryRecord(std::span<const uint8_t> rec);

// Reads the header, trailer and index of pack `name` from `backend`.
Result<std::vector<PackEntry>> ReadPackIndex(volume::Backend* backend, const crypto::Aead& aead,
                                             const std::string& name);

// 32 hex digits of randomness: pack, index and root names.
std::string NewRandomName();

}  // namespace strata::store
