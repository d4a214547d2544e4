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
//   1. new packs (live objects of rewritten packs, sealed bytes copied unchanged, each into a
//      pack of its old pack's tier, so gc never moves archived data back to the hot tier) are
//      committed: fsync, rename, fsync of the directory;
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
// In every case each live object stays readable. Steps 2 to 4 are RepositoryImpl::InstallIndex
// (pack_rewrite.cc), shared with tier moves (tier.cc).
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
#include "store/pack_rewrite.h"
#include "store/repository_impl.h"

namespace strata::store {

namespace {

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
  // The new packs, planned as PackWriter will fill them (one series per pack suffix: archived
  // objects stay in archive packs, a class's in its class's), so a dry run reports the same sizes.
  std::map<std::string_view, std::pair<uint64_t, uint64_t>> series;  // suffix -> objects, bytes
  for (const auto& [pack, e] : moving) {
    auto& [n, data] = series[PackSuffix(packs[pack])];
    ++n;
    data += e.stored_size;
    if (kPackHeaderSize + data >= config_.pack_size) {
      report.bytes_rewritten += PackFileSize(n, data);
      n = data = 0;
    }
  }
  for (const auto& [suffix, open] : series) {
    if (open.first > 0) report.bytes_rewritten += PackFileSize(open.first, open.second);
  }
  report.bytes_freed = removed_bytes > report.bytes_rewritten ? removed_bytes - report.bytes_rewritten : 0;
  if (options.dry_run) return report;

  if (index_changes) {
    // Step 1: copy the live objects of rewritten packs into new packs of the same tier, checking
    // each on the way (a live object that fails authentication stops gc before anything is
    // deleted).
    PackOutputs out(this, "gc");
    std::string sealed, plain;
    for (const auto& [pack, e] : moving) {
      sealed.resize(e.stored_size);
      Status s = backend_->ReadAt(volume::ObjectType::kPack, packs[pack], e.offset, sealed.size(),
                                  reinterpret_cast<uint8_t*>(sealed.data()));
      if (s.ok()) s = OpenObject(aead_, e, packs[pack], AsBytes(sealed), &plain);
      if (!s.ok()) return Status::Corruption(fmt::format("{}: live object {}: {}", kDamaged, e.id.Short(), s.message()));
      // The sealed bytes are bound to id, kind, codec and size (ObjectAd), not to their pack
      // or offset: they move unchanged.
      STRATA_RETURN_IF_ERROR(out.Add(PackSuffix(packs[pack]), e, AsBytes(sealed)));
    }
    STRATA_RETURN_IF_ERROR(out.Finish());
    moving.clear();
    moving.shrink_to_fit();
    const uint64_t written = out.bytes_written();
    report.bytes_rewritten = written;
    report.bytes_freed = removed_bytes > written ? removed_bytes - written : 0;
    std::vector<PackListing> fresh = out.TakeListings();

    // Steps 2 to 4 (pack_rewrite.cc): new index files, old index files deleted, then packs.
    std::vector<PackFate> fates(packs.size(), PackFate::kKeep);
    for (uint32_t i = 0; i < packs.size(); ++i) {
      if (plans[i].action != Action::kKeep) fates[i] = plans[i].missing ? PackFate::kForget : PackFate::kRemove;
    }
    STRATA_RETURN_IF_ERROR(InstallIndex(std::move(fresh), old_index_files, packs, fates, "gc"));
  }
  for (const auto& name : leftovers) {
    STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kPack, name).WithContext("gc: deleting a leftover pack"));
  }
  STRATA_RETURN_IF_ERROR(backend_->CleanTemporaries(std::max<int64_t>(options.grace_seconds, 0)).status());
  return report;
}

}  // namespace strata::store
