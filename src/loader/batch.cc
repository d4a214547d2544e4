#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "loader/batch_builder.h"

namespace strata::loader {
namespace {

constexpr uint64_t kColumnAlign = 64;
uint64_t Align(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// A buffer of `size` bytes in a memfd of its own, mapped shared; throws std::bad_alloc (as
// allocation does) when the system refuses.
uint8_t* MapShared(uint64_t size, int* fd) {
  *fd = ::memfd_create("strata-batch", MFD_CLOEXEC);
  if (*fd < 0) throw std::bad_alloc();
  void* p = MAP_FAILED;
  if (::ftruncate(*fd, static_cast<off_t>(size)) == 0) {
    p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  }
  if (p == MAP_FAILED) {
    ::close(*fd);
    throw std::bad_alloc();
  }
  return static_cast<uint8_t*>(p);
}

}  // namespace

Batch::~Batch() {
  if (fd_ >= 0) {
    ::munmap(data_, std::max<uint64_t>(nbytes_, 4096));  // other processes' mappings stay
    ::close(fd_);
  } else if (pool_) {
    pool_->Give(data_, nbytes_);
  } else {
    std::free(data_);
  }
}

BufferPool::~BufferPool() {
  for (auto& [size, p] : free_) std::free(p);
}

uint8_t* BufferPool::Take(uint64_t size) {
  {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].first == size) {
        uint8_t* p = free_[i].second;
        free_.erase(free_.begin() + static_cast<ptrdiff_t>(i));
        bytes_ -= size;
        return p;
      }
    }
  }
  void* p = std::aligned_alloc(4096, std::max<uint64_t>(size, 4096));
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}

void BufferPool::Give(uint8_t* p, uint64_t size) {
  {
    std::lock_guard lk(mu_);
    if (bytes_ + size <= max_bytes_ && free_.size() < 16) {
      free_.emplace_back(size, p);
      bytes_ += size;
      return;
    }
  }
  std::free(p);
}

const Column* Batch::Find(std::string_view name) const {
  for (const Column& c : columns_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

BatchBuilder::BatchBuilder(const shard::Schema& schema, const std::vector<std::vector<shard::FieldView>>& records)
    : records_(records) {
  using shard::FieldType;
  const uint64_t b = records.size();
  uint64_t pos = 0;
  auto take = [&](uint64_t n) {
    pos = Align(pos, kColumnAlign);
    uint64_t at = pos;
    pos += n;
    return at;
  };
  columns_.resize(schema.fields.size());
  for (size_t f = 0; f < schema.fields.size(); ++f) {
    const shard::Field& field = schema.fields[f];
    Column& c = columns_[f];
    c.name = field.name;
    c.type = field.type;
    switch (field.type) {
      case FieldType::kTensor: {
        const size_t rank = field.shape.size();
        bool same = true;
        for (uint64_t i = 1; i < b && same; ++i) {
          for (size_t k = 0; k < rank; ++k) same = same && records[i][f].shape[k] == records[0][f].shape[k];
        }
        c.dtype = field.dtype;
        if (same) {
          c.shape.push_back(static_cast<int64_t>(b));
          uint64_t elems = 1;
          for (size_t k = 0; k < rank; ++k) {
            uint64_t d = b > 0 ? records[0][f].shape[k] : static_cast<uint64_t>(std::max<int64_t>(field.shape[k], 0));
            c.shape.push_back(static_cast<int64_t>(d));
            elems *= d;
          }
          c.nbytes = b * elems * shard::DTypeSize(field.dtype);
          c.offset = take(c.nbytes);
        } else {
          c.ragged = true;
          c.rank = static_cast<uint32_t>(rank);
          for (uint64_t i = 0; i < b; ++i) c.nbytes += records[i][f].size;
          c.shape = {static_cast<int64_t>(c.nbytes)};
          c.offset = take(c.nbytes);
          c.offsets_offset = take(8 * (b + 1));
          c.shapes_offset = take(8 * rank * b);
        }
        break;
      }
      case FieldType::kBytes:
      case FieldType::kString:
        c.ragged = true;
        c.dtype = shard::DType::kUint8;
        for (uint64_t i = 0; i < b; ++i) c.nbytes += records[i][f].size;
        c.shape = {static_cast<int64_t>(c.nbytes)};
        c.offset = take(c.nbytes);
        c.offsets_offset = take(8 * (b + 1));
        break;
      case FieldType::kInt:
      case FieldType::kLabel:
      case FieldType::kFloat:
        c.dtype = field.type == FieldType::kFloat ? shard::DType::kFloat64 : shard::DType::kInt64;
        c.shape = {static_cast<int64_t>(b)};
        c.nbytes = 8 * b;
        c.offset = take(c.nbytes);
        break;
    }
  }
  total_ = std::max<uint64_t>(Align(pos, 4096), 4096);
}

std::unique_ptr<Batch> BatchBuilder::Build(const std::shared_ptr<BufferPool>& pool, std::vector<uint64_t> indices, uint64_t epoch, uint64_t batch_index,
                                           uint64_t skipped, LoaderState state_after) const {
  std::unique_ptr<Batch> batch(new Batch());
  batch->pool_ = pool;
  if (pool->shared()) {
    int fd = -1;
    batch->data_ = MapShared(std::max<uint64_t>(total_, 4096), &fd);
    batch->fd_ = fd;
  } else {
    batch->data_ = pool->Take(total_);
  }
  batch->nbytes_ = total_;
  const uint64_t b = records_.size();
  for (size_t f = 0; f < columns_.size(); ++f) {
    const Column& c = columns_[f];
    uint8_t* out = batch->data_ + c.offset;
    if (c.type == shard::FieldType::kInt || c.type == shard::FieldType::kFloat || c.type == shard::FieldType::kLabel) {
      for (uint64_t i = 0; i < b; ++i) std::memcpy(out + 8 * i, &records_[i][f].value, 8);
      continue;
    }
    uint64_t* offsets = c.ragged ? reinterpret_cast<uint64_t*>(batch->data_ + c.offsets_offset) : nullptr;
    int64_t* shapes = c.ragged && c.rank > 0 ? reinterpret_cast<int64_t*>(batch->data_ + c.shapes_offset) : nullptr;
    uint64_t at = 0;
    for (uint64_t i = 0; i < b; ++i) {
      const shard::FieldView& v = records_[i][f];
      if (offsets) offsets[i] = at;
      if (shapes) {
        for (uint32_t k = 0; k < c.rank; ++k) shapes[i * c.rank + k] = static_cast<int64_t>(v.shape[k]);
      }
      if (v.size) std::memcpy(out + at, v.data, v.size);
      at += v.size;
    }
    if (offsets) offsets[b] = at;
  }
  // Alignment gaps are zeroed so no stale heap bytes reach the caller.
  uint64_t end = 0;
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const Column& c : columns_) {
    used.push_back({c.offset, c.nbytes});
    if (c.ragged) {
      used.push_back({c.offsets_offset, 8 * (b + 1)});
      if (c.rank > 0) used.push_back({c.shapes_offset, 8 * c.rank * b});
    }
  }
  std::sort(used.begin(), used.end());
  for (auto [off, len] : used) {
    if (off > end) std::memset(batch->data_ + end, 0, off - end);
    end = std::max(end, off + len);
  }
  if (total_ > end) std::memset(batch->data_ + end, 0, total_ - end);
  batch->columns_ = columns_;
  batch->indices_ = std::move(indices);
  batch->epoch_ = epoch;
  batch->batch_index_ = batch_index;
  batch->skipped_ = skipped;
  batch->state_after_ = state_after;
  return batch;
}

}  // namespace strata::loader
