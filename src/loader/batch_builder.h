// Assembles a Batch from decoded records: first the layout (so the caller can wait for room
// in its memory budget before allocating), then one aligned buffer filled column by column.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "shard/format.h"
#include "strata/loader.h"

namespace strata::loader {

// Buffers of destroyed batches, kept for the next ones: a fresh buffer costs a page fault per
// 4 KiB on first touch, which was a tenth of the loader's CPU time. Thread-safe.
class BufferPool {
 public:
  // `shared`: buffers are memfds of their own (Batch::shared_fd), never reused.
  explicit BufferPool(uint64_t max_bytes, bool shared = false) : max_bytes_(max_bytes), shared_(shared) {}
  bool shared() const { return shared_; }
  ~BufferPool();
  // A buffer of exactly `size` bytes (a multiple of 4096), aligned to 4096.
  uint8_t* Take(uint64_t size);
  // Keeps the buffer if there is room, else frees it.
  void Give(uint8_t* p, uint64_t size);

 private:
  std::mutex mu_;
  uint64_t max_bytes_, bytes_ = 0;
  const bool shared_;
  std::vector<std::pair<uint64_t, uint8_t*>> free_;
};

class BatchBuilder {
 public:
  // `records[i]` are the fields of sample i (pointing into buffers that outlive Build).
  BatchBuilder(const shard::Schema& schema, const std::vector<std::vector<shard::FieldView>>& records);
  uint64_t nbytes() const { return total_; }
  std::unique_ptr<Batch> Build(const std::shared_ptr<BufferPool>& pool, std::vector<uint64_t> indices, uint64_t epoch, uint64_t batch_index,
                               uint64_t skipped, LoaderState state_after) const;

 private:
  const std::vector<std::vector<shard::FieldView>>& records_;
  std::vector<Column> columns_;
  uint64_t total_ = 0;
};

}  // namespace strata::loader
