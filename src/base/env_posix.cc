// The POSIX Env: thin wrappers over the system calls, with the two loops every caller would
// otherwise forget (retry on EINTR, continue after a short write) and an error message that
// names the operation and the path.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "strata/env.h"

#include "base/temp_name.h"

namespace strata {
namespace {

// Calls `fn` until it stops failing with EINTR (a signal arrived before any work was done).
template <class Fn>
auto RetryOnEintr(Fn fn) {
  decltype(fn()) r;
  do {
    r = fn();
  } while (r < 0 && errno == EINTR);
  return r;
}

Status ErrnoStatus(std::string_view op, const std::string& path) {
  int err = errno;
  return Status::FromErrno(err, fmt::format("cannot {} {}", op, path));
}

Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& path) {
  const uint8_t* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path);
    }
    // A short write is not an error (a signal, a pipe, a quota edge): write the rest; if the
    // disk is really full the next call says so with ENOSPC.
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Status::OK();
}

// utimensat's times: the access time left alone, the modification time set.
void ModificationTimes(int64_t mtime_ns, struct timespec times[2]) {
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  // Floor division, so times before the epoch keep a non-negative tv_nsec.
  int64_t sec = mtime_ns / 1'000'000'000;
  int64_t nsec = mtime_ns % 1'000'000'000;
  if (nsec < 0) {
    nsec += 1'000'000'000;
    sec -= 1;
  }
  times[1].tv_sec = static_cast<time_t>(sec);
  times[1].tv_nsec = static_cast<long>(nsec);
}

// An unnamed file (O_TMPFILE) in the destination's directory, linked in by Publish(). When a
// file already has the name, the unnamed one is linked under a temporary name and renamed over
// it, since link(2) never replaces.
class LinkedPendingFile final : public PendingFile {
 public:
  LinkedPendingFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~LinkedPendingFile() override {
    if (fd_ >= 0) ::close(fd_);  // an unlinked inode: closing frees it
  }

  Status Append(std::span<const uint8_t> data) override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("{} is already published", path_));
    return WriteAll(fd_, data, path_);
  }

  Status Publish(uint32_t mode, int64_t mtime_ns) override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("{} is already published", path_));
    Status s = Link(mode, mtime_ns);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR && s.ok()) s = ErrnoStatus("close", path_);
    return s;
  }

 private:
  Status Link(uint32_t mode, int64_t mtime_ns) {
    if (::fchmod(fd_, static_cast<mode_t>(mode & 07777)) != 0) return ErrnoStatus("set mode of", path_);
    struct timespec times[2];
    ModificationTimes(mtime_ns, times);
    if (::futimens(fd_, times) != 0) return ErrnoStatus("set modification time of", path_);
    std::string self = fmt::format("/proc/self/fd/{}", fd_);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) == 0) return Status::OK();
    if (errno != EEXIST) return ErrnoStatus("create", path_);
    std::string tmp = TempNameFor(path_);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return ErrnoStatus("create", tmp);
    }
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      Status s = ErrnoStatus("replace", path_);
      ::unlink(tmp.c_str());
      return s;
    }
    return Status::OK();
  }

  int fd_;
  std::string path_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::span<const uint8_t> data) override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("write to closed file {}", path_));
    STRATA_RETURN_IF_ERROR(WriteAll(fd_, data, path_));
    written_ += data.size();
    StartWriteback();
    return Status::OK();
  }

  Status Sync() override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("sync of closed file {}", path_));
    // fdatasync also flushes the metadata needed to read the data back (the file size), which
    // is all a crash-consistent reader needs; the mtime is not worth an extra journal write.
    if (RetryOnEintr([&] { return ::fdatasync(fd_); }) != 0) return ErrnoStatus("sync", path_);
    flushed_ = written_;
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("file {} closed twice", path_));
    int fd = fd_;
    fd_ = -1;
    // Never retry close(): on Linux the descriptor is released even when it reports EINTR, and
    // a retry could close a descriptor another thread has just been given.
    if (::close(fd) != 0 && errno != EINTR) return ErrnoStatus("close", path_);
    return Status::OK();
  }

 private:
  // The kernel starts writing dirty pages back only when they pass a share of memory (GBs on
  // a large machine), so a file written and then fsynced would have the disk idle while it is
  // written and the writer idle while it is synced. Asking for write-back of every full
  // kWritebackBytes behind the writer overlaps the two: Sync() then waits only for the tail,
  // and a large file never fills the page cache with dirty pages. Purely a hint: durability
  // still comes from Sync(), and an error here reappears there.
  static constexpr uint64_t kWritebackBytes = 8u << 20;
  void StartWriteback() {
    if (written_ - flushed_ < kWritebackBytes) return;
    uint64_t len = (written_ - flushed_) / kWritebackBytes * kWritebackBytes;
    (void)::sync_file_range(fd_, static_cast<off_t>(flushed_), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE);
    flushed_ += len;
  }

  int fd_;
  std::string path_;
  uint64_t written_ = 0;  // bytes appended
  uint64_t flushed_ = 0;  // bytes handed to write-back (or synced)
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *got = done;
        return ErrnoStatus("read", path_);
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::OK();
  }

  Result<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return ErrnoStatus("stat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  int fd_;
  std::string path_;
};

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixSequentialFile() override { ::close(fd_); }

  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    // Fill the whole request unless the file ends, so callers can treat a short read as EOF.
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::read(fd_, dst + done, n - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        *got = done;
        return ErrnoStatus("read", path_);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
};

