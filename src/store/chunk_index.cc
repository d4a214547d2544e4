#include "store/chunk_index.h"

#include <unordered_set>

#include <fmt/format.h>

#include "base/endian.h"
#include "store/index_cache.h"

namespace strata::store {

void ChunkIndex::AddPack(const std::string& pack, const std::vector<PackEntry>& entries) {
  std::unique_lock l(mu_);
  AddPackLocked(pack, entries, /*search_base=*/false);
}

std::optional<ChunkIndex::BaseHit> ChunkIndex::FindBaseLocked(const ObjectId& id) const {
  if (!base_) return std::nullopt;
  auto pos = base_->Find(id);
  if (!pos) return std::nullopt;
  auto at = base_->At(*pos);
  if (!at) return std::nullopt;  // a malformed cache entry: as if absent (a duplicate is harmless)
  return BaseHit{*pos, at->first, at->second};
}

std::optional<uint32_t> ChunkIndex::PackOrdinalLocked(std::string_view pack, bool search_base) const {
  std::lock_guard l(ids_mu_);
  if (search_base && !base_ids_) {
    pack_ids_.reserve(pack_ids_.size() + base_packs_);
    for (uint32_t i = 0; i < base_packs_; ++i) pack_ids_.emplace((*base_pack_names_)[i], i);
    base_ids_ = true;
  }
  auto it = pack_ids_.find(pack);
  if (it == pack_ids_.end()) return std::nullopt;
  return it->second;
}

void ChunkIndex::AddPackLocked(const std::string& pack, const std::vector<PackEntry>& entries, bool search_base) {
  // Already known (listed in two index files, or in the cache).
  if (PackOrdinalLocked(pack, search_base)) return;
  uint32_t ordinal = PackCountLocked();
  pack_names_.push_back(pack);
  {
    std::lock_guard l(ids_mu_);
    pack_ids_.emplace(pack_names_.back(), ordinal);
  }
  pack_entries_.push_back(entries);
  for (const auto& e : entries) {
    if (base_ && FindBaseLocked(e.id)) continue;
    map_.emplace(e.id, Slot{ordinal, static_cast<uint32_t>(base_size_ + map_.size()), e});
  }
}

std::optional<Location> ChunkIndex::Find(const ObjectId& id) const {
  std::shared_lock l(mu_);
  if (auto hit = FindBaseLocked(id)) return Location{PackNameLocked(hit->pack), hit->entry, true};
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return Location{PackNameLocked(it->second.pack), it->second.entry, false};
}

bool ChunkIndex::Contains(const ObjectId& id) const {
  std::shared_lock l(mu_);
  return FindBaseLocked(id).has_value() || map_.count(id) != 0;
}

std::vector<ObjectId> ChunkIndex::FindByPrefix(std::string_view prefix, size_t limit) const {
  std::vector<ObjectId> out;
  std::shared_lock l(mu_);
  auto matches = [&](const ObjectId& id) { return id.ToHex().compare(0, prefix.size(), prefix) == 0; };
  if (base_ && limit > 0) {
    uint64_t begin = 0, end = base_size_;
    if (prefix.size() >= 2) {
      auto first = ObjectId::FromHex(std::string(prefix.substr(0, 2)) + std::string(2 * ObjectId::kSize - 2, '0'));
      if (first.ok()) std::tie(begin, end) = base_->Bucket(first->bytes[0]);
    }
    for (uint64_t i = begin; i < end && out.size() < limit; ++i) {
      ObjectId id = base_->IdAt(i);
      if (matches(id) && base_->At(i)) out.push_back(id);
    }
  }
  for (const auto& [id, slot] : map_) {
    if (out.size() >= limit) break;
    if (matches(id)) out.push_back(id);
  }
  return out;
}

size_t ChunkIndex::size() const {
  std::shared_lock l(mu_);
  return base_size_ + map_.size();
}

size_t ChunkIndex::delta_size() const {
  std::shared_lock l(mu_);
  return map_.size();
}

std::shared_ptr<const IndexCache> ChunkIndex::base() const {
  std::shared_lock l(mu_);
  return base_;
}

std::vector<PackListing> ChunkIndex::Packs() const {
  std::shared_lock l(mu_);
  std::vector<PackListing> out;
  out.reserve(PackCountLocked());
  for (uint32_t i = 0; i < PackCountLocked(); ++i) {
    out.push_back({PackNameLocked(i), i < base_packs_ ? std::vector<PackEntry>{} : pack_entries_[i - base_packs_]});
  }
  // The cache keeps one copy of each id, so its packs list the copies the index uses.
  for (uint64_t i = 0; i < base_size_; ++i) {
    if (auto at = base_->At(i)) out[at->first].entries.push_back(at->second);
  }
  return out;
}

bool ChunkIndex::HasPack(const std::string& pack) const {
  std::shared_lock l(mu_);
  return PackOrdinalLocked(pack).has_value();
}

std::optional<uint32_t> ChunkIndex::PackOrdinal(const std::string& pack) const {
  std::shared_lock l(mu_);
  return PackOrdinalLocked(pack);
}

std::optional<ChunkIndex::Dense> ChunkIndex::FindDense(const ObjectId& id) const {
  std::shared_lock l(mu_);
  if (auto hit = FindBaseLocked(id)) return Dense{static_cast<uint32_t>(hit->pos), hit->pack, hit->entry.kind};
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return Dense{it->second.ordinal, it->second.pack, it->second.entry.kind};
}

std::vector<std::string> ChunkIndex::PackNames() const {
  std::shared_lock l(mu_);
  std::vector<std::string> out;
  out.reserve(PackCountLocked());
  for (uint32_t i = 0; i < PackCountLocked(); ++i) out.push_back(PackNameLocked(i));
  return out;
}

void ChunkIndex::ForEach(const std::function<void(uint32_t, uint32_t, const PackEntry&)>& fn) const {
  std::shared_lock l(mu_);
  for (uint64_t i = 0; i < base_size_; ++i) {
    if (auto at = base_->At(i)) fn(static_cast<uint32_t>(i), at->first, at->second);
  }
  for (const auto& [id, slot] : map_) fn(slot.ordinal, slot.pack, slot.entry);
}

void ChunkIndex::Reset(const std::vector<PackListing>& packs) { Reset(nullptr, packs); }

void ChunkIndex::Reset(std::shared_ptr<const IndexCache> base, const std::vector<PackListing>& packs) {
  size_t total = 0;
  for (const auto& p : packs) total += p.entries.size();
  std::unique_lock l(mu_);
  ClearLocked();
  if (base) {
    base_ = std::move(base);
    base_size_ = base_->size();
    base_pack_names_ = &base_->packs();
    base_packs_ = static_cast<uint32_t>(base_pack_names_->size());
  }
  // Which of `packs` the base already lists, by one pass over its names (no map of them).
  std::unordered_set<std::string_view> in_base;
  if (base_ && !packs.empty()) {
    std::unordered_set<std::string_view> wanted;
    for (const auto& p : packs) wanted.insert(p.pack);
    for (const auto& name : *base_pack_names_) {
      if (wanted.count(name)) in_base.insert(name);
    }
  }
  // One allocation up front: growing the table entry by entry rehashed it ~20 times and was
  // most of the time of opening a large repository.
  map_.reserve(total);
  for (const auto& p : packs) {
    if (!in_base.count(p.pack)) AddPackLocked(p.pack, p.entries, /*search_base=*/false);
  }
}

void ChunkIndex::Clear() {
  std::unique_lock l(mu_);
  ClearLocked();
}

void ChunkIndex::ClearLocked() {
  base_.reset();
  base_size_ = 0;
  base_packs_ = 0;
  base_pack_names_ = nullptr;
  pack_names_.clear();
  {
    std::lock_guard l(ids_mu_);
    pack_ids_.clear();
    base_ids_ = false;
  }
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
