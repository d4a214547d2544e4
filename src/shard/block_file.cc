#include "shard/block_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include <fmt/format.h>

namespace strata::shard {

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, std::max<size_t>(size, 4096)) != 0) throw std::bad_alloc();
  data_.reset(static_cast<uint8_t*>(p));
}

namespace {

class PosixBlockFile final : public BlockSource {
 public:
  PosixBlockFile(int fd, std::string path, uint64_t size, bool direct)
      : fd_(fd), path_(std::move(path)), size_(size), direct_(direct) {}
  ~PosixBlockFile() override { ::close(fd_); }

  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *got = done;
        return Status::FromErrno(errno, fmt::format("cannot read shard {} at offset {}", path_, offset + done));
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
      // A direct read that ends inside the last block returns its bytes and then 0: stop at
      // the unaligned end rather than ask again from an unaligned offset.
      if (done % 4096 != 0) break;
    }
    *got = done;
    return Status::OK();
  }
  uint64_t size() const override { return size_; }
  bool direct() const override { return direct_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
  bool direct_;
};

class MemoryBlockSource final : public BlockSource {
 public:
  explicit MemoryBlockSource(std::string bytes) : bytes_(std::move(bytes)) {}
  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    if (offset >= bytes_.size()) {
      *got = 0;
      return Status::OK();
    }
    *got = std::min<uint64_t>(n, bytes_.size() - offset);
    std::memcpy(dst, bytes_.data() + offset, *got);
    return Status::OK();
  }
  uint64_t size() const override { return bytes_.size(); }
  bool direct() const override { return false; }

 private:
  std::string bytes_;
};

}  // namespace

Result<std::unique_ptr<BlockSource>> OpenBlockFile(const std::string& path, bool direct) {
  int fd = -1;
  bool is_direct = false;
  if (direct) {
    do fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    is_direct = fd >= 0;
    // EINVAL: the file system has no O_DIRECT (tmpfs); read through the page cache instead.
    if (fd < 0 && errno != EINVAL) return Status::FromErrno(errno, fmt::format("cannot open shard {}", path));
  }
  if (fd < 0) {
    do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return Status::FromErrno(errno, fmt::format("cannot open shard {}", path));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(err, fmt::format("cannot stat shard {}", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(fmt::format("shard {} is not a regular file", path));
  }
  return std::unique_ptr<BlockSource>(
      new PosixBlockFile(fd, path, static_cast<uint64_t>(st.st_size), is_direct));
}

std::unique_ptr<BlockSource> NewMemoryBlockSource(std::string bytes) {
  return std::make_unique<MemoryBlockSource>(std::move(bytes));
}

}  // namespace strata::shard
