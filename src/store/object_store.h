// ObjectStore: the store as the layers above it (versioning, checkpoints, registry) see it —
// typed objects and trees by id, written in batches that become durable all at once.
//
// Every object is content-addressed (its id is the keyed hash of its plaintext), encrypted and
// deduplicated like file chunks. Reads are authenticated. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/keys.h"
#include "store/pack.h"
#include "store/tree.h"
#include "strata/repository.h"

namespace strata::store {

// A batch of writes under a shared repository lock. Objects written through it are durable and
// readable by everyone once Commit() returns OK; destroying an uncommitted batch leaves only
// unreferenced packs (leftovers that `strata cleanup` removes). Used by one thread at a time;
// must be destroyed before the repository that made it.
class WriteBatch {
 public:
  virtual ~WriteBatch() = default;

  // Stores a small object (a commit, a chunk cut by the caller) and returns its id. It is kept
  // compressed where that saves at least 1/min_saving of its size (codec::Compress).
  virtual ObjectId Put(ObjectKind kind, std::string_view bytes, uint32_t min_saving = codec::kDefaultMinSaving) = 0;
  // Stores a directory listing and returns its id. Large directories are split into pages
  // (tree_pages.h); ReadTree reassembles them.
  virtual ObjectId PutTree(const Tree& tree) = 0;

  // Stores what is at `path` on disk (a file, a symlink, or a directory with everything below
  // it) and returns its tree entry, named `name`. With `reuse` (an entry previously stored
  // from the same path), files whose size and mtime are unchanged are not read again: their
  // stored chunks are reused, as git's index does.
  virtual Result<TreeEntry> PutPath(const std::string& path, std::string name, const TreeEntry* reuse) = 0;

  // Reads `in` to its end and stores it as file content, returning its size. Chunks are cut here
  // and stored by background workers, which fill in their ids: `*chunks` grows by one element
  // per chunk and must stay alive and unmoved until Flush() or Commit() returns, even when this
  // fails (a read error of `in` fails this call, not the batch).
  virtual Result<uint64_t> PutStream(SequentialFile* in, std::deque<ChunkRef>* chunks) = 0;
  // Waits until every chunk handed to PutStream is stored and its id set.
  virtual Status Flush() = 0;

  // Makes every object of the batch durable (packs, then their index file). The batch stays
  // usable: a later Commit makes what was written since durable.
  virtual Status Commit() = 0;
  virtual const PutStats& stats() const = 0;
};

struct BatchOptions {
  // The redundancy class (VolumeAdmin::SetClassPolicy) whose policy the batch's packs are
  // stored under: the lake names a dataset's. Empty, or a label without a class: the
  // repository's policy.
  std::string redundancy_class;
};

// What garbage collection keeps, and how hard it works to give space back.
struct GcOptions {
  // Live objects named by the layers above: each live commit's id and its root tree's id (a
  // kCommit object is a leaf to the store). Every put root (roots/, what `strata ls` lists) is
  // always live as well. Everything reachable from these through trees (every page of a paged
  // directory), chunk lists and file chunks is kept.
  std::vector<ObjectId> roots;
  // More roots, computed by the caller once gc holds the exclusive lock and has reloaded the
  // index: roots read from elsewhere (refs in a catalog) then cannot miss a writer that finished
  // between their computation and the lock. May read objects. An error stops gc, changing nothing.
  std::function<Result<std::vector<ObjectId>>()> live_roots;
  // Computes the report and changes nothing.
  bool dry_run = false;
  // A pack is rewritten (its live objects copied into a new pack) when more than this fraction
  // of its objects' stored bytes is dead. A pack with no live object is simply deleted.
  double repack_threshold = 0.3;
  // Packs (and temporaries) younger than this are never deleted or rewritten, whatever they
  // hold: objects a writer has committed but not yet named in a ref stay safe meanwhile.
  int64_t grace_seconds = 3600;
};

struct GcReport {
  uint64_t objects_total = 0;    // distinct indexed objects before
  uint64_t objects_live = 0;     // reachable from the roots
  uint64_t packs_deleted = 0;    // packs removed whole (no live object, or not indexed at all)
  uint64_t packs_repacked = 0;   // packs whose live objects were copied before removal
  uint64_t bytes_freed = 0;      // pack bytes removed, less bytes_rewritten
  uint64_t bytes_rewritten = 0;  // size of the new packs holding copied live objects
  bool dry_run = false;
};

// Moving objects between storage tiers (MoveToTier).
struct TierMoveOptions {
  // zstd level of the moved objects; -1: 19 for the archive tier, the repository's configured
  // level for the hot tier.
  int compression_level = -1;
  // Computes the report (objects and stored bytes that would move) and changes nothing.
  bool dry_run = false;
  // Threads that recompress; 0: the repository's (OpenOptions::threads).
  size_t threads = 0;
  // Objects these reach stay where they are even when `roots` reach them too (bringing one
  // version back to the hot tier leaves what it shares with other archived versions archived).
  std::vector<ObjectId> keep_roots;
  // Moving to the hot tier: the redundancy class (BatchOptions) whose packs the objects go into.
  std::string redundancy_class;
};

// Objects reached by `roots` (objects_kept: those also reached by keep_roots).
using TierMoveReport = TierMoveStats;

// A reader lists index/ or records/ again when a file it listed is gone (merged into a
// compacted file or segment meanwhile), at most this many times.
inline constexpr int kRelistPasses = 8;

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual Result<std::unique_ptr<WriteBatch>> NewBatch(const BatchOptions& options = {}) = 0;
  // Fails with kInvalidArgument if `id` is an object of another kind, kNotFound if absent.
  virtual Result<std::string> Read(const ObjectId& id, ObjectKind kind) = 0;
  virtual Result<Tree> ReadTree(const ObjectId& id) = 0;
  virtual bool Contains(const ObjectId& id) = 0;
  // The repository's keyed hash of `bytes` (the id an object with that plaintext would get).
  virtual ObjectId Hash(std::string_view bytes) = 0;
  // The repository's own Env and the directory where per-repository local state may live
  // (the catalog database).
  virtual Env* env() = 0;
  virtual std::string local_state_dir() = 0;
  // Key for MACs of local state (the audit chain), derived from the repository's MAC key.
  virtual const crypto::Key256& audit_key() = 0;

