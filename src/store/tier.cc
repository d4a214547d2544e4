// Tier moves: objects a set of roots reaches go into packs of another storage tier
// (ObjectStore::MoveToTier), recompressed for it, under their unchanged ids. Class moves
// (ObjectStore::MoveToClass, a dataset's redundancy policy) are the same rewrite
// (RepositoryImpl::MoveObjects) with the sealed bytes copied unchanged.
//
// What moves. Mark (gc's Marker) everything the roots reach; every pack that holds a marked
// object outside the target tier is rewritten whole: its marked objects are opened, recompressed
// at the tier's level, resealed (the AD binds the codec and sizes, so a new codec needs a new
// seal) and written into new packs of the target tier; its other objects (shared with nothing
// the roots reach, or dead) keep their sealed bytes and go into new packs of the old pack's tier.
// Packs holding no marked object outside the tier are not touched, so a second move of the same
// roots does nothing.
//
// Concurrency. The exclusive repository lock from before the index is read until the new one is
// installed, as gc: puts and WriteBatches (shared locks) are refused meanwhile and the move is
// refused while one runs; it never waits.
//
// Crash safety: gc's order (gc.cc), the same code for steps 2 to 4 (InstallIndex):
//   1. new packs (target tier and copies) committed: fsync, rename, fsync of the directory;
//   2. new index files naming the new packs and every untouched pack, committed;
//   3. every old index file deleted, each deletion durable;
//   4. the rewritten packs deleted.
// A crash before 2 leaves unindexed new packs (leftovers for gc or `strata cleanup`); between 2
// and 3 both copies of each moved object are indexed (readers take either; both authenticate);
// during 3 or 4, old packs no index names. Every object stays readable throughout, and running
// the move again finishes it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "base/endian.h"

#include "base/progress.h"
#include "base/thread_pool.h"
#include "store/lock.h"
#include "store/pack_rewrite.h"
#include "store/repository_impl.h"

namespace strata {

const char* StorageTierName(StorageTier tier) { return tier == StorageTier::kArchive ? "archive" : "hot"; }

Result<StorageTier> ParseStorageTier(std::string_view name) {
  if (name == "hot") return StorageTier::kHot;
  if (name == "archive") return StorageTier::kArchive;
  return Status::InvalidArgument(fmt::format("unknown storage tier '{}' (known: hot, archive)", name));
}

namespace store {

namespace {

// zstd's strongest level that still decompresses at its usual speed with a window a reader can
// afford (levels above 19 need --ultra windows).
constexpr int kArchiveCompressionLevel = 19;
// Objects are recompressed in batches of about this many plaintext bytes, spread over threads.
constexpr uint64_t kBatchBytes = 64ull << 20;

struct Item {
  uint32_t pack;
  PackEntry entry;
  bool move;  // reached by the roots and outside the target tier
};

}  // namespace

Result<TierMoveReport> RepositoryImpl::MoveToTier(const std::vector<ObjectId>& roots, StorageTier tier,
                                                  const TierMoveOptions& options) {
  const int level = options.compression_level >= 0 ? options.compression_level
                    : tier == StorageTier::kArchive ? kArchiveCompressionLevel
                                                    : config_.compression_level;
  if (level > 22) return Status::InvalidArgument(fmt::format("compression level {} is above zstd's 22", level));
  MovePlan plan;
  plan.op = fmt::format("move to the {} tier", StorageTierName(tier));
  plan.progress = fmt::format("to {}", StorageTierName(tier));
  plan.target_suffix = TierSuffix(tier, tier == StorageTier::kHot ? ClassOf(options.redundancy_class) : 0);
  plan.in_place = [tier](std::string_view pack) { return PackTier(pack) == tier; };
  plan.level = level;
  return MoveObjects(roots, plan, options);
}

Result<TierMoveReport> RepositoryImpl::MoveToClass(const std::vector<ObjectId>& roots, const std::string& label,
                                                   const TierMoveOptions& options) {
  MovePlan plan;
  plan.op = label.empty() ? std::string("move to the repository's policy") : fmt::format("move to the policy of '{}'", label);
  plan.progress = "policy";
  const uint32_t class_id = ClassOf(label);
  plan.target_suffix = TierSuffix(StorageTier::kHot, class_id);
  volume::VolumeLayout layout;
  if (auto* r = redundant()) layout = r->layout();
  const volume::RedundancyClass* target = layout.FindClass(class_id);
  const int wanted = volume::FailuresTolerated(target ? target->policy : layout.policy);
  // Archived objects follow the archive tier's policy; a hot object stays in a pack whose
  // policy survives as many lost volumes as the class's.
  plan.in_place = [layout = std::move(layout), wanted](std::string_view pack) {
    return PackTier(pack) == StorageTier::kArchive || volume::FailuresTolerated(layout.PolicyFor(pack)) >= wanted;
  };
  plan.level = -1;  // the sealed bytes move unchanged
  return MoveObjects(roots, plan, options);
}

uint32_t RepositoryImpl::ClassOf(std::string_view label) {
  if (label.empty()) return 0;
  auto* r = redundant();
  if (!r) return 0;
  const volume::VolumeLayout layout = r->layout();
  const volume::RedundancyClass* c = layout.FindClass(label);
  return c ? c->id : 0;
}

std::string RepositoryImpl::PackSuffixOf(std::string_view redundancy_class) {
  return volume::ClassPackSuffix(ClassOf(redundancy_class));
}

Result<TierMoveReport> RepositoryImpl::MoveObjects(const std::vector<ObjectId>& roots, const MovePlan& plan,
                                                   const TierMoveOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& op = plan.op;
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/true));
  TierMoveReport report;
  report.dry_run = options.dry_run;

