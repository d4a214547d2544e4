#include "store/pack_rewrite.h"

#include <fmt/format.h>

#include "base/endian.h"

#include "store/repository_impl.h"
#include "store/tree_pages.h"

namespace strata::store {

StorageTier PackTier(std::string_view pack) {
  return volume::IsArchivePack(pack) ? StorageTier::kArchive : StorageTier::kHot;
}

std::string_view PackSuffix(std::string_view pack) {
  constexpr size_t kRandom = 32;  // NewRandomName's hex digits
  return pack.size() > kRandom ? pack.substr(kRandom) : std::string_view();
}

std::string TierSuffix(StorageTier tier, uint32_t class_id) {
  return tier == StorageTier::kArchive ? std::string(volume::kArchivePackSuffix) : volume::ClassPackSuffix(class_id);
}

uint64_t PackFileSize(uint64_t n, uint64_t data) {
  return kPackHeaderSize + data + (4 + n * kPackEntryRecordSize + crypto::Aead::kOverhead) + kPackTrailerSize;
}

// --- Marker ---

Status Marker::MarkFrom(const ObjectId& id, const std::string& root) {
  root_ = root;
  STRATA_RETURN_IF_ERROR(Mark(id, nullptr));
  while (!pending_.empty()) {
    ObjectId next = pending_.back();
    pending_.pop_back();
    STRATA_RETURN_IF_ERROR(Expand(next));
  }
  return Status::OK();
}

// Marks one object; trees and chunk lists are queued to be read.
Status Marker::Mark(const ObjectId& id, const ObjectId* parent) {
  auto dense = repo_->index_.FindDense(id);
  if (!dense) {
    if (!parent) return Status::Corruption(fmt::format("{}: {} is missing", kDamaged, root_));
    return Status::Corruption(fmt::format("{}: object {} (named by {} below {}) is missing", kDamaged, id.Short(),
                                          parent->Short(), root_));
  }
  if (!marks_->Set(dense->ordinal)) return Status::OK();
  if (dense->kind == ObjectKind::kTree || dense->kind == ObjectKind::kChunkList) pending_.push_back(id);
  return Status::OK();
}

// Reads a queued tree page (leaf or index page) or chunk list and marks what it names.
Status Marker::Expand(const ObjectId& id) {
  auto dense = repo_->index_.FindDense(id);
  if (!dense) return Status::Internal("a marked object left the index");
  auto bytes = repo_->ReadObject(id, dense->kind);
  if (!bytes.ok()) {
    return Status::Corruption(fmt::format("{}: {} below {} is unreadable: {}", kDamaged, id.Short(), root_,
                                          bytes.status().message()));
  }
  std::span<const uint8_t> b = AsBytes(*bytes);
  auto damaged = [&](const Status& s) {
    return Status::Corruption(fmt::format("{}: {} below {}: {}", kDamaged, id.Short(), root_, s.message()));
  };
  if (dense->kind == ObjectKind::kChunkList) {
    auto chunks = ParseChunkList(b);
    if (!chunks.ok()) return damaged(chunks.status());
    for (const auto& c : *chunks) STRATA_RETURN_IF_ERROR(Mark(c.id, &id));
    return Status::OK();
  }
  if (IsTreeIndex(b)) {
    // A page of a large directory: every child page is an object of its own.
    auto index = ParseTreeIndex(b);
    if (!index.ok()) return damaged(index.status());
    for (const auto& child : index->children) STRATA_RETURN_IF_ERROR(Mark(child.id, &id));
    return Status::OK();
  }
  auto tree = ParseTree(b);
  if (!tree.ok()) return damaged(tree.status());
  for (const auto& e : tree->entries) {
    if (e.type == EntryType::kDirectory) STRATA_RETURN_IF_ERROR(Mark(e.subtree, &id));
    for (const auto& c : e.chunks) STRATA_RETURN_IF_ERROR(Mark(c.id, &id));
  }
  return Status::OK();
}

// --- PackOutput ---

Status PackOutput::Add(const PackEntry& entry, std::span<const uint8_t> sealed) {
  if (!writer_) {
    std::string name = NewRandomName() + suffix_;
    STRATA_ASSIGN_OR_RETURN(auto out, repo_->backend_->Create(volume::ObjectType::kPack, name));
    writer_ = std::make_unique<PackWriter>(&repo_->aead_, name, std::move(out));
  }
  STRATA_RETURN_IF_ERROR(writer_->Add(entry, sealed).WithContext(fmt::format("{}: writing pack {}", op_, writer_->name())));
  if (writer_->size() >= repo_->config_.pack_size) return Seal();
  return Status::OK();
}

Status PackOutput::Finish() { return writer_ ? Seal() : Status::OK(); }

Status PackOutput::Seal() {
  STRATA_RETURN_IF_ERROR(writer_->Finish().WithContext(fmt::format("{}: committing pack {}", op_, writer_->name())));
  written_ += writer_->size();
  ++packs_;
  listings_.push_back({writer_->name(), writer_->entries()});
  writer_.reset();
  return Status::OK();
}

// --- InstallIndex: steps 2 to 4 of replacing packs ---

Status RepositoryImpl::InstallIndex(std::vector<PackListing> fresh, const std::vector<std::string>& old_index_files,
                                    const std::vector<std::string>& packs, const std::vector<PackFate>& fates,
                                    std::string_view op) {
  // Step 2: new index files naming every pack that remains: the new packs, and each kept pack
  // with its listing copied from the old index file that listed it first. One old file is held
  // at a time, and the new files are written in parts of bounded size.
  std::vector<bool> listed(packs.size(), false);
  std::vector<PackListing> part;
  uint64_t part_bytes = 0;
  const std::string writing = fmt::format("{}: writing the new index", op);
  auto add = [&](PackListing l) -> Status {
    part_bytes += 6 + l.pack.size() + l.entries.size() * kPackEntryRecordSize;
    part.push_back(std::move(l));
    if (part_bytes < kMaxIndexFilePlain) return Status::OK();
    STRATA_RETURN_IF_ERROR(WriteIndexFiles(part).WithContext(writing));
    part.clear();
    part_bytes = 0;
    return Status::OK();
  };
  for (auto& l : fresh) STRATA_RETURN_IF_ERROR(add(std::move(l)));
  fresh.clear();
  for (const auto& name : old_index_files) {
    STRATA_ASSIGN_OR_RETURN(std::string bytes, backend_->Get(volume::ObjectType::kIndex, name));
    auto listings = ParseIndexFile(aead_, name, bytes);
    if (!listings.ok()) {
      return listings.status().WithContext(fmt::format("{} (run `strata repair index` to rebuild the index)", op));
    }
    bytes.clear();
    for (auto& l : *listings) {
      auto ordinal = index_.PackOrdinal(l.pack);
      if (!ordinal || *ordinal >= fates.size() || listed[*ordinal] || fates[*ordinal] != PackFate::kKeep) continue;
      listed[*ordinal] = true;
      STRATA_RETURN_IF_ERROR(add(std::move(l)));
    }
  }
  if (!part.empty()) STRATA_RETURN_IF_ERROR(WriteIndexFiles(part).WithContext(writing));
  part.clear();
  // Step 3: the old index files, every one of them before any pack.
  for (const auto& name : old_index_files) {
    STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kIndex, name)
                               .WithContext(fmt::format("{}: deleting an old index file", op)));
  }
  // From here the new index is the truth; readers of this process switch to it before any pack
  // they might be reading from goes away. The cache covers deleted files: rebuilt here.
  STRATA_RETURN_IF_ERROR(LoadIndex().WithContext(fmt::format("{}: loading the new index", op)));
  // Step 4: the packs nothing lists any more.
  for (uint32_t i = 0; i < packs.size(); ++i) {
    if (fates[i] != PackFate::kRemove) continue;
    STRATA_RETURN_IF_ERROR(
        backend_->Delete(volume::ObjectType::kPack, packs[i]).WithContext(fmt::format("{}: deleting a pack", op)));
  }
  return Status::OK();
}

// --- PackOutputs ---

Status PackOutputs::Add(std::string_view suffix, const PackEntry& entry, std::span<const uint8_t> sealed) {
  auto it = outputs_.find(suffix);
  if (it == outputs_.end()) it = outputs_.try_emplace(std::string(suffix), repo_, std::string(suffix), op_).first;
  return it->second.Add(entry, sealed);
}

Status PackOutputs::Finish() {
  for (auto& [suffix, out] : outputs_) STRATA_RETURN_IF_ERROR(out.Finish());
  return Status::OK();
}

std::vector<PackListing> PackOutputs::TakeListings() {
  std::vector<PackListing> all;
  for (auto& [suffix, out] : outputs_) {
    for (auto& l : out.TakeListings()) all.push_back(std::move(l));
  }
  return all;
}

uint64_t PackOutputs::bytes_written() const {
  uint64_t n = 0;
  for (const auto& [suffix, out] : outputs_) n += out.bytes_written();
  return n;
}

size_t PackOutputs::packs_written() const {
  size_t n = 0;
  for (const auto& [suffix, out] : outputs_) n += out.packs_written();
  return n;
}

}  // namespace strata::store