  // Durable, sealed records (JSON text) kept in the repository beside the objects: what the
  // layers above must not lose with their catalog (ref changes, audit heads). A record is
  // durable when AppendRecord returns OK; with `name_may_be_lost`, a power cut may still remove
  // it whole (never leave part of it), for a caller that writes it again when it finds it
  // missing. Records() returns them all, in no particular order.
  // `key`, when not empty ([0-9a-z], at most 64 characters), starts the record's name (then "-"
  // and randomness), so readers can find a record by its name without reading every one; the
  // name is bound to the sealed content, so a renamed record fails authentication.
  virtual Status AppendRecord(std::string_view json, std::string_view key = {}, bool name_may_be_lost = false) = 0;
  virtual Result<std::vector<std::string>> Records() = 0;
  // The names of every record, without reading any (one directory listing).
  virtual Result<std::vector<std::string>> RecordNames() = 0;
  // One record by name (kCorruption if it fails authentication, kNotFound if it is gone).
  virtual Result<std::string> ReadRecord(const std::string& name) = 0;
  // Removes records others now hold (absent ones are skipped).
  virtual Status DeleteRecords(const std::vector<std::string>& names) = 0;

  // Deletes what no root reaches (see GcOptions) and rewrites mostly dead packs. Takes the
  // exclusive repository lock for its whole run: fails at once with kFailedPrecondition
  // ("locked") while any put or WriteBatch is open, and puts started meanwhile are refused
  // likewise; gc never waits. Refuses (kCorruption, changing nothing) when an object reachable
  // from a root is missing or unreadable. Crash-safe at every step (gc.cc). A writer's objects
  // are protected only once a root names them, or by grace_seconds: keep a WriteBatch open
  // until the ref naming its objects is durable, or finish within the grace period.
  // Other processes that opened the repository before gc may fail to read objects that moved
  // (kNotFound on the old pack) and must reopen it.
  virtual Result<GcReport> CollectGarbage(const GcOptions& options) = 0;

  // Moves every object reachable from `roots` (trees, chunk lists and chunks below them; a
  // commit is a leaf) into packs of `tier`, recompressed at the tier's level; ids never
  // change, so every reference stays valid and reads go on working. Each pack holding such an
  // object outside the tier is rewritten: the reachable objects are opened, authenticated,
  // recompressed and resealed into new packs of `tier`; its other objects move unchanged (sealed
  // bytes) into new packs of the pack's own tier. Packs holding none are not touched, so moving
  // again what is already in the tier reads and writes nothing. Objects shared with other
  // versions move with it (a tier belongs to an object, not to a version).
  // Takes the exclusive repository lock like CollectGarbage (fails at once with
  // kFailedPrecondition while a put or WriteBatch runs) and replaces packs in gc's crash-safe
  // order (new packs, new index files, old index files deleted, old packs deleted; tier.cc):
  // a crash at any point leaves every object readable, in its old or its new pack.
  // kCorruption, changing nothing, when an object the roots reach is missing or unreadable.
  virtual Result<TierMoveReport> MoveToTier(const std::vector<ObjectId>& roots, StorageTier tier,
                                            const TierMoveOptions& options) = 0;
  // Moves the hot objects `roots` reach into packs of redundancy class `label` ("" = the
  // repository's policy) where their pack's policy survives fewer lost volumes than the class's
  // (so an object shared by datasets ends up under the strongest of their policies when each
  // dataset's move runs, whatever the order). Sealed bytes move unchanged; archived objects stay.
  // Locks, order and errors as MoveToTier. The packs are placed under their policy at once.
  virtual Result<TierMoveReport> MoveToClass(const std::vector<ObjectId>& roots, const std::string& label,
                                             const TierMoveOptions& options) = 0;
  // How many of the objects reachable from `roots` sit in packs of each tier, and their sealed
  // bytes (read-only; no lock).
  struct TierCount {
    uint64_t hot_objects = 0, hot_bytes = 0;
    uint64_t archive_objects = 0, archive_bytes = 0;
  };
  virtual Result<TierCount> CountTiers(const std::vector<ObjectId>& roots) = 0;
};

}  // namespace strata::store
