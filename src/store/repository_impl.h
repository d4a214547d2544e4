// Internal: the local/embedded implementation of strata::Repository, split over
// repository.cc (open, keys, reads), put.cc (writes), verify.cc (verify, repair) and gc.cc
// (garbage collection).
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <mutex>
#include <string>

#include "crypto/aead.h"
#include "crypto/keys.h"
#include "store/chunk_index.h"
#include "store/chunker.h"
#include "store/config.h"
#include "store/object_store.h"
#include "store/pack_rewrite.h"
#include "store/tree.h"
#include "store/tree_pages.h"
#include "strata/repository.h"
#include "strata/volumes.h"
#include "volume/backend.h"
#include "volume/redundant_backend.h"

namespace strata::store {

// Index files are written in parts of at most this much plaintext (about 1.2M entries).
inline constexpr uint64_t kMaxIndexFilePlain = 64ull << 20;
// The index cache is rewritten when this many index files are outside it (they are then also
// compacted into one: RepositoryImpl::CompactIndexFiles)...
inline constexpr size_t kIndexCacheFoldFiles = 32;
// ... and built from index files in sorted runs of at most this many entries, merged in one
// pass (bounded memory, and each entry written twice whatever the repository's size).
inline constexpr uint64_t kIndexCacheBuildGroup = 500'000;

class RepositoryImpl : public Repository, public ObjectStore {
 public:
  RepositoryImpl(const OpenOptions& options, std::unique_ptr<volume::Backend> backend,
                 RepositoryConfig config, crypto::MasterKeys keys, crypto::KeySlot slot);

  Result<ObjectId> PutPaths(const std::vector<std::string>& paths, PutStats* stats) override;
  Result<ObjectId> PutStream(SequentialFile* in, PutStats* stats) override;
  Result<std::unique_ptr<BlobReader>> OpenFile(const ObjectId& id, std::string_view path) override;
  Result<std::vector<EntryInfo>> List(const ObjectId& tree, std::string_view path, bool recursive) override;
  Status Restore(const ObjectId& tree, std::string_view path, const std::string& dest,
                 uint64_t* bytes_written) override;
  Result<ObjectId> ResolveId(std::string_view text) override;
  Result<std::vector<RootInfo>> Roots() override;
  Result<VerifyReport> Verify(bool read_data) override;
  Result<RepositoryStats> Stats() override;
  Result<VerifyReport> RepairIndex() override;
  Result<size_t> CleanLeftovers() override;
  Result<std::vector<KeySlotInfo>> ListKeys() override;
  Result<std::string> AddKey(std::string_view passphrase, std::string label) override;
  Status RemoveKey(std::string_view slot_id, bool allow_current) override;
  Status ChangePassphrase(std::string_view new_passphrase) override;
  std::string url() const override { return backend_->url(); }
  Status Unlock(int64_t seconds) override;
  ObjectStore* objects() override { return this; }
  VolumeAdmin* volumes() override;

  // ObjectStore
  Result<std::unique_ptr<WriteBatch>> NewBatch(const BatchOptions& options) override;
  Result<std::string> Read(const ObjectId& id, ObjectKind kind) override { return ReadObject(id, kind); }
  Result<Tree> ReadTree(const ObjectId& id) override;
  bool Contains(const ObjectId& id) override { return index_.Contains(id); }
  ObjectId Hash(std::string_view bytes) override { return mac_.Hash(bytes); }
  Env* env() override { return options_.env; }
  std::string local_state_dir() override;
  const crypto::Key256& audit_key() override { return audit_key_; }
  Status AppendRecord(std::string_view json, std::string_view key, bool name_may_be_lost) override;
  Result<std::vector<std::string>> RecordNames() override;
  Result<std::string> ReadRecord(const std::string& name) override;
  Status DeleteRecords(const std::vector<std::string>& names) override;
  Result<std::vector<std::string>> Records() override;
  Result<GcReport> CollectGarbage(const GcOptions& options) override;
  Result<TierMoveReport> MoveToTier(const std::vector<ObjectId>& roots, StorageTier tier,
                                    const TierMoveOptions& options) override;
  Result<TierCount> CountTiers(const std::vector<ObjectId>& roots) override;
  Result<TierMoveReport> MoveToClass(const std::vector<ObjectId>& roots, const std::string& label,
                                     const TierMoveOptions& options) override;

  // What MoveObjects does: which packs already hold an object where it belongs, where moved
  // objects go, and whether they are resealed.
  struct MovePlan {
    std::string op, progress;  // names the work in errors and on the progress bar
    std::string target_suffix;  // of the new packs (PackSuffix)
    std::function<bool(std::string_view pack)> in_place;
    int level = -1;  // recompress moved objects at this zstd level; -1: copy their sealed bytes
  };
  // MoveToTier and MoveToClass (tier.cc).
  Result<TierMoveReport> MoveObjects(const std::vector<ObjectId>& roots, const MovePlan& plan,
                                     const TierMoveOptions& options);
  // The id of redundancy class `label` (0: none, or no such class), and its pack-name suffix.
  uint32_t ClassOf(std::string_view label);
  std::string PackSuffixOf(std::string_view redundancy_class);