  // The index as it is on disk now, from the authenticated index files (as gc: the cache is not
  // trusted to decide which packs are deleted), folded so that ordinals are cache positions.
  STRATA_ASSIGN_OR_RETURN(auto old_index_files, backend_->List(volume::ObjectType::kIndex));
  STRATA_RETURN_IF_ERROR(LoadIndex(/*fold_all=*/true, /*trust_cache=*/false)
                             .WithContext(op + " (run `strata repair index` to rebuild the index)"));
  const std::vector<std::string> packs = index_.PackNames();
  MarkSet marks(index_.size());
  Marker marker(this, &marks);
  for (const auto& id : roots) STRATA_RETURN_IF_ERROR(marker.MarkFrom(id, "root " + id.Short()));
  report.objects_reachable = marks.count();
  MarkSet kept(options.keep_roots.empty() ? 0 : index_.size());
  Marker keeper(this, &kept);
  for (const auto& id : options.keep_roots) STRATA_RETURN_IF_ERROR(keeper.MarkFrom(id, "kept root " + id.Short()));
  auto moves = [&](uint32_t ordinal) { return marks.Test(ordinal) && (kept.size() == 0 || !kept.Test(ordinal)); };

  // Which packs to rewrite, then every object of them (the copy the index uses; other copies
  // of an id are duplicates that the rewrite drops, the index naming the one it keeps).
  std::vector<bool> rewrite(packs.size(), false);
  index_.ForEach([&](uint32_t ordinal, uint32_t pack, const PackEntry& e) {
    if (!marks.Test(ordinal)) return;
    if (plan.in_place(packs[pack])) {
      ++report.objects_in_tier;
      return;
    }
    if (!moves(ordinal)) {
      ++report.objects_kept;
      return;
    }
    rewrite[pack] = true;
    ++report.objects_moved;
    report.stored_before += e.stored_size;
    report.raw_bytes += e.raw_size;
  });
  report.stored_after = report.stored_before;
  report.packs_rewritten = std::count(rewrite.begin(), rewrite.end(), true);
  if (options.dry_run || report.objects_moved == 0) {
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
  }
  std::vector<Item> items;
  index_.ForEach([&](uint32_t ordinal, uint32_t pack, const PackEntry& e) {
    if (rewrite[pack]) items.push_back(Item{pack, e, moves(ordinal) && !plan.in_place(packs[pack])});
  });
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.pack != b.pack ? a.pack < b.pack : a.entry.offset < b.entry.offset;
  });

  // Step 1: the new packs. Objects are read front to back, pack by pack; moved ones are opened
  // and resealed by a few threads a batch at a time, then every object of the batch is appended
  // in order.
  PackOutput target(this, plan.target_suffix, op);
  PackOutputs rest(this, op);
  size_t threads = ThreadsOrCores(options.threads ? options.threads : options_.threads);
  Progress progress(plan.progress, report.raw_bytes, options_.progress);
  report.stored_after = 0;
  std::vector<std::string> sealed, resealed;
  std::vector<PackEntry> entries;
  std::vector<Status> errors;
  size_t i = 0;
  while (i < items.size()) {
    size_t begin = i;
    uint64_t batch = 0;
    while (i < items.size() && (i == begin || batch < kBatchBytes)) batch += items[i++].entry.raw_size;
    const size_t n = i - begin;
    sealed.resize(n);
    resealed.resize(n);
    entries.resize(n);
    errors.assign(n, Status::OK());
    for (size_t j = 0; j < n; ++j) {
      const Item& it = items[begin + j];
      sealed[j].resize(it.entry.stored_size);
      STRATA_RETURN_IF_ERROR(backend_->ReadAt(volume::ObjectType::kPack, packs[it.pack], it.entry.offset,
                                              sealed[j].size(), reinterpret_cast<uint8_t*>(sealed[j].data()))
                                 .WithContext(op));
    }
    std::atomic<size_t> next{0};
    auto work = [&]() {
      std::string plain;
      for (size_t j = next++; j < n; j = next++) {
        const Item& it = items[begin + j];
        if (!it.move || plan.level < 0) continue;
        Status s = OpenObject(aead_, it.entry, packs[it.pack], AsBytes(sealed[j]), &plain);
        if (!s.ok()) {
          errors[j] = Status::Corruption(fmt::format("{}: object {}: {}", kDamaged, it.entry.id.Short(), s.message()));
          continue;
        }
        SealObject(aead_, it.entry.id, it.entry.kind, AsBytes(plain), plan.level, codec::kDefaultMinSaving,
                   &resealed[j], &entries[j]);
        progress.Add(it.entry.raw_size, 1);
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < std::min(threads, n); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (size_t j = 0; j < n; ++j) {
      STRATA_RETURN_IF_ERROR(errors[j]);
      const Item& it = items[begin + j];
      // Sealed bytes are bound to id, kind, codec and size, not to their pack: what is not
      // resealed is copied as it is (a damaged object stays damaged, and verify reports it).
      if (it.move && plan.level >= 0) {
        report.stored_after += entries[j].stored_size;
        STRATA_RETURN_IF_ERROR(target.Add(entries[j], AsBytes(resealed[j])));
      } else if (it.move) {
        report.stored_after += it.entry.stored_size;
        progress.Add(it.entry.raw_size, 1);
        STRATA_RETURN_IF_ERROR(target.Add(it.entry, AsBytes(sealed[j])));
      } else {
        ++report.objects_copied;
        STRATA_RETURN_IF_ERROR(rest.Add(PackSuffix(packs[it.pack]), it.entry, AsBytes(sealed[j])));
      }
    }
  }
  STRATA_RETURN_IF_ERROR(target.Finish());
  STRATA_RETURN_IF_ERROR(rest.Finish());
  progress.Finish();
  items.clear();
  items.shrink_to_fit();
  report.packs_written = target.packs_written() + rest.packs_written();
  std::vector<PackListing> fresh = target.TakeListings();
  for (auto& l : rest.TakeListings()) fresh.push_back(std::move(l));

  // Steps 2 to 4.
  std::vector<PackFate> fates(packs.size(), PackFate::kKeep);
  for (size_t p = 0; p < packs.size(); ++p) {
    if (rewrite[p]) fates[p] = PackFate::kRemove;
  }
  STRATA_RETURN_IF_ERROR(InstallIndex(std::move(fresh), old_index_files, packs, fates, op));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

Result<ObjectStore::TierCount> RepositoryImpl::CountTiers(const std::vector<ObjectId>& roots) {
  MarkSet marks(index_.size());
  Marker marker(this, &marks);
  for (const auto& id : roots) STRATA_RETURN_IF_ERROR(marker.MarkFrom(id, "root " + id.Short()));
  const std::vector<std::string> packs = index_.PackNames();
  TierCount count;
  index_.ForEach([&](uint32_t ordinal, uint32_t pack, const PackEntry& e) {
    if (ordinal >= marks.size() || !marks.Test(ordinal)) return;
    if (PackTier(packs[pack]) == StorageTier::kArchive) {
      ++count.archive_objects;
      count.archive_bytes += e.stored_size;
    } else {
      ++count.hot_objects;
      count.hot_bytes += e.stored_size;
    }
  });
  return count;
}

}  // namespace store
}  // namespace strata