// Aligned staging buffers of closed direct files, kept for the next ones: a fresh 8 MiB buffer
// costs 2,048 page faults and their zeroing, per file (a pack spread over volumes writes six).
class StagingBuffers {
 public:
  static constexpr size_t kAlign = Env::kDirectIoAlign;
  static constexpr size_t kSize = 8u << 20;
  static constexpr size_t kKeep = 4;

  static uint8_t* Take() {
    Kept& k = kept();
    {
      std::lock_guard<std::mutex> l(k.mu);
      if (!k.free.empty()) {
        uint8_t* b = k.free.back();
        k.free.pop_back();
        return b;
      }
    }
    void* b = nullptr;
    return posix_memalign(&b, kAlign, kSize) == 0 ? static_cast<uint8_t*>(b) : nullptr;
  }
  static void Give(uint8_t* b) {
    if (!b) return;
    Kept& k = kept();
    {
      std::lock_guard<std::mutex> l(k.mu);
      if (k.free.size() < kKeep) {
        k.free.push_back(b);
        return;
      }
    }
    std::free(b);
  }

 private:
  struct Kept {
    std::mutex mu;
    std::vector<uint8_t*> free;
  };
  // Never destroyed: files may close during exit, and kept buffers stay reachable.
  static Kept& kept() {
    static Kept* k = new Kept;
    return *k;
  }
};

// A file written with O_DIRECT from an aligned staging buffer. Full buffers are written as
// they fill; Sync() writes the partial tail padded to the alignment, then truncates the file
// to its real length and syncs. The tail stays in the buffer, so appends after a Sync() simply
// rewrite that block.
class DirectWritableFile final : public WritableFile {
 public:
  static constexpr size_t kAlign = StagingBuffers::kAlign;
  static constexpr size_t kBufferSize = StagingBuffers::kSize;

  DirectWritableFile(int fd, std::string path, uint8_t* buffer)
      : fd_(fd), path_(std::move(path)), buf_(buffer, &StagingBuffers::Give) {}
  ~DirectWritableFile() override {
    if (fd_ >= 0) (void)Close();
  }

