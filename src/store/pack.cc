#include "store/pack.h"

#include <cstring>

#include <fmt/format.h>

#include "base/endian.h"
#include "crypto/random.h"

namespace strata::store {

namespace {
std::string IndexAd(std::string_view pack) { return "strata-pack-index-v1:" + std::string(pack); }
}  // namespace

bool ValidObjectKind(uint8_t kind) { return kind <= static_cast<uint8_t>(ObjectKind::kCommit); }

const char* ObjectKindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kData: return "data chunk";
    case ObjectKind::kTree: return "tree";
    case ObjectKind::kChunkList: return "stream";
    case ObjectKind::kCommit: return "commit";
  }
  return "object";
}

std::string NewRandomName() {
  uint8_t b[16];
  crypto::RandomBytes(b);
  return ToHex(b, sizeof(b));
}

std::string ObjectAd(const PackEntry& e) {
  std::string ad = "strata-object-v1";
  ad.append(reinterpret_cast<const char*>(e.id.bytes.data()), ObjectId::kSize);
  ad.push_back(static_cast<char>(e.kind));
  ad.push_back(static_cast<char>(e.codec));
  PutFixed32(&ad, e.raw_size);
  return ad;
}

void SealObject(const crypto::Aead& aead, const ObjectId& id, ObjectKind kind,
                std::span<const uint8_t> plain, int compression_level, uint32_t min_saving,
                std::string* sealed, PackEntry* entry) {
  entry->id = id;
  entry->kind = kind;
  entry->raw_size = static_cast<uint32_t>(plain.size());
  // Per thread, so its capacity is reused chunk after chunk instead of re-allocated.
  thread_local std::string compressed;
  entry->codec = codec::Compress(plain, compression_level, &compressed, min_saving);
  std::span<const uint8_t> payload = entry->codec == codec::Codec::kNone ? plain : AsBytes(compressed);
  sealed->resize(payload.size() + crypto::Aead::kOverhead);
  aead.Seal(payload, AsBytes(ObjectAd(*entry)), reinterpret_cast<uint8_t*>(sealed->data()));
  entry->stored_size = static_cast<uint32_t>(sealed->size());
}

Status OpenObject(const crypto::Aead& aead, const PackEntry& entry, std::string_view pack,
                  std::span<const uint8_t> sealed, std::span<uint8_t> out) {
  if (sealed.size() < crypto::Aead::kOverhead || entry.raw_size > kMaxObjectSize || out.size() != entry.raw_size) {
    return Status::Corruption(fmt::format("object {} in pack {}: bad stored size {}", entry.id.Short(), pack, sealed.size()));
  }
  const bool raw = entry.codec == codec::Codec::kNone;
  const size_t payload_size = sealed.size() - crypto::Aead::kOverhead;
  if (raw && payload_size != entry.raw_size) {
    return Status::Corruption(fmt::format("object {} in pack {}: size mismatch", entry.id.Short(), pack));
  }
  // A raw object is decrypted straight into `out`; a compressed one through a per-thread buffer.
  thread_local std::string compressed;
  if (!raw) compressed.resize(payload_size);
  std::span<uint8_t> payload = raw ? out : std::span<uint8_t>(reinterpret_cast<uint8_t*>(compressed.data()), payload_size);
  if (!aead.Open(sealed, AsBytes(ObjectAd(entry)), payload.data()).ok()) {
    if (!payload.empty()) std::memset(payload.data(), 0, payload.size());
    return Status::Corruption(fmt::format(
        "object {} in pack {} at offset {} failed authentication: the pack is corrupted or was tampered with",
        entry.id.Short(), pack, entry.offset));
  }
  if (raw) return Status::OK();
  Status s = codec::Decompress(entry.codec, payload, out.data(), entry.raw_size);
  if (s.ok()) return s;
  if (!out.empty()) std::memset(out.data(), 0, out.size());
  return s.WithContext(fmt::format("object {} in pack {}", entry.id.Short(), pack));
}

Status OpenObject(const crypto::Aead& aead, const PackEntry& entry, std::string_view pack,
                  std::span<const uint8_t> sealed, std::string* plain) {
  if (entry.raw_size > kMaxObjectSize) {
    return Status::Corruption(fmt::format("object {} in pack {}: bad size {}", entry.id.Short(), pack, entry.raw_size));
  }
  plain->resize(entry.raw_size);
  return OpenObject(aead, entry, pack, sealed, std::span<uint8_t>(reinterpret_cast<uint8_t*>(plain->data()), plain->size()));
}

