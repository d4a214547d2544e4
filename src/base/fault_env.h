// FaultEnv: an EnvWrapper for tests that injects the faults storage code must survive:
// failed writes, torn writes, ENOSPC, lost fsyncs (SimulateCrash), and bit flips on read.
//
// It tracks, for each file written through it, how many bytes were durable at the last Sync,
// and which newly created files have not had their directory synced. SimulateCrash() applies
// what a power cut would do: truncates files to their synced size and deletes new files whose
// directory entry was never synced; a rename not followed by SyncDir of the destination's
// directory is undone (the source reappears, the destination gets back its old content).
//
// Simplifications, chosen so the model stays easy to trust (all err towards keeping data,
// except the last):
//  - Directories made with CreateDir(s) are durable at once; only files are tracked.
//  - A rename is committed by SyncDir of the destination's directory alone (real file systems
//    may also want the source's directory synced).
//  - Re-opening an existing file with NewWritableFile counts as truncating it to 0 durable
//    bytes; the old content does not come back after a crash.
//  - DeleteFile is durable at once (the file does not reappear after a crash).
// Tracking is by path (normalised lexically), so every path must name the file the same way
// up to "./", "//" and trailing slashes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "strata/env.h"

namespace strata {

// Thread-safe. The files it returns must not outlive it.
class FaultEnv : public EnvWrapper {
 public:
  explicit FaultEnv(Env* target, uint64_t seed = 1);

  // Every mutating call (create, Append, Sync, RenameFile, DeleteFile, SyncDir) fails with EIO
  // once `n` more succeed, and keeps failing. -1 disables. When `path_filter` is non-empty,
  // only calls on paths containing it count and fail.
  void FailWritesAfter(int64_t n, std::string path_filter = "");
  // Appends fail with ENOSPC (Status::NoSpace) once `bytes` more bytes have been appended in
  // total. -1 disables.
  void SetSpaceLimit(int64_t bytes);
  // While on, each failing Append first writes a random strict prefix of its data (a torn
  // write); for ENOSPC the prefix fits in the space left.
  void SetTornWrites(bool torn);
  // Each Read (RandomAccessFile or SequentialFile) flips one random bit of the bytes it
  // returns with probability 1/one_in (0 disables; 1 flips on every read). Paths containing
  // `path_filter` only, when it is non-empty.
  void SetReadBitFlips(uint32_t one_in, std::string path_filter = "");
  // Drops unsynced data and unsynced directory entries (see above). Files opened before the
  // crash become stale: their Append and Sync fail. Also disables FailWritesAfter (the machine
  // restarted); the space limit stays.
  Status SimulateCrash();
  // Number of faults injected so far (failed calls, ENOSPC, bit flips).
  uint64_t faults_injected() const;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status DeleteFile(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;

 private:
  class TrackedWritableFile;
  class FlippingRandomAccessFile;
  class FlippingSequentialFile;

  struct FileState {
    uint64_t size = 0;         // bytes appended so far
    uint64_t synced_size = 0;  // bytes durable at the last Sync
  };
  // A rename whose destination directory has not been synced since.
  struct PendingRename {
    std::string from, to;
    bool from_was_new = false;  // `from` itself was an unsynced new entry
    bool to_was_new = false;    // the old `to` was an unsynced new entry
    bool had_old_to = false;    // `to` was a regular file before; its durable bytes follow
    std::string old_to_data;
  };

  Result<std::unique_ptr<WritableFile>> OpenTracked(const std::string& path, bool exclusive);
  // The calls below expect mu_ held.
  Status MaybeFailWriteLocked(const std::string& path, const std::string& other = "");
  uint64_t RandomBelowLocked(uint64_t n);
  void MovePathLocked(const std::string& from, const std::string& to);
  Status RewriteLocked(const std::string& path, std::string_view data);
  void MaybeFlip(const std::string& path, uint8_t* data, size_t n);

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  uint64_t generation_ = 0;  // bumped by SimulateCrash so older handles know they are stale
  // Files are shared with their open handles, so a rename of an open file keeps them linked.
  std::map<std::string, std::shared_ptr<FileState>> files_;
  std::set<std::string> unsynced_entries_;  // created, parent dir not synced since
  std::vector<PendingRename> pending_renames_;  // in call order
  int64_t writes_left_ = -1;
  std::string write_filter_;
  int64_t space_left_ = -1;
  bool torn_ = false;
  uint32_t flip_one_in_ = 0;
  std::string flip_filter_;
  uint64_t faults_ = 0;
};

}  // namespace strata
