// Verification and repair: verify reads everything it can reach and reports each problem
// with what and where; repair only ever rebuilds derived data (the index) from the packs.
#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

#include "base/endian.h"
#include "base/logging.h"
#include "base/progress.h"
#include "base/thread_pool.h"
#include "store/lock.h"
#include "store/repository_impl.h"

namespace strata::store {

namespace {
bool SameEntries(const std::vector<PackEntry>& a, const std::vector<PackEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].kind != b[i].kind || a[i].codec != b[i].codec || a[i].offset != b[i].offset ||
        a[i].stored_size != b[i].stored_size || a[i].raw_size != b[i].raw_size) {
      return false;
    }
  }
  return true;
}
}  // namespace

Result<VerifyReport> RepositoryImpl::Verify(bool read_data) {
  // What follows reads from the disk, and so do reads after it: a verify is when a damaged
  // object must show, even one whose verified copy this process still held.
  DropCachedPages();
  VerifyReport report;
  std::mutex mu;
  auto error = [&](std::string msg) {
    std::lock_guard<std::mutex> l(mu);
    report.errors.push_back(std::move(msg));
  };

  // 1. Index files, read afresh (the in-memory index may predate other writers).
  ChunkIndex index;
  STRATA_ASSIGN_OR_RETURN(auto index_names, backend_->List(volume::ObjectType::kIndex));
  for (const auto& name : index_names) {
    auto bytes = backend_->Get(volume::ObjectType::kIndex, name);
    if (!bytes.ok()) { error(bytes.status().ToString()); continue; }
    auto packs = ParseIndexFile(aead_, name, *bytes);
    if (!packs.ok()) { error(packs.status().message()); continue; }
    for (const auto& p : *packs) index.AddPack(p.pack, p.entries);
  }

  // 2. Every pack: indexed packs must exist and agree with their own index.
  STRATA_ASSIGN_OR_RETURN(auto pack_names, backend_->List(volume::ObjectType::kPack));
  std::unordered_set<std::string> on_disk(pack_names.begin(), pack_names.end());
  auto listings = index.Packs();
  uint64_t total = 0;
  for (const auto& p : listings) {
    if (!on_disk.count(p.pack)) continue;
    if (auto info = backend_->Stat(volume::ObjectType::kPack, p.pack); info.ok()) total += info->size;
  }
  {
    Progress progress(read_data ? "verify --read-data" : "verify", read_data ? total : 0, options_.progress);
    ThreadPool pool(options_.threads, 8);
    for (const auto& listing : listings) {
      if (!on_disk.count(listing.pack)) {
        error(fmt::format("pack {} is listed in the index but missing from the repository ({} objects lost unless "
                          "another copy exists)", listing.pack, listing.entries.size()));
        continue;
      }
      pool.Submit([&, listing] {
        auto entries = ReadPackIndex(backend_.get(), aead_, listing.pack);
        {
          std::lock_guard<std::mutex> l(mu);
          ++report.packs_checked;
        }
        if (!entries.ok()) return error(entries.status().message());
        if (!SameEntries(*entries, listing.entries)) {
          return error(fmt::format("the index disagrees with pack {} (run `strata repair index`)", listing.pack));
        }
        if (!read_data) return;
        std::string sealed, plain;
        for (const auto& e : *entries) {
          sealed.resize(e.stored_size);
          Status s = backend_->ReadAt(volume::ObjectType::kPack, listing.pack, e.offset, e.stored_size,
                                      reinterpret_cast<uint8_t*>(sealed.data()));
          if (s.ok()) s = OpenObject(aead_, e, listing.pack, AsBytes(sealed), &plain);
          if (s.ok() && mac_.Hash(AsBytes(plain)) != e.id) {
            s = Status::Corruption(fmt::format("object {} in pack {}: content does not match its id", e.id.Short(), listing.pack));
          }
          progress.Add(e.stored_size);
          std::lock_guard<std::mutex> l(mu);
          ++report.objects_checked;
          report.bytes_read += e.stored_size;
          if (!s.ok()) report.errors.push_back(s.message());
        }
      });
    }
    pool.Wait();
  }
  for (const auto& name : pack_names) {
    if (!index.HasPack(name)) {
      report.warnings.push_back(fmt::format("pack {} is not indexed: a leftover of an interrupted put "
                                            "(`strata cleanup` removes it)", name));
    }
  }

  // 3. Every root: its trees parse and every object they name is indexed.
  std::unordered_set<ObjectId, ObjectIdHash> seen_trees;
  std::function<void(const ObjectId&, const std::string&)> walk = [&](const ObjectId& id, const std::string& where) {
    if (!seen_trees.insert(id).second) return;
    auto loc = index.Find(id);
    if (!loc) return error(fmt::format("{}: tree {} is missing", where, id.Short()));
    auto tree = ReadTree(id);
    ++report.trees_checked;
    if (!tree.ok()) return error(fmt::format("{}: {}", where, tree.status().message()));
    for (const auto& e : tree->entries) {
      std::string path = where + "/" + e.name;
      if (e.type == EntryType::kDirectory) walk(e.subtree, path);
      for (const auto& c : e.chunks) {
        if (!index.Contains(c.id)) error(fmt::format("{}: chunk {} is missing", path, c.id.Short()));
      }
    }
  };
  auto roots = Roots();
  if (!roots.ok()) {
    error(roots.status().message());
  } else {
    for (const auto& r : *roots) {
      std::string where = "root " + r.name.substr(0, 12);
      if (!r.is_stream) {
        walk(r.id, where);
        continue;
      }
      auto list = ReadObject(r.id, ObjectKind::kChunkList);
      if (!list.ok()) { error(fmt::format("{}: {}", where, list.status().message())); continue; }
      auto chunks = ParseChunkList(AsBytes(*list));
      if (!chunks.ok()) { error(fmt::format("{}: {}", where, chunks.status().message())); continue; }
      for (const auto& c : *chunks) {
        if (!index.Contains(c.id)) error(fmt::format("{}: chunk {} is missing", where, c.id.Short()));
      }
    }
  }
  return report;
}