  Status Append(std::span<const uint8_t> data) override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("write to closed file {}", path_));
    // Whole aligned blocks from an aligned caller's buffer, with nothing buffered before them,
    // are written from where they are (a caller with its own aligned staging saves a copy).
    if (used_ == 0 && data.size() >= kAlign && reinterpret_cast<uintptr_t>(data.data()) % kAlign == 0) {
      size_t whole = data.size() / kAlign * kAlign;
      STRATA_RETURN_IF_ERROR(WriteAt(data.data(), offset_, whole));
      offset_ += whole;
      data = data.subspan(whole);
    }
    while (!data.empty()) {
      size_t take = std::min(data.size(), kBufferSize - used_);
      std::memcpy(buf_.get() + used_, data.data(), take);
      used_ += take;
      tail_written_ = false;
      data = data.subspan(take);
      if (used_ == kBufferSize) {
        STRATA_RETURN_IF_ERROR(WriteAt(buf_.get(), offset_, kBufferSize));
        offset_ += kBufferSize;
        used_ = 0;
      }
    }
    return Status::OK();
  }

  Status Sync() override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("sync of closed file {}", path_));
    STRATA_RETURN_IF_ERROR(WriteTail());
    if (RetryOnEintr([&] { return ::fdatasync(fd_); }) != 0) return ErrnoStatus("sync", path_);
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::FailedPrecondition(fmt::format("file {} closed twice", path_));
    Status s = WriteTail();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR && s.ok()) s = ErrnoStatus("close", path_);
    return s;
  }

 private:
  Status WriteAt(const uint8_t* src, uint64_t offset, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::pwrite(fd_, src + done, n - done, static_cast<off_t>(offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_);
      }
      done += static_cast<size_t>(w);
    }
    return Status::OK();
  }

  // Writes the buffered tail (zero-padded to the alignment) and cuts the file to its length;
  // nothing when that was done since the last append (Close after Sync).
  Status WriteTail() {
    if (used_ == 0 || tail_written_) return Status::OK();
    size_t padded = (used_ + kAlign - 1) / kAlign * kAlign;
    std::memset(buf_.get() + used_, 0, padded - used_);
    STRATA_RETURN_IF_ERROR(WriteAt(buf_.get(), offset_, padded));
    if (RetryOnEintr([&] { return ::ftruncate(fd_, static_cast<off_t>(offset_ + used_)); }) != 0) {
      return ErrnoStatus("truncate", path_);
    }
    tail_written_ = true;
    return Status::OK();
  }

  int fd_;
  std::string path_;
  std::unique_ptr<uint8_t, decltype(&StagingBuffers::Give)> buf_;
  size_t used_ = 0;      // bytes in the buffer, not yet written in full blocks
  bool tail_written_ = false;  // those bytes are in the file (padded, then truncated)
  uint64_t offset_ = 0;  // file offset of the buffer's first byte
};

FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

FileInfo InfoOf(const struct stat& st) {
  FileInfo info;
  info.type = TypeOf(st.st_mode);
  info.size = static_cast<uint64_t>(st.st_size);
  info.mode = st.st_mode & 07777;
  info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  info.inode = st.st_ino;
  info.device = st.st_dev;
  return info;
}

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~PosixMappedFile() override {
    if (addr_ != nullptr) ::munmap(addr_, size_);
  }
  std::span<const uint8_t> data() const override { return {static_cast<const uint8_t*>(addr_), size_}; }

 private:
  void* addr_;
  size_t size_;
};