void AppendEntryRecord(const PackEntry& e, std::string* out) {
  out->append(reinterpret_cast<const char*>(e.id.bytes.data()), ObjectId::kSize);
  out->push_back(static_cast<char>(e.kind));
  out->push_back(static_cast<char>(e.codec));
  PutFixed16(out, 0);
  PutFixed64(out, e.offset);
  PutFixed32(out, e.stored_size);
  PutFixed32(out, e.raw_size);
}

Result<PackEntry> ParseEntryRecord(std::span<const uint8_t> rec) {
  if (rec.size() != kPackEntryRecordSize) return Status::Corruption("entry record has the wrong size");
  PackEntry e;
  std::copy(rec.begin(), rec.begin() + ObjectId::kSize, e.id.bytes.begin());
  const uint8_t* p = rec.data() + ObjectId::kSize;
  if (!ValidObjectKind(p[0])) return Status::Corruption(fmt::format("unknown object kind {}", p[0]));
  if (p[1] > static_cast<uint8_t>(codec::Codec::kZstd)) return Status::Corruption(fmt::format("unknown codec {}", p[1]));
  e.kind = static_cast<ObjectKind>(p[0]);
  e.codec = static_cast<codec::Codec>(p[1]);
  e.offset = GetFixed64(p + 4);
  e.stored_size = GetFixed32(p + 12);
  e.raw_size = GetFixed32(p + 16);
  if (e.stored_size < crypto::Aead::kOverhead || e.stored_size > kMaxObjectSize + crypto::Aead::kOverhead ||
      e.raw_size > kMaxObjectSize) {
    return Status::Corruption(fmt::format("object {}: implausible sizes", e.id.Short()));
  }
  return e;
}

PackWriter::PackWriter(const crypto::Aead* aead, std::string name, std::unique_ptr<volume::ObjectWriter> out)
    : aead_(aead), name_(std::move(name)), out_(std::move(out)) {
  std::string header(kPackMagic, sizeof(kPackMagic));
  PutFixed16(&header, kPackVersion);
  PutFixed16(&header, 0);
  PutFixed32(&header, 0);
  status_ = out_->Append(AsBytes(header));
  size_ = header.size();
}

Status PackWriter::Add(PackEntry entry, std::span<const uint8_t> sealed) {
  STRATA_RETURN_IF_ERROR(status_);
  entry.offset = size_;
  status_ = out_->Append(sealed);
  STRATA_RETURN_IF_ERROR(status_);
  size_ += sealed.size();
  entries_.push_back(entry);
  return Status::OK();
}

Status PackWriter::Finish() {
  STRATA_RETURN_IF_ERROR(status_);
  std::string index;
  PutFixed32(&index, static_cast<uint32_t>(entries_.size()));
  for (const auto& e : entries_) AppendEntryRecord(e, &index);
  std::string tail = aead_->Seal(index, IndexAd(name_));
  uint32_t sealed_len = static_cast<uint32_t>(tail.size());
  PutFixed32(&tail, sealed_len);
  PutFixed32(&tail, 0);
  tail.append(kPackTrailerMagic, sizeof(kPackTrailerMagic));
  STRATA_RETURN_IF_ERROR(out_->Append(AsBytes(tail)));
  size_ += tail.size();
  status_ = out_->Commit(volume::Durability::kDurable);
  return status_;
}

Result<uint32_t> ParsePackTrailer(std::string_view pack, std::span<const uint8_t> trailer, uint64_t pack_size) {
  if (trailer.size() != kPackTrailerSize || pack_size < kPackHeaderSize + kPackTrailerSize) {
    return Status::Corruption(fmt::format("pack {} is truncated ({} bytes)", pack, pack_size));
  }
  if (std::memcmp(trailer.data() + 8, kPackTrailerMagic, 8) != 0) {
    return Status::Corruption(fmt::format("pack {} has no valid trailer: it is truncated or damaged", pack));
  }
  uint32_t len = GetFixed32(trailer.data());
  if (GetFixed32(trailer.data() + 4) != 0) return Status::Corruption(fmt::format("pack {}: damaged trailer", pack));
  if (len < crypto::Aead::kOverhead + 4 || len > pack_size - kPackHeaderSize - kPackTrailerSize) {
    return Status::Corruption(fmt::format("pack {}: index length {} does not fit the pack", pack, len));
  }
  return len;
}

