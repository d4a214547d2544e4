// Env: every file-system call strata makes goes through this interface, so tests can swap in a
// fault-injecting implementation (failed or torn writes, lost fsyncs, ENOSPC, bit flips).
//
// Durability is explicit: bytes appended to a WritableFile survive a power cut only after
// Sync() returns OK; a newly created, renamed or deleted directory entry survives only after
// SyncDir() on its parent returns OK. No method syncs anything implicitly.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/status.h"

namespace strata {

// A file open for appending. Used by one thread at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Makes every byte appended so far durable.
  virtual Status Sync() = 0;
  // Closes the file (without syncing). Further calls fail. The destructor closes too.
  virtual Status Close() = 0;
};

// A file open for positional reads. Safe for concurrent use by several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `dst`; `*got` is the count read (less than `n` only
  // at end of file). On error `*got` is unspecified.
  virtual Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const = 0;
  virtual Result<uint64_t> Size() const = 0;
};

// A file read from start to end. Used by one thread at a time.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to `n` bytes; `*got` == 0 means end of file.
  virtual Status Read(size_t n, uint8_t* dst, size_t* got) = 0;
};

// A read-only view of a whole file's bytes, valid for the object's lifetime. The file must not be
// changed in place while mapped (strata replaces such files by rename, which leaves a mapping
// on the old content intact).
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual std::span<const uint8_t> data() const = 0;
};

// A restored user file: written in full, then published at its path (replacing a file there)
// with its mode and mtime, so the path never shows a partial file. Destroyed unpublished, it
// leaves nothing behind. Not synced: restores are not durable until the caller syncs them.
// Used by one thread at a time.
class PendingFile {
 public:
  virtual ~PendingFile() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  virtual Status Publish(uint32_t mode, int64_t mtime_ns) = 0;
};

enum class FileType : uint8_t { kRegular = 0, kDirectory = 1, kSymlink = 2, kOther = 3 };

struct FileInfo {
  FileType type = FileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;       // permission bits (07777)
  int64_t mtime_ns = 0;    // modification time, nanoseconds since the epoch
  uint64_t inode = 0;
  uint64_t device = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX implementation. Never deleted.
  static Env* Default();

  // Creates (or truncates) `path` for writing. The new directory entry is not durable until
  // SyncDir(parent).
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Creates `path` for writing; fails with kAlreadyExists if it exists (O_EXCL).
  virtual Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& path) = 0;
  // Like NewExclusiveFile, for large files written once from start to end (packs): bypasses
  // the page cache where the file system allows (O_DIRECT), which on many disks is several
  // times faster than buffered writes followed by fsync. Same durability contract. The default
  // is the buffered file, so wrappers that do not care need not override it. An Append of
  // bytes that start on a kDirectIoAlign boundary, with nothing buffered before them, sends
  // their whole aligned blocks straight from the caller's memory (no copy into a staging buffer).
  static constexpr size_t kDirectIoAlign = 4096;
  virtual Result<std::unique_ptr<WritableFile>> NewStreamingFile(const std::string& path) {
    return NewExclusiveFile(path);
  }
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  // Maps `path` read-only. The default reads the whole file through NewRandomAccessFile (so
  // wrappers that inject read faults affect it); the POSIX Env maps it with mmap(2), so pages
  // are read only when touched.
  virtual Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path);

  // Does not follow a final symlink (lstat).
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // The entries of `dir` with their Stat (lstat), in no particular order. The default stats each
  // joined path; the POSIX Env stats each name relative to the open directory (one path lookup
  // per entry instead of one per component: a rescan of many small files is mostly stats).
  virtual Result<std::vector<std::pair<std::string, FileInfo>>> ListDirInfo(const std::string& dir);
  virtual Result<std::string> ReadLink(const std::string& path) = 0;

  // Creates one directory; OK if it already exists as a directory.
  virtual Status CreateDir(const std::string& path) = 0;
  // Creates `path` and every missing parent.
  virtual Status CreateDirs(const std::string& path) = 0;
  virtual Status DeleteFile(const std::string& path) = 0;
  virtual Status DeleteDir(const std::string& path) = 0;
  // Atomically replaces `to` by `from` (rename(2)). Durable after SyncDir of both parents.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Makes the directory's entries (creations, renames, deletions) durable.
  virtual Status SyncDir(const std::string& dir) = 0;

  // Restoring user files.
  virtual Status CreateSymlink(const std::string& target, const std::string& path) = 0;
  virtual Status SetMode(const std::string& path, uint32_t mode) = 0;
  virtual Status SetMtime(const std::string& path, int64_t mtime_ns) = 0;
  // Starts a file that appears at `path` only on Publish(). The default writes a temporary
  // name beside `path` and renames it into place; the POSIX Env writes an unnamed file
  // (O_TMPFILE) and links it in: one directory entry made instead of two made and one removed.
  virtual Result<std::unique_ptr<PendingFile>> NewPendingFile(const std::string& path);

  virtual int64_t NowMicros() = 0;
};

// Forwards every call to another Env, so a test double overrides only what it needs.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override { return target_->NewWritableFile(p); }
  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& p) override { return target_->NewExclusiveFile(p); }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& p) override { return target_->NewRandomAccessFile(p); }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& p) override { return target_->NewSequentialFile(p); }
  Result<FileInfo> Stat(const std::string& p) override { return target_->Stat(p); }
  bool FileExists(const std::string& p) override { return target_->FileExists(p); }
  Result<std::vector<std::string>> ListDir(const std::string& d) override { return target_->ListDir(d); }
  Result<std::string> ReadLink(const std::string& p) override { return target_->ReadLink(p); }
  Status CreateDir(const std::string& p) override { return target_->CreateDir(p); }
  Status CreateDirs(const std::string& p) override { return target_->CreateDirs(p); }
  Status DeleteFile(const std::string& p) override { return target_->DeleteFile(p); }
  Status DeleteDir(const std::string& p) override { return target_->DeleteDir(p); }
  Status RenameFile(const std::string& f, const std::string& t) override { return target_->RenameFile(f, t); }
  Status SyncDir(const std::string& d) override { return target_->SyncDir(d); }
  Status CreateSymlink(const std::string& t, const std::string& p) override { return target_->CreateSymlink(t, p); }
  Status SetMode(const std::string& p, uint32_t m) override { return target_->SetMode(p, m); }
  Status SetMtime(const std::string& p, int64_t t) override { return target_->SetMtime(p, t); }
  int64_t NowMicros() override { return target_->NowMicros(); }

 private:
  Env* target_;
};

// Helpers built on Env.
// Reads a whole file.
Result<std::string> ReadFileToString(Env* env, const std::string& path);
// Durably writes `data` to `path`: temp file in the same directory, Sync, rename, SyncDir.
// A crash leaves either the old content or the new, never a mix.
Status WriteFileAtomic(Env* env, const std::string& path, std::span<const uint8_t> data);
Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data);

// Path helpers.
std::string JoinPath(std::string_view a, std::string_view b);
std::string_view Dirname(std::string_view path);
std::string_view Basename(std::string_view path);

}  // namespace strata