// Calls fn(directory descriptor, name) for each entry of `dir` but "." and "..", over one
// open of the directory; stops at the first error fn returns.
template <class Fn>
Status ForEachName(const std::string& dir, Fn fn) {
  DIR* d = ::opendir(dir.c_str());  // glibc opens with O_CLOEXEC
  if (d == nullptr) return ErrnoStatus("list directory", dir);
  Status s;
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) s = ErrnoStatus("list directory", dir);
      break;
    }
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    s = fn(::dirfd(d), name);
    if (!s.ok()) break;
  }
  ::closedir(d);
  return s;
}

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return OpenForWrite(path, O_TRUNC);
  }

  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& path) override {
    return OpenForWrite(path, O_EXCL);
  }

  Result<std::unique_ptr<WritableFile>> NewStreamingFile(const std::string& path) override {
    int fd = RetryOnEintr(
        [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0644); });
    if (fd < 0 && errno == EINVAL) return NewExclusiveFile(path);  // no O_DIRECT here (tmpfs)
    if (fd < 0) return ErrnoStatus("create", path);
    uint8_t* buffer = StagingBuffers::Take();
    if (!buffer) {
      ::close(fd);
      ::unlink(path.c_str());
      return Status::NoSpace(fmt::format("cannot allocate a write buffer for {}", path));
    }
    return std::unique_ptr<WritableFile>(new DirectWritableFile(fd, path, buffer));
  }

  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus("open", path);
    return std::unique_ptr<RandomAccessFile>(new PosixRandomAccessFile(fd, path));
  }

  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus("open", path);
    // Purely a hint (read-ahead); failure changes nothing.
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<SequentialFile>(new PosixSequentialFile(fd, path));
  }

  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus("open", path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Status s = ErrnoStatus("stat", path);
      ::close(fd);
      return s;
    }
    size_t size = static_cast<size_t>(st.st_size);
    void* addr = nullptr;
    if (size > 0) {
      addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (addr == MAP_FAILED) {
        Status s = ErrnoStatus("mmap", path);
        ::close(fd);
        return s;
      }
    }
    ::close(fd);  // the mapping keeps the file
    return std::unique_ptr<MappedFile>(new PosixMappedFile(addr, size));
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path);
    return InfoOf(st);
  }

  Result<std::vector<std::pair<std::string, FileInfo>>> ListDirInfo(const std::string& dir) override {
    std::vector<std::pair<std::string, FileInfo>> out;
    STRATA_RETURN_IF_ERROR(ForEachName(dir, [&](int fd, std::string_view name) {
      std::string n(name);
      struct stat st;
      if (::fstatat(fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoStatus("stat", JoinPath(dir, n));
      out.emplace_back(std::move(n), InfoOf(st));
      return Status::OK();
    }));
    return out;
  }


  bool FileExists(const std::string& path) override {
    // lstat, like Stat: a dangling symlink is an existing entry.
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::vector<std::string> names;
    STRATA_RETURN_IF_ERROR(ForEachName(dir, [&](int, std::string_view name) {
      names.emplace_back(name);
      return Status::OK();
    }));
    return names;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::string buf(256, '\0');
    for (;;) {
      ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
      if (n < 0) return ErrnoStatus("read link", path);
      // readlink truncates silently; a full buffer may mean the target was cut short.
      if (static_cast<size_t>(n) < buf.size()) {
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
      buf.resize(buf.size() * 2);
    }
  }

  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) == 0) return Status::OK();
    if (errno == EEXIST) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::OK();
      return Status::AlreadyExists(fmt::format("cannot create directory {}: a file is in the way", path));
    }
    return ErrnoStatus("create directory", path);
  }

  Status CreateDirs(const std::string& path) override {
    if (path.empty()) return Status::InvalidArgument("cannot create a directory with an empty path");
    // Create each prefix in turn; the common case (all parents exist) costs one mkdir per
    // component, which is cheap next to the I/O that follows.
    for (size_t pos = 1; pos <= path.size(); ++pos) {
      if (pos != path.size() && path[pos] != '/') continue;
      std::string prefix = path.substr(0, pos);
      if (prefix.back() == '/') continue;
      STRATA_RETURN_IF_ERROR(CreateDir(prefix));
    }
    return Status::OK();
  }

  Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("delete", path);
    return Status::OK();
  }

  Status DeleteDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return ErrnoStatus("delete directory", path);
    return Status::OK();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      int err = errno;
      return Status::FromErrno(err, fmt::format("cannot rename {} to {}", from, to));
    }
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = RetryOnEintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus("open directory", dir);
    Status s;
    if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) s = ErrnoStatus("sync directory", dir);
    ::close(fd);
    return s;
  }

  Status CreateSymlink(const std::string& target, const std::string& path) override {
    if (::symlink(target.c_str(), path.c_str()) != 0) return ErrnoStatus("create symlink", path);
    return Status::OK();
  }

  Status SetMode(const std::string& path, uint32_t mode) override {
    // chmod follows symlinks, which would change the link's target; Linux symlinks have no
    // mode of their own, so there is nothing to set on them.
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus("set mode of", path);
    if (S_ISLNK(st.st_mode)) return Status::OK();
    if (::chmod(path.c_str(), static_cast<mode_t>(mode & 07777)) != 0) return ErrnoStatus("set mode of", path);
    return Status::OK();
  }

  Status SetMtime(const std::string& path, int64_t mtime_ns) override {
    struct timespec times[2];
    ModificationTimes(mtime_ns, times);
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus("set modification time of", path);
    }
    return Status::OK();
  }

  Result<std::unique_ptr<PendingFile>> NewPendingFile(const std::string& path) override {
    // Linking an unnamed file back in needs /proc (linkat with AT_EMPTY_PATH needs a
    // capability); file systems without O_TMPFILE refuse it. Either way: the portable file.
    static const bool have_proc = ::access("/proc/self/fd", X_OK) == 0;
    if (have_proc) {
      std::string dir(Dirname(path));
      int fd = RetryOnEintr([&] { return ::open(dir.c_str(), O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600); });
      if (fd >= 0) return std::unique_ptr<PendingFile>(new LinkedPendingFile(fd, path));
      if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return ErrnoStatus("create", path);
    }
    return Env::NewPendingFile(path);
  }

  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 private:
  Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path, int extra_flags) {
    int fd = RetryOnEintr(
        [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags, 0644); });
    if (fd < 0) return ErrnoStatus("create", path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }
};

}  // namespace

Env* Env::Default() {
  // Leaked on purpose: files may be closed from static destructors after main returns.
  static Env* env = new PosixEnv();
  return env;
}

}  // namespace strata
