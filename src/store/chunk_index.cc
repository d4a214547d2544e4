#include "store/chunk_index.h"

#include <fmt/format.h>

#include "base/endian.h"

namespace strata::store {

void ChunkIndex::AddPack(const std::string& pack, const std::vector<PackEntry>& entries) {
  std::unique_lock l(mu_);
  AddPackLocked(pack, entries);
}

void ChunkIndex::AddPackLocked(const std::string& pack, const std::vector<PackEntry>& entries) {
  auto [it, inserted] = pack_ids_.emplace(pack, static_cast<uint32_t>(pack_names_.size()));
  if (!inserted) return;  // already known (listed in two index files)
  pack_names_.push_back(pack);
  pack_entries_.push_back(entries);
  for (const auto& e : entries) map_.emplace(e.id, Slot{it->second, static_cast<uint32_t>(map_.size()), e});
}

std::optional<Location> ChunkIndex::Find(const ObjectId& id) const {
  std::shared_lock l(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return Location{pack_names_[it->second.pack], it->second.entry};
}

bool ChunkIndex::Contains(const ObjectId& id) const {
  std::shared_lock l(mu_);
  return map_.count(id) != 0;
}

std::vector<ObjectId> ChunkIndex::FindByPrefix(std::string_view prefix, size_t limit) const {
  std::vector<ObjectId> out;
  std::shared_lock l(mu_);
  for (const auto& [id, slot] : map_) {
    if (id.ToHex().compare(0, prefix.size(), prefix) == 0) {
      out.push_back(id);
      if (out.size() >= limit) break;
    }
  }
  return out;
}

size_t ChunkIndex::size() const {
  std::shared_lock l(mu_);
  return map_.size();
}

std::vector<PackListing> ChunkIndex::Packs() const {
  std::shared_lock l(mu_);
  std::vector<PackListing> out;
  out.reserve(pack_names_.size());
  for (size_t i = 0; i < pack_names_.size(); ++i) out.push_back({pack_names_[i], pack_entries_[i]});
  return out;
}

bool ChunkIndex::HasPack(const std::string& pack) const {
  std::shared_lock l(mu_);
  return pack_ids_.count(pack) != 0;
}

std::optional<ChunkIndex::Dense> ChunkIndex::FindDense(const ObjectId& id) const {
  std::shared_lock l(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return Dense{it->second.ordinal, it->second.pack, it->second.entry.kind};
}

void ChunkIndex::Reset(const std::vector<PackListing>& packs) {
  size_t total = 0;
  for (const auto& p : packs) total += p.entries.size();
  std::unique_lock l(mu_);
  ClearLocked();
  // One allocation up front: growing the table entry by entry rehashed it ~20 times and was
  // most of the time of opening a large repository.
  map_.reserve(total);
  for (const auto& p : packs) AddPackLocked(p.pack, p.entries);
}

void ChunkIndex::Clear() {
  std::unique_lock l(mu_);
  ClearLocked();
}

void ChunkIndex::ClearLocked() {
  pack_names_.clear();
  pack_ids_.clear();
  pack_entries_.clear();
  map_.clear();
}

namespace {
constexpr uint32_t kIndexVersion = 1;
std::string IndexFileAd(const std::string& name) { return "strata-index-v1:" + name; }
}  // namespace

std::string SerializeIndexFile(const crypto::Aead& aead, const std::string& name,
                               const std::vector<PackListing>& packs) {
  std::string plain;
  PutFixed32(&plain, kIndexVersion);
  PutFixed32(&plain, static_cast<uint32_t>(packs.size()));
  for (const auto& p : packs) {
    PutFixed16(&plain, static_cast<uint16_t>(p.pack.size()));
    plain += p.pack;
    PutFixed32(&plain, static_cast<uint32_t>(p.entries.size()));
    for (const auto& e : p.entries) AppendEntryRecord(e, &plain);
  }
  return aead.Seal(plain, IndexFileAd(name));
}

Result<std::vector<PackListing>> ParseIndexFile(const crypto::Aead& aead, const std::string& name,
                                                std::string_view bytes) {
  auto plain = aead.Open(bytes, IndexFileAd(name));
  if (!plain.ok()) {
    return Status::Corruption(fmt::format("index file {} failed authentication: it is damaged or was tampered with", name));
  }
  return ParseIndexFilePlain(name, *plain);
}

Result<std::vector<PackListing>> ParseIndexFilePlain(const std::string& name, std::string_view plain) {
  ByteReader r(reinterpret_cast<const uint8_t*>(plain.data()), plain.size());
  uint32_t version = 0, count = 0;
  if (!r.U32(&version) || !r.U32(&count)) return Status::Corruption(fmt::format("index file {} is truncated", name));
  if (version != kIndexVersion) {
    return Status::Unsupported(fmt::format("index file {} has version {}, not supported by this strata", name, version));
  }
  std::vector<PackListing> packs;
  for (uint32_t i = 0; i < count; ++i) {
    PackListing p;
    uint16_t len;
    uint32_t n;
    if (!r.U16(&len) || len == 0 || len > 128 || !r.String(len, &p.pack) || !r.U32(&n) ||
        r.remaining() / kPackEntryRecordSize < n) {
      return Status::Corruption(fmt::format("index file {} is malformed at pack {}", name, i));
    }
    p.entries.reserve(n);
    for (uint32_t j = 0; j < n; ++j) {
      const uint8_t* rec = nullptr;
      r.Bytes(kPackEntryRecordSize, &rec);
      STRATA_ASSIGN_OR_RETURN(PackEntry e, ParseEntryRecord({rec, kPackEntryRecordSize}));
      p.entries.push_back(e);
    }
    packs.push_back(std::move(p));
  }
  if (r.remaining() != 0) return Status::Corruption(fmt::format("index file {} has trailing bytes", name));
  return packs;
}

}  // namespace strata::store
