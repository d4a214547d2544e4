// Garbage collection: mark everything the roots reach, then delete or rewrite the packs that
// hold little else (ObjectStore::CollectGarbage).
//
// Concurrency. gc holds the exclusive repository lock from before it reads the index until it
// has installed the new one, dry runs included (they reload the in-memory index too). Puts and
// WriteBatches hold shared locks, so gc fails at once ("locked") while one is open, and one
// started during gc is refused likewise: gc waits for no one. Holding the lock across mark AND
// sweep matters: a put deduplicates against existing objects without rewriting them, so one
// running between the two could make a "dead" object live again.
//
// Crash safety. The only destructive steps are deletions, and each happens only once what
// replaces it is durable:
//   1. new packs (live objects of rewritten packs, sealed bytes copied unchanged) are committed:
//      fsync, rename, fsync of the directory;
//   2. new index files listing every pack that remains (kept + new) are committed, in parts of
//      at most 64 MiB of plaintext;
//   3. the old index files are deleted (each deletion durable before the next step);
//   4. the dead and rewritten packs are deleted.
// A crash before 2 leaves the new packs unindexed: leftovers that verify reports and the next
// gc or cleanup removes; the old index is intact. A crash during or after 2 and before 3 leaves
// old and new index files side by side: their union lists old packs that all still exist and new
// packs that hold duplicates of the same objects, and the index keeps one copy of each id. A
// crash during 3 or 4 leaves packs that no index lists any more (leftovers), never an index
// naming a missing pack, because every old index file is gone before the first pack is deleted.
// In every case each live object stays readable.
//
// Memory (docs/ARCHITECTURE.md, "Garbage collection"). gc first builds the local index cache
// afresh from every index file (an existing cache is not trusted for deciding what to delete), so an object's dense ordinal is its position in the memory-mapped cache
// and no entry is held in memory. It then holds: the mark set, one bit per indexed object; a
// counter triple per pack; the walk's stack (32 bytes per tree or chunk list found and not yet
// read); the (pack, entry) pairs of the live objects of packs it rewrites; and, while writing
// the new index, one old index file and one part of the new index (at most 64 MiB of
// plaintext each). It never holds a set of ids.
#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

#include "base/endian.h"
#include "store/lock.h"
#include "store/repository_impl.h"
#include "store/tree_pages.h"

namespace strata::store {

namespace {

constexpr std::string_view kDamaged = "repository is damaged, run `strata verify`";

// One bit per indexed object.
class MarkSet {
 public:
  explicit MarkSet(size_t n) : words_((n + 63) / 64, 0) {}
  // Sets bit `i`; returns false if it was already set.
  bool Set(uint32_t i) {
    uint64_t& w = words_[i / 64];
    uint64_t bit = uint64_t{1} << (i % 64);
    if (w & bit) return false;
    w |= bit;
    ++count_;
    return true;
  }
  bool Test(uint32_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  uint64_t count() const { return count_; }

 private:
  std::vector<uint64_t> words_;
  uint64_t count_ = 0;
};

// Walks from roots, marking every object reached. What an object is walked as depends on its
// indexed kind, not on what referenced it, so an id reached twice is walked once and always the
// same way.
class Marker {
 public:
  Marker(RepositoryImpl* repo, MarkSet* marks) : repo_(repo), marks_(marks) {}

  // Marks `id` and everything below it. `root` names it in errors.
  Status MarkFrom(const ObjectId& id, const std::string& root) {
    root_ = root;
    STRATA_RETURN_IF_ERROR(Mark(id, nullptr));
    while (!pending_.empty()) {
      ObjectId next = pending_.back();
      pending_.pop_back();
      STRATA_RETURN_IF_ERROR(Expand(next));
    }
    return Status::OK();
  }

