// The chunk index: object id -> (pack, entry). Loaded from the repository's index files, each
// of which lists the entries of some packs; it can always be rebuilt from the packs' own
// indexes (`strata repair index`), so losing an index file loses no data.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "crypto/aead.h"
#include "store/pack.h"

namespace strata::store {

struct Location {
  std::string pack;
  PackEntry entry;
  bool cached = false;  // found in the index cache (an unauthenticated hint; index_cache.h)
};

// One pack's part of an index file.
struct PackListing {
  std::string pack;
  std::vector<PackEntry> entries;
};

class IndexCache;

// Thread-safe. Entries live in two parts: an optional base (a memory-mapped index cache,
// index_cache.h, read in place) and an in-memory delta (the index files the cache does not
// cover, and packs added since). An id in both keeps its base location.
class ChunkIndex {
 public:
  // Adds every entry of `pack`, a pack just written (under a fresh name, so the base is not
  // searched for it). An id already present keeps its first location (a duplicate copy written
  // by a concurrent writer is harmless).
  void AddPack(const std::string& pack, const std::vector<PackEntry>& entries);
  std::optional<Location> Find(const ObjectId& id) const;
  bool Contains(const ObjectId& id) const;
  // Ids whose hex form starts with `prefix`, at most `limit` of them.
  std::vector<ObjectId> FindByPrefix(std::string_view prefix, size_t limit) const;
  size_t size() const;
  // Every indexed pack with its entries, as listed in index files.
  std::vector<PackListing> Packs() const;
  bool HasPack(const std::string& pack) const;
  std::optional<uint32_t> PackOrdinal(const std::string& pack) const;
  void Clear();
  // Replaces the whole content at once (as Clear + AddPack each, but readers never see it
  // half-built): how garbage collection installs the index it wrote.
  void Reset(const std::vector<PackListing>& packs);
  // As Reset, on top of the cache `base` (which may be null).
  void Reset(std::shared_ptr<const IndexCache> base, const std::vector<PackListing>& packs);
  // The base, if any, and how many entries and packs the in-memory delta holds.
  std::shared_ptr<const IndexCache> base() const;
  size_t delta_size() const;

  // Garbage collection's view of an id: a dense ordinal (0..size()-1: the position in the
  // base, then the delta in order of first insertion; stable until Clear/Reset), so a mark set needs one bit per object rather than a
  // set of ids; the position in Packs() of the pack whose copy Find returns; and its kind.
  struct Dense {
    uint32_t ordinal;
    uint32_t pack;
    ObjectKind kind;
  };
  std::optional<Dense> FindDense(const ObjectId& id) const;
  // Every pack name; a Dense::pack indexes this.
  std::vector<std::string> PackNames() const;
  // Visits each indexed id once, with the copy Find returns: (ordinal, pack, entry). The base
  // is read in place (in id order), then the delta. Must not call back into the index.
  void ForEach(const std::function<void(uint32_t, uint32_t, const PackEntry&)>& fn) const;

 private:
  // The ordinal sits in what would otherwise be padding: a slot stays 64 bytes.
  struct Slot {
    uint32_t pack;
    uint32_t ordinal;
    PackEntry entry;
  };
  // `search_base` false: the caller knows the base does not list `pack`.
  void AddPackLocked(const std::string& pack, const std::vector<PackEntry>& entries, bool search_base = true);
  void ClearLocked();
  // Pack `i`'s name: the base's table, then the delta's.
  const std::string& PackNameLocked(uint32_t i) const {
    return i < base_packs_ ? (*base_pack_names_)[i] : pack_names_[i - base_packs_];
  }
  uint32_t PackCountLocked() const { return base_packs_ + static_cast<uint32_t>(pack_names_.size()); }
  // The ordinal of a pack by name, nullopt if unknown. The base's packs join the map at the
  // first lookup that must search them: an open that only reads never builds it (a history of
  // 10,000 small commits has 10,000 packs; building the map cost ~1.5 ms of every command).
  std::optional<uint32_t> PackOrdinalLocked(std::string_view pack, bool search_base = true) const;
  // The base's entry for `id` with its pack ordinal and position.
  struct BaseHit {
    uint64_t pos;
    uint32_t pack;
    PackEntry entry;
  };
  std::optional<BaseHit> FindBaseLocked(const ObjectId& id) const;
  mutable std::shared_mutex mu_;
  std::shared_ptr<const IndexCache> base_;
  uint64_t base_size_ = 0;
  // Every pack: the base's first (same ordinals: its table, read in place), then the delta's
  // (a deque: the map's keys view the names, which must not move).
  const std::vector<std::string>* base_pack_names_ = nullptr;
  std::deque<std::string> pack_names_;
  // Name -> ordinal of the delta's packs, and (once base_ids_) of the base's.
  mutable std::mutex ids_mu_;
  mutable std::unordered_map<std::string_view, uint32_t> pack_ids_;
  mutable bool base_ids_ = false;
  // Listings of the delta's packs, by ordinal - base pack count.
  std::vector<std::vector<PackEntry>> pack_entries_;
  uint32_t base_packs_ = 0;
  std::unordered_map<ObjectId, Slot, ObjectIdHash> map_;
};

std::string SerializeIndexFile(const crypto::Aead& aead, const std::string& name,
                               const std::vector<PackListing>& packs);
// Untrusted input (fuzzed): authentication failure or malformed content gives kCorruption.
Result<std::vector<PackListing>> ParseIndexFile(const crypto::Aead& aead, const std::string& name,
                                                std::string_view bytes);
// The part of ParseIndexFile after decryption, split out so the fuzzer can reach it.
Result<std::vector<PackListing>> ParseIndexFilePlain(const std::string& name, std::string_view plain);

}  // namespace strata::store