Result<std::vector<PackEntry>> ParsePackIndex(const crypto::Aead& aead, std::string_view pack,
                                              std::span<const uint8_t> sealed_index, uint64_t data_end) {
  if (sealed_index.size() < crypto::Aead::kOverhead) {
    return Status::Corruption(fmt::format("pack {}: index too short", pack));
  }
  std::string plain(sealed_index.size() - crypto::Aead::kOverhead, '\0');
  Status s = aead.Open(sealed_index, AsBytes(IndexAd(pack)), reinterpret_cast<uint8_t*>(plain.data()));
  if (!s.ok()) {
    return Status::Corruption(fmt::format("pack {}: index failed authentication (wrong key, or the pack is damaged)", pack));
  }
  return ParsePackIndexPlain(pack, AsBytes(plain), data_end);
}

Result<std::vector<PackEntry>> ParsePackIndexPlain(std::string_view pack, std::span<const uint8_t> plain,
                                                   uint64_t data_end) {
  ByteReader r(plain.data(), plain.size());
  uint32_t count = 0;
  if (!r.U32(&count) || r.remaining() != uint64_t{count} * kPackEntryRecordSize) {
    return Status::Corruption(fmt::format("pack {}: index has an inconsistent entry count", pack));
  }
  std::vector<PackEntry> entries;
  entries.reserve(count);
  uint64_t next = kPackHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* rec = nullptr;
    r.Bytes(kPackEntryRecordSize, &rec);
    STRATA_ASSIGN_OR_RETURN(PackEntry e, ParseEntryRecord({rec, kPackEntryRecordSize}));
    // Objects are contiguous, so every byte of the pack is covered by some authenticated region.
    if (e.offset != next || e.offset + e.stored_size > data_end) {
      return Status::Corruption(fmt::format("pack {}: index entry {} does not match the pack's layout", pack, i));
    }
    next = e.offset + e.stored_size;
    entries.push_back(e);
  }
  if (next != data_end) {
    return Status::Corruption(fmt::format("pack {}: the objects end at offset {}, but the index starts at {}", pack, next, data_end));
  }
  return entries;
}

Result<std::vector<PackEntry>> ReadPackIndex(volume::Backend* backend, const crypto::Aead& aead,
                                             const std::string& name) {
  STRATA_ASSIGN_OR_RETURN(volume::ObjectInfo info, backend->Stat(volume::ObjectType::kPack, name));
  if (info.size < kPackHeaderSize + kPackTrailerSize) {
    return Status::Corruption(fmt::format("pack {} is truncated ({} bytes)", name, info.size));
  }
  uint8_t header[kPackHeaderSize];
  STRATA_RETURN_IF_ERROR(backend->ReadAt(volume::ObjectType::kPack, name, 0, sizeof(header), header));
  if (std::memcmp(header, kPackMagic, 8) != 0) {
    return Status::Corruption(fmt::format("pack {}: bad magic, not a strata pack", name));
  }
  if (GetFixed16(header + 8) > kPackVersion) {
    return Status::Unsupported(fmt::format("pack {} has format version {}, newer than this strata", name, GetFixed16(header + 8)));
  }
  if (GetFixed16(header + 8) != kPackVersion || GetFixed16(header + 10) != 0 || GetFixed32(header + 12) != 0) {
    return Status::Corruption(fmt::format("pack {}: damaged header", name));
  }
  uint8_t trailer[kPackTrailerSize];
  STRATA_RETURN_IF_ERROR(backend->ReadAt(volume::ObjectType::kPack, name, info.size - kPackTrailerSize,
                                         sizeof(trailer), trailer));
  STRATA_ASSIGN_OR_RETURN(uint32_t len, ParsePackTrailer(name, trailer, info.size));
  std::string sealed(len, '\0');
  uint64_t index_offset = info.size - kPackTrailerSize - len;
  STRATA_RETURN_IF_ERROR(backend->ReadAt(volume::ObjectType::kPack, name, index_offset, len,
                                         reinterpret_cast<uint8_t*>(sealed.data())));
  return ParsePackIndex(aead, name, AsBytes(sealed), index_offset);
}

}  // namespace strata::store
