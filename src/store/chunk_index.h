// The chunk index: object id -> (pack, entry). Loaded from the repository's index files, each
// of which lists the entries of some packs; it can always be rebuilt from the packs' own
// indexes (`strata repair index`), so losing an index file loses no data.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
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
  // Adds every entry of `pack`. An id already present keeps its first location (a duplicate
  // copy written by a concurrent writer is harmless).
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
  void AddPackLocked(const std::string& pack, const std::vector<PackEntry>& entries);
  void ClearLocked();
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
  // Every pack: the base's first (same ordinals), then the delta's.
  std::vector<std::string> pack_names_;
  std::unordered_map<std::string, uint32_t> pack_ids_;
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
