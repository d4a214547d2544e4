// The local index cache: every indexed object's location, sorted by id, in one file that is
// memory-mapped at open instead of decrypting and hashing every index file (as git's
// multi-pack-index does for its packs). Layout in docs/FORMAT.md ("Index cache").
//
// The cache is derived data kept in the repository's local state directory and is an
// untrusted hint: the parser checks every size, offset and table, and every entry read is
// checked again when it is used (pack ordinal, kind, codec, sizes). Entries are not
// authenticated: a wrong location fails the object's AEAD authentication on read, and the
// repository then drops the cache and rebuilds it from the (authenticated) index files.
// It names the index files it covers, so files added since are loaded on top of it and a
// covered file that is gone (gc, repair) makes it stale.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunk_index.h"
#include "strata/env.h"

namespace strata::store {

inline constexpr char kIndexCacheMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'M', 'C'};
inline constexpr char kIndexCacheTrailerMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'M', 'T'};
inline constexpr uint32_t kIndexCacheVersion = 1;
inline constexpr size_t kIndexCacheEntrySize = 56;
inline constexpr size_t kIndexCacheFanoutSize = 256 * 8;
inline constexpr size_t kIndexCacheTrailerSize = 48;

// A parsed, read-only cache image. Thread-safe (immutable).
class IndexCache {
 public:
  // Parses `bytes` (which must outlive the cache unless `file` owns them). Untrusted input
  // (fuzzed): anything malformed gives kCorruption, a newer version kUnsupported.
  static Result<std::unique_ptr<IndexCache>> Parse(std::span<const uint8_t> bytes,
                                                   std::unique_ptr<MappedFile> file = nullptr);
  // Maps and parses the cache at `path`.
  static Result<std::unique_ptr<IndexCache>> Open(Env* env, const std::string& path);

  // Sorted names of the index files whose union this cache holds.
  const std::vector<std::string>& index_files() const { return index_files_; }
  // Pack names; an entry's pack ordinal indexes this table.
  const std::vector<std::string>& packs() const { return packs_; }
  uint64_t size() const { return n_entries_; }

  // The position of `id`, if present.
  std::optional<uint64_t> Find(const ObjectId& id) const;
  // The id at `pos` (< size()).
  ObjectId IdAt(uint64_t pos) const;
  // The entry at `pos` (< size()) and its pack ordinal; nullopt if the entry is malformed.
  std::optional<std::pair<uint32_t, PackEntry>> At(uint64_t pos) const;
  // The positions [begin, end) whose ids start with the byte `first`.
  std::pair<uint64_t, uint64_t> Bucket(uint8_t first) const;

 private:
  IndexCache() = default;
  const uint8_t* Entry(uint64_t pos) const { return entries_ + pos * kIndexCacheEntrySize; }

  std::unique_ptr<MappedFile> file_;
  std::vector<std::string> index_files_;
  std::vector<std::string> packs_;
  const uint8_t* entries_ = nullptr;
  const uint8_t* fanout_ = nullptr;
  uint64_t n_entries_ = 0;
};

// Writes a cache that holds `base` (may be null) plus `listings`, covering `index_files`
// (the base's files plus those the listings came from), to `path`: a temporary file in the same
// directory, synced, then renamed over `path` (readers that mapped the old file keep it). An id
// present in `base` keeps its base location; otherwise the first listing's copy wins. Malformed
// base entries are dropped. Memory: the listings plus one sorted copy of their entries; the
// base is streamed.
Status WriteIndexCache(Env* env, const std::string& path, const IndexCache* base,
                       const std::vector<PackListing>& listings, std::vector<std::string> index_files);
// The same with several sorted sources (a k-way merge): the bases in order, then the listings;
// on equal ids the earliest source wins. How a cache is built from index files with bounded
// memory: sorted runs of a bounded number of entries are written first (each a cache with no
// index file names), then merged in one pass.
Status WriteIndexCache(Env* env, const std::string& path, const std::vector<const IndexCache*>& bases,
                       const std::vector<PackListing>& listings, std::vector<std::string> index_files);

}  // namespace strata::store