 private:
  // Marks one object; trees and chunk lists are queued to be read.
  Status Mark(const ObjectId& id, const ObjectId* parent) {
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
  Status Expand(const ObjectId& id) {
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

  RepositoryImpl* repo_;
  MarkSet* marks_;
  std::string root_;
  std::vector<ObjectId> pending_;
};

// The size of a pack of `n` objects whose sealed bytes total `data` (PackWriter's layout).
uint64_t PackFileSize(uint64_t n, uint64_t data) {
  return kPackHeaderSize + data + (4 + n * kPackEntryRecordSize + crypto::Aead::kOverhead) + kPackTrailerSize;
}

enum class Action { kKeep, kDelete, kRepack };

struct PackPlan {
  Action action = Action::kKeep;
  bool missing = false;  // listed, but the file is gone
  uint64_t file_size = 0;
};

}  // namespace

Result<GcReport> RepositoryImpl::CollectGarbage(const GcOptions& options) {
  if (!(options.repack_threshold >= 0.0 && options.repack_threshold <= 1.0)) {
    return Status::InvalidArgument(fmt::format("gc repack threshold {} is not a fraction between 0 and 1",
                                               options.repack_threshold));
  }
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/true));
  GcReport report;
  report.dry_run = options.dry_run;

  // 1. The index as it is on disk now (other processes may have added to it since this one
  // opened), folded into the index cache, so that an object's dense ordinal is its position in
  // the mapped cache and no entry needs to be held in memory.
  STRATA_ASSIGN_OR_RETURN(auto old_index_files, backend_->List(volume::ObjectType::kIndex));
  // Built from the authenticated index files, never from an existing cache: a damaged cache
  // entry naming the wrong pack could otherwise make a pack that holds live objects look dead.
  STRATA_RETURN_IF_ERROR(LoadIndex(/*fold_all=*/true, /*trust_cache=*/false)
                             .WithContext("gc (run `strata repair index` to rebuild the index)"));
  report.objects_total = index_.size();
  const std::vector<std::string> packs = index_.PackNames();

  // 2. Mark.
  MarkSet marks(index_.size());
  Marker marker(this, &marks);
  std::vector<ObjectId> roots = options.roots;
  if (options.live_roots) {
    STRATA_ASSIGN_OR_RETURN(auto more, options.live_roots());
    roots.insert(roots.end(), more.begin(), more.end());
  }
  for (const auto& id : roots) {
    STRATA_RETURN_IF_ERROR(marker.MarkFrom(id, "live root " + id.Short()));
  }
  STRATA_ASSIGN_OR_RETURN(auto put_roots, Roots());
  for (const auto& r : put_roots) {
    STRATA_RETURN_IF_ERROR(marker.MarkFrom(r.id, fmt::format("root {} ({})", r.name.substr(0, 12), r.id.Short())));
  }
  report.objects_live = marks.count();

