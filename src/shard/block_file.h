// Aligned reads of a shard: the one place the shard module calls the system directly, because
// Env's RandomAccessFile reads through the page cache and O_DIRECT needs aligned buffers,
// offsets and lengths.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "strata/status.h"

namespace strata::shard {

// A buffer aligned to 4096 bytes (what O_DIRECT needs on every Linux file system).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

// Positional reads of whole blocks. Thread-safe.
class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // Reads [offset, offset + n) into `dst`; offset, n and dst are multiples of 4096 for a
  // direct source. `*got` is short only at the end of the file.
  virtual Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const = 0;
  virtual uint64_t size() const = 0;
  virtual bool direct() const = 0;
};

// Opens `path` read-only, with O_DIRECT when `direct` and the file system allows it.
Result<std::unique_ptr<BlockSource>> OpenBlockFile(const std::string& path, bool direct);
// A shard held in memory (tests and the fuzz target).
std::unique_ptr<BlockSource> NewMemoryBlockSource(std::string bytes);

}  // namespace strata::shard
