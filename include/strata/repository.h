// Repository: one strata store — an encrypted, deduplicated, verified object store.
//
//   auto repo = strata::Repository::Create("/srv/lake", "passphrase", {});
//   auto root = (*repo)->PutPaths({"/data/fmnist"});        // -> tree id
//   auto file = (*repo)->OpenFile(*root, "fmnist/train.idx"); // random-access reader
//
// Content is cut into chunks (FastCDC), named by a keyed hash, compressed, encrypted and
// stored in packs. Every read is authenticated; corruption is reported, never returned.
// A Repository is safe for use by several threads; several processes may put at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/env.h"
#include "strata/object_id.h"
#include "strata/status.h"

namespace strata {

namespace store {
class ObjectStore;
}
class VolumeAdmin;  // strata/volumes.h

struct OpenOptions {
  Env* env = Env::Default();
  // Worker threads for put and verify; 0 = one per core.
  size_t threads = 0;
  // Draw progress bars on stderr (only when it is a terminal).
  bool progress = false;
  // The local index cache (docs/FORMAT.md, "Index cache") is rewritten when at least this many
  // indexed entries (or an eighth of the cache, whichever is more) are outside it; 0 never
  // writes one (an existing cache is still used). Entries outside it are decrypted, parsed and
  // hashed by every open, about 0.6 us each (at 50,000 a repository of 30,000 objects spent
  // 20 ms of every command on them).
  uint64_t index_cache_fold_entries = 4096;
};

struct InitOptions {
  // Content-defined chunking: min <= avg <= max, avg a power of two.
  uint32_t chunk_min = 256u << 10;
  uint32_t chunk_avg = 1u << 20;
  uint32_t chunk_max = 4u << 20;
  int compression_level = 3;             // zstd level; 0 stores everything raw
  uint32_t pack_size = 32u << 20;        // target size of a pack file
  uint64_t kdf_ops = 2;                  // Argon2id passes
  uint64_t kdf_mem = 64ull << 20;        // Argon2id memory, bytes
  std::string key_label;                 // label of the first key slot (default user@host)
};

// Where a pack's objects sit: the hot tier (the repository's compression level, the volumes'
// redundancy policy) or the archive tier (zstd at a high level, the archive policy when one is
// set). An object's tier is its pack's; moving it between tiers never changes its id.
enum class StorageTier : uint8_t { kHot, kArchive };
const char* StorageTierName(StorageTier tier);  // "hot", "archive"
// kInvalidArgument for anything but "hot" and "archive".
Result<StorageTier> ParseStorageTier(std::string_view name);

// What moving the objects of a version between tiers did (or, in a dry run, would do).
struct TierMoveStats {
  uint64_t objects_reachable = 0;  // objects the version reaches (commit, trees, chunks)
  uint64_t objects_moved = 0;      // of those, the ones not yet in the target tier
  uint64_t objects_in_tier = 0;    // already in the target tier: left where they are
  uint64_t objects_kept = 0;       // restore: shared with another archived version, left archived
  uint64_t stored_before = 0;      // sealed bytes of the moved objects before the move
  uint64_t stored_after = 0;       // ... and after (recompressed); estimated as before in a dry run
  uint64_t raw_bytes = 0;          // plaintext bytes of the moved objects
  uint64_t packs_rewritten = 0;    // packs that held a moved object (deleted at the end)
  uint64_t packs_written = 0;      // new packs (target tier, and the rest of rewritten packs)
  uint64_t objects_copied = 0;     // other objects of rewritten packs, copied unchanged
  bool dry_run = false;
  double seconds = 0;
};

// One entry of a listing (ls).
struct EntryInfo {
  std::string path;  // relative to the listed directory
  enum class Type { kFile, kDirectory, kSymlink } type = Type::kFile;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  std::string target;  // symlinks
  size_t chunks = 0;
};

// A recorded put: what it stored and when.
struct RootInfo {
  std::string name;  // the root record's name
  ObjectId id;       // a tree (put of paths) or a chunk list (put of a stream)
  bool is_stream = false;
  int64_t time_unix = 0;
  std::string host;
  std::vector<std::string> paths;
  uint64_t bytes = 0;
  uint64_t files = 0;
};

struct PutStats {
  uint64_t files = 0, bytes = 0;             // files read and their bytes
  uint64_t dirs = 0;                         // directory trees built (not those reused unchanged)
  uint64_t unchanged_files = 0;              // files recognised by size and mtime, not read
  uint64_t unchanged_bytes = 0;
  uint64_t chunks = 0, new_chunks = 0;
  uint64_t new_bytes = 0;                    // raw bytes of new chunks
  uint64_t stored_bytes = 0;                 // bytes added to packs (compressed + encrypted)
  std::vector<std::string> skipped;          // special files (devices, sockets) left out
  double seconds = 0;
};

struct RepositoryStats {
  uint64_t logical_bytes = 0;  // content of every recorded put, counted in full
  uint64_t unique_bytes = 0;   // plaintext of distinct data chunks (file content)
  uint64_t stored_bytes = 0;   // size of pack files
  uint64_t objects = 0, data_chunks = 0, trees = 0, packs = 0, index_files = 0, roots = 0;
  double dedup_ratio() const { return unique_bytes ? double(logical_bytes) / unique_bytes : 1.0; }
  double compression_ratio() const { return stored_bytes ? double(unique_bytes) / stored_bytes : 1.0; }
};

struct VerifyReport {
  uint64_t packs_checked = 0, objects_checked = 0, bytes_read = 0, trees_checked = 0;
  std::vector<std::string> errors;    // each names what failed and where
  std::vector<std::string> warnings;  // harmless leftovers (e.g. packs of an interrupted put)
  bool ok() const { return errors.empty(); }
};

struct KeySlotInfo {
  std::string id;
  std::string label;
  int64_t created_unix = 0;
  bool current = false;  // the slot that opened this session
};

// Random access to one file's content. Thread-compatible (one reader per thread).
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual uint64_t size() const = 0;
  // Reads up to `n` bytes at `offset`; `*got` < n only at the end. Every chunk is
  // authenticated before any of its bytes are returned: after an error, `dst` may hold bytes of
  // the chunks that passed, or zeros, never bytes that failed.
  virtual Status ReadAt(uint64_t offset, size_t n, uint8_t* dst, size_t* got) = 0;
};