  // 3. Per-pack counters from one pass over the index (the copy of each id the index uses;
  // other copies of an id, written by concurrent puts, are dead and not counted), then each
  // pack's fate.
  struct PackCount {
    uint64_t live_bytes = 0, all_bytes = 0;
    uint64_t live_count = 0;
  };
  std::vector<PackCount> counts(packs.size());
  index_.ForEach([&](uint32_t ordinal, uint32_t pack, const PackEntry& e) {
    PackCount& c = counts[pack];
    c.all_bytes += e.stored_size;
    if (marks.Test(ordinal)) {
      c.live_bytes += e.stored_size;
      ++c.live_count;
    }
  });
  const int64_t now_ns = options_.env->NowMicros() * 1000;
  auto young = [&](int64_t mtime_ns) {
    return options.grace_seconds > 0 && now_ns - mtime_ns < options.grace_seconds * 1'000'000'000LL;
  };
  std::vector<PackPlan> plans(packs.size());
  uint64_t removed_bytes = 0;
  bool index_changes = false;
  for (uint32_t i = 0; i < packs.size(); ++i) {
    PackPlan& plan = plans[i];
    const PackCount& c = counts[i];
    auto info = backend_->Stat(volume::ObjectType::kPack, packs[i]);
    if (!info.ok() && info.status().code() != StatusCode::kNotFound) return info.status();
    if (!info.ok()) {
      if (c.live_count > 0) {
        return Status::Corruption(fmt::format("{}: pack {} holding {} live objects is missing", kDamaged, packs[i], c.live_count));
      }
      plan.missing = true;
      plan.action = Action::kDelete;  // only drops it from the index
    } else {
      plan.file_size = info->size;
      if (young(info->mtime_ns)) continue;
      if (c.live_count == 0) {
        plan.action = Action::kDelete;
      } else if (c.all_bytes > 0 && double(c.all_bytes - c.live_bytes) / double(c.all_bytes) > options.repack_threshold) {
        plan.action = Action::kRepack;
      }
    }
    if (plan.action == Action::kKeep) continue;
    index_changes = true;
    removed_bytes += plan.file_size;
    if (plan.action == Action::kDelete && !plan.missing) ++report.packs_deleted;
    if (plan.action == Action::kRepack) ++report.packs_repacked;
  }
  // Packs no index lists: leftovers of interrupted puts (or of a crashed gc). No put is
  // running (the lock), so they can only be dead.
  std::vector<std::string> leftovers;
  {
    STRATA_ASSIGN_OR_RETURN(auto on_disk, backend_->List(volume::ObjectType::kPack));
    for (const auto& name : on_disk) {
      if (index_.HasPack(name)) continue;
      auto info = backend_->Stat(volume::ObjectType::kPack, name);
      if (!info.ok() || young(info->mtime_ns)) continue;
      leftovers.push_back(name);
      removed_bytes += info->size;
      ++report.packs_deleted;
    }
  }

  // The live objects to copy: only those of rewritten packs are held (pack, entry), in pack
  // order, then offset order so each pack is read front to back.
  std::vector<std::pair<uint32_t, PackEntry>> moving;
  index_.ForEach([&](uint32_t ordinal, uint32_t pack, const PackEntry& e) {
    if (plans[pack].action == Action::kRepack && marks.Test(ordinal)) moving.emplace_back(pack, e);
  });
  std::sort(moving.begin(), moving.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.offset < b.second.offset;
  });
  // The new packs, planned as PackWriter will fill them, so a dry run reports the same sizes.
  {
    uint64_t n = 0, data = 0;
    for (const auto& [pack, e] : moving) {
      ++n;
      data += e.stored_size;
      if (kPackHeaderSize + data >= config_.pack_size) {
        report.bytes_rewritten += PackFileSize(n, data);
        n = data = 0;
      }
    }
    if (n > 0) report.bytes_rewritten += PackFileSize(n, data);
  }
  report.bytes_freed = removed_bytes > report.bytes_rewritten ? removed_bytes - report.bytes_rewritten : 0;
  if (options.dry_run) return report;