Result<VerifyReport> RepositoryImpl::RepairIndex() {
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/true));
  VerifyReport report;
  STRATA_ASSIGN_OR_RETURN(auto pack_names, backend_->List(volume::ObjectType::kPack));
  std::sort(pack_names.begin(), pack_names.end());
  std::vector<PackListing> listings;
  for (const auto& name : pack_names) {
    ++report.packs_checked;
    auto entries = ReadPackIndex(backend_.get(), aead_, name);
    if (!entries.ok()) {
      report.errors.push_back(entries.status().message() + " (its objects are not indexed)");
      continue;
    }
    report.objects_checked += entries->size();
    listings.push_back({name, std::move(*entries)});
  }
  STRATA_ASSIGN_OR_RETURN(auto old_index, backend_->List(volume::ObjectType::kIndex));
  // The new index is durable before any old one is deleted: a crash in between leaves both,
  // which load as the same union.
  STRATA_RETURN_IF_ERROR(WriteIndexFiles(listings));
  for (const auto& old : old_index) STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kIndex, old));
  // The old files are gone, so a cache covering them is stale: reload (and rebuild it).
  STRATA_RETURN_IF_ERROR(LoadIndex());
  return report;
}

Result<size_t> RepositoryImpl::CleanLeftovers() {
  // Exclusive: no put is running, so every unindexed pack belongs to one that died.
  STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(backend_.get(), /*exclusive=*/true));
  STRATA_RETURN_IF_ERROR(LoadIndex());
  STRATA_ASSIGN_OR_RETURN(size_t removed, backend_->CleanTemporaries(0));
  STRATA_ASSIGN_OR_RETURN(auto pack_names, backend_->List(volume::ObjectType::kPack));
  for (const auto& name : pack_names) {
    if (index_.HasPack(name)) continue;
    STRATA_RETURN_IF_ERROR(backend_->Delete(volume::ObjectType::kPack, name));
    ++removed;
  }
  return removed;
}

}  // namespace strata::store