class Repository {
 public:
  virtual ~Repository() = default;

  static Result<std::unique_ptr<Repository>> Create(const std::string& url, std::string_view passphrase,
                                                    const InitOptions& init, const OpenOptions& options = {});
  // kNotFound: not a repository; kUnauthenticated: wrong passphrase; kUnsupported: newer format.
  static Result<std::unique_ptr<Repository>> Open(const std::string& url, std::string_view passphrase,
                                                  const OpenOptions& options = {});
  // Opens with the keys `Unlock` cached for the current user (docs/SECURITY.md, "Unlocked
  // keys"), without a passphrase. kNotFound when there is no usable entry: none, expired, or its
  // key slot was removed from the repository; kPermissionDenied when the cache directory or file
  // is accessible to others or owned by someone else (it is then not used).
  static Result<std::unique_ptr<Repository>> OpenUnlocked(const std::string& url, const OpenOptions& options = {});
  // Removes the cached keys of the repository at `url` (OK when there are none).
  static Status Lock(const std::string& url, const OpenOptions& options = {});
  // Caches this repository's keys for the current user for `seconds` (`strata unlock`).
  virtual Status Unlock(int64_t seconds) = 0;

  // Stores files and directories (names, sizes, modes, mtimes, symlinks) under one new tree
  // whose entries are the basenames of `paths`; records it as a root and returns its id.
  // Durable when it returns: a crash before then leaves the repository as it was.
  virtual Result<ObjectId> PutPaths(const std::vector<std::string>& paths, PutStats* stats = nullptr) = 0;
  // Stores a byte stream; returns the id of its chunk list (readable with OpenBlob).
  virtual Result<ObjectId> PutStream(SequentialFile* in, PutStats* stats = nullptr) = 0;

  // `id` is a tree (then `path` names a file in it) or a stream's chunk list (`path` empty).
  virtual Result<std::unique_ptr<BlobReader>> OpenFile(const ObjectId& id, std::string_view path) = 0;
  virtual Result<std::vector<EntryInfo>> List(const ObjectId& tree, std::string_view path, bool recursive) = 0;
  // Restores `path` of `tree` (all of it when empty) into directory `dest`, with modes, mtimes
  // and symlinks. Files are written under temporary names and renamed when complete.
  virtual Status Restore(const ObjectId& tree, std::string_view path, const std::string& dest,
                         uint64_t* bytes_written = nullptr) = 0;
  // Resolves a full id or a unique hex prefix of a tree or stream.
  virtual Result<ObjectId> ResolveId(std::string_view text) = 0;
  virtual Result<std::vector<RootInfo>> Roots() = 0;

  // Checks packs, indexes and every root's trees; with read_data, decrypts every object and
  // checks its keyed hash.
  virtual Result<VerifyReport> Verify(bool read_data) = 0;
  virtual Result<RepositoryStats> Stats() = 0;

  // Rebuilds the chunk index from the packs' own indexes (exclusive lock).
  virtual Result<VerifyReport> RepairIndex() = 0;
  // Removes leftovers of interrupted puts: temporaries and packs no index lists (exclusive lock).
  virtual Result<size_t> CleanLeftovers() = 0;

  virtual Result<std::vector<KeySlotInfo>> ListKeys() = 0;
  virtual Result<std::string> AddKey(std::string_view passphrase, std::string label) = 0;
  // Refuses to remove the last slot, or the current one unless `allow_current`.
  virtual Status RemoveKey(std::string_view slot_id, bool allow_current = false) = 0;
  // Rewrites only the current key slot; no data is touched.
  virtual Status ChangePassphrase(std::string_view new_passphrase) = 0;

  virtual std::string url() const = 0;

  // The typed object layer the versioning, checkpoint and registry layers build on
  // (src/store/object_store.h). Owned by the repository.
  virtual store::ObjectStore* objects() = 0;

  // Volumes, redundancy policy, scrub and repair (strata/volumes.h). Owned by the repository.
  virtual VolumeAdmin* volumes() = 0;
};

}  // namespace strata