  if (index_changes) {
    // Step 1: copy the live objects of rewritten packs into new packs, checking each on the
    // way (a live object that fails authentication stops gc before anything is deleted).
    std::vector<PackListing> fresh;
    std::unique_ptr<PackWriter> writer;
    uint64_t written = 0;
    auto seal_pack = [&]() -> Status {
      STRATA_RETURN_IF_ERROR(writer->Finish().WithContext("gc: committing pack " + writer->name()));
      written += writer->size();
      fresh.push_back({writer->name(), writer->entries()});
      writer.reset();
      return Status::OK();
    };
    std::string sealed, plain;
    for (const auto& [pack, e] : moving) {
      sealed.resize(e.stored_size);
      Status s = backend_->ReadAt(volume::ObjectType::kPack, packs[pack], e.offset, sealed.size(),
                                  reinterpret_cast<uint8_t*>(sealed.data()));
      if (s.ok()) s = OpenObject(aead_, e, packs[pack], AsBytes(sealed), &plain);
      if (!s.ok()) return Status::Corruption(fmt::format("{}: live object {}: {}", kDamaged, e.id.Short(), s.message()));
      if (!writer) {
        std::string name = NewRandomName();
        STRATA_ASSIGN_OR_RETURN(auto out, backend_->Create(volume::ObjectType::kPack, name));
        writer = std::make_unique<PackWriter>(&aead_, name, std::move(out));
      }
      // The sealed bytes are bound to id, kind, codec and size (ObjectAd), not to their pack
      // or offset: they move unchanged.
      STRATA_RETURN_IF_ERROR(writer->Add(e, AsBytes(sealed)).WithContext("gc: writing pack " + writer->name()));
      if (writer->size() >= config_.pack_size) STRATA_RETURN_IF_ERROR(seal_pack());
    }
    if (writer) STRATA_RETURN_IF_ERROR(seal_pack());
    moving.clear();
    moving.shrink_to_fit();
    report.bytes_rewritten = written;
    report.bytes_freed = removed_bytes > written ? removed_bytes - written : 0;

    // Step 2: new index files naming every pack that remains: the new packs, and each kept
    // pack with its listing copied from the old index file that listed it first. One old file
    // is held at a time, and the new files are written in parts of bounded size.
    std::vector<bool> listed(packs.size(), false);
    std::vector<PackListing> part;
    uint64_t part_bytes = 0;
    auto add = [&](PackListing l) -> Status {
      part_bytes += 6 + l.pack.size() + l.entries.size() * kPackEntryRecordSize;
      part.push_back(std::move(l));
      if (part_bytes < kMaxIndexFilePlain) return Status::OK();
      STRATA_RETURN_IF_ERROR(WriteIndexFiles(part).WithContext("gc: writing the new index"));
      part.clear();
      part_bytes = 0;
      return Status::OK();
    };
    for (auto& l : fresh) STRATA_RETURN_IF_ERROR(add(std::move(l)));
    fresh.clear();
    for (const auto& name : old_index_files) {
      STRATA_ASSIGN_OR_RETURN(std::string bytes, backend_->Get(volume::ObjectType::kIndex, name));
      auto listings = ParseIndexFile(aead_, name, bytes);
      if (!listings.ok()) return listings.status().WithContext("gc (run `strata repair index` to rebuild the index)");
      bytes.clear();
      for (auto& l : *listings) {
        auto ordinal = index_.PackOrdinal(l.pack);
        if (!ordinal || listed[*ordinal] || plans[*ordinal].action != Action::kKeep) continue;
        listed[*ordinal] = true;
        STRATA_RETURN_IF_ERROR(add(std::move(l)));
      }
    }
    if (!part.empty()) STRATA_RETURN_IF_ERROR(WriteIndexFiles(part).WithContext("gc: writing the new index"));
    part.clear();
    // Step 3: the old index files, every one of them before any pack.
    for (const auto& name : old_index_files) {
      STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kIndex, name).WithContext("gc: deleting an old index file"));
    }
    // From here the new index is the truth; readers of this process switch to it before any
    // pack they might be reading from goes away. The cache covers deleted files: rebuilt here.
    STRATA_RETURN_IF_ERROR(LoadIndex().WithContext("gc: loading the new index"));
    // Step 4: the packs nothing lists any more.
    for (uint32_t i = 0; i < packs.size(); ++i) {
      if (plans[i].action == Action::kKeep || plans[i].missing) continue;
      STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kPack, packs[i]).WithContext("gc: deleting a pack"));
    }
  }
  for (const auto& name : leftovers) {
    STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kPack, name).WithContext("gc: deleting a leftover pack"));
  }
  STRATA_RETURN_IF_ERROR(backend_->CleanTemporaries(std::max<int64_t>(options.grace_seconds, 0)).status());
  return report;
}

}  // namespace strata::store