  // Replaces packs under the exclusive lock, after the new packs (`fresh`) are durable: writes
  // index files naming `fresh` and every pack whose fate is kKeep (listings copied from
  // `old_index_files`), deletes every one of `old_index_files`, reloads the index, then deletes
  // the kRemove packs. `packs` and `fates` are indexed by the pack ordinals of index_ as loaded
  // before the new packs were written. The order is what makes gc and tier moves crash-safe.
  Status InstallIndex(std::vector<PackListing> fresh, const std::vector<std::string>& old_index_files,
                      const std::vector<std::string>& packs, const std::vector<PackFate>& fates, std::string_view op);

  // Loads the chunk index into index_, replacing what it held: the local index cache (mapped)
  // plus every index file it does not cover. Writes a new cache when it is missing, stale, or
  // more than a threshold of entries is outside it (index_cache.h).
  // `fold_all`: merge every index file into the cache (gc: dense ordinals are then positions in
  // the mapped cache, and the in-memory delta is empty). `trust_cache` false: ignore the
  // existing cache and build one from the index files alone (gc, whose pack decisions must not
  // rest on unauthenticated data, and recovery from a bad cache).
  Status LoadIndex(bool fold_all = false, bool trust_cache = true);
  // After a location from the cache failed (or an id was missing from it): rebuilds the cache
  // from the index files and reloads. Only once per process; later calls fail.
  Status DistrustIndexCache();
  // index_.Find, falling back to DistrustIndexCache once when a cache is in use and the id is
  // absent. `cached` (may be null) tells whether the location came from the cache.
  std::optional<Location> Locate(const ObjectId& id, bool* cached);
  std::string IndexCachePath();
  // Writes `listings` as index files of at most kMaxIndexFilePlain bytes of plaintext each;
  // their names are appended to `names` (may be null).
  Status WriteIndexFiles(const std::vector<PackListing>& listings, std::vector<std::string>* names = nullptr);
  // Replaces `files`, index files this process has read and authenticated into `listings`, by
  // new index files holding the same listings, then deletes them, so that a run of small puts
  // (one index file each) leaves one file to list and read instead of dozens. Runs under a
  // shared lock (gc, which rewrites every index file, holds an exclusive one) and only while
  // every one of `files` still exists. Returns the new files' names. A failure part-way leaves
  // listings twice, which loaders allow; a read-only or exclusively locked repository fails.
  Result<std::vector<std::string>> CompactIndexFiles(const std::vector<std::string>& files,
                                                     const std::vector<PackListing>& listings);
  // Reads, authenticates and decompresses one object; fails if it is not of `kind`.
  Result<std::string> ReadObject(const ObjectId& id, ObjectKind kind);
  // The same straight into `dst`, which must be the object's size (kCorruption otherwise); on
  // failure `dst` holds no byte of the object.
  Status ReadObjectInto(const ObjectId& id, ObjectKind kind, std::span<uint8_t> dst);
  // Where an object goes, once its index entry is known.
  using DestinationFn = std::function<Result<std::span<uint8_t>>(const PackEntry&)>;
  Status ReadObjectInto(const ObjectId& id, ObjectKind kind, const DestinationFn& dst);
  Status ReadObjectAt(const ObjectId& id, ObjectKind kind, const DestinationFn& dst, bool* cached);
  // A tree object (page), parsed, through a small cache: opening many files of one version
  // reads the same directory pages again and again, and objects never change under their id.
  Result<std::shared_ptr<const TreePage>> ReadTreePageCached(const ObjectId& id);
  void DropCachedPages();
  // Follows `path` (slash-separated, may be empty) from the tree `root`.
  Result<TreeEntry> Lookup(const ObjectId& root, std::string_view path);
  Status WriteRoot(const RootInfo& root);

  // The backend's RedundantBackend when the repository has volumes, else null.
  volume::RedundantBackend* redundant();
  // Wraps the local backend in a RedundantBackend (first volume added).
  void WrapRedundant(volume::VolumeLayout layout);

  const OpenOptions options_;
  std::unique_ptr<volume::Backend> backend_;
  const RepositoryConfig config_;
  const crypto::MasterKeys keys_;
  crypto::KeySlot slot_;
  crypto::Aead aead_;
  crypto::KeyedHash mac_;
  Chunker chunker_;
  ChunkIndex index_;
  std::atomic<bool> cache_distrusted_{false};
  std::mutex keys_mu_;
  crypto::Key256 audit_key_;
  uint64_t tree_seed_ = 0;  // keys the page boundaries of large directories (tree_pages.h)
  static constexpr size_t kPageCacheEntries = 64;  // pages hold up to 2048 entries each
  std::mutex page_cache_mu_;
  std::unordered_map<ObjectId, std::shared_ptr<const TreePage>, ObjectIdHash> page_cache_;
  std::unique_ptr<VolumeAdmin> volume_admin_;
  std::deque<ObjectId> page_cache_order_;  // oldest first
};

}  // namespace strata::store
