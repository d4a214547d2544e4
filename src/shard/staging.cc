#include "shard/staging.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "shard/format.h"

namespace strata::shard {

StagedOutput::StagedOutput(std::unique_ptr<WritableFile> file, std::string name, StagingOptions options)
    : file_(std::move(file)), name_(std::move(name)), options_(options) {
  options_.buffer_size = std::max<size_t>(AlignUp(options_.buffer_size), kBlock);
  // Two at least: a buffer is taken before the full one is handed over (its partial last
  // block is copied across), so with one the caller would wait for itself.
  options_.buffers = std::max<size_t>(options_.buffers, 2);
  thread_ = std::thread([this] { Run(); });
}

StagedOutput::~StagedOutput() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    abandon_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status StagedOutput::FirstError() {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

Result<AlignedBuffer> StagedOutput::TakeBuffer(size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  if (n > options_.buffer_size) {
    // Reuse a large buffer an earlier large record had, if it fits: runs of large records then
    // do not map and fault in fresh memory for each one.
    for (auto it = large_.begin(); it != large_.end(); ++it) {
      if (it->size() >= n) {
        AlignedBuffer b = std::move(*it);
        large_.erase(it);
        return b;
      }
    }
    lock.unlock();
    return AlignedBuffer(AlignUp(n));
  }
  if (free_.empty() && created_ < options_.buffers) {
    ++created_;
    lock.unlock();
    return AlignedBuffer(options_.buffer_size);
  }
  // The writer returns every buffer it takes, even after a failure, so this wait ends.
  cv_.wait(lock, [&] { return !free_.empty(); });
  if (!error_.ok()) return error_;
  AlignedBuffer b = std::move(free_.front());
  free_.pop_front();
  return b;
}

void StagedOutput::Submit(AlignedBuffer buffer, size_t length) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(buffer), length});
  }
  cv_.notify_all();
}

Result<uint8_t*> StagedOutput::Reserve(size_t n) {
  if (finished_) return Status::FailedPrecondition(fmt::format("shard {}: output already finished", name_));
  if (current_.data() != nullptr && used_ + n <= current_.size()) {
    // The common case takes no lock; a failed write is noticed at the next buffer change.
    return current_.data() + used_;
  }
  STRATA_RETURN_IF_ERROR(FirstError());
  // Hand over the whole blocks of the current buffer; the partial block at its end moves to the
  // front of the next one, so every buffer starts at a block-aligned file offset.
  const size_t tail = used_ % kBlock;
  const size_t whole = used_ - tail;
  STRATA_ASSIGN_OR_RETURN(AlignedBuffer next, TakeBuffer(tail + n));
  if (tail > 0) std::memcpy(next.data(), current_.data() + whole, tail);
  if (whole > 0) {
    Submit(std::move(current_), whole);
  } else if (current_.data() != nullptr && current_.size() == options_.buffer_size) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(current_));
  }
  current_ = std::move(next);
  used_ = tail;
  return current_.data() + used_;
}

Status StagedOutput::Append(std::span<const uint8_t> data) {
  STRATA_ASSIGN_OR_RETURN(uint8_t* p, Reserve(data.size()));
  if (!data.empty()) std::memcpy(p, data.data(), data.size());
  Commit(data.size());
  return Status::OK();
}

Status StagedOutput::Finish() {
  if (finished_) return Status::FailedPrecondition(fmt::format("shard {}: output already finished", name_));
  finished_ = true;
  if (used_ > 0) Submit(std::move(current_), used_);
  used_ = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  return error_;
}

void StagedOutput::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return !queue_.empty() || stop_; });
    if (queue_.empty() || abandon_) return;
    Filled f = std::move(queue_.front());
    queue_.pop_front();
    if (error_.ok()) {
      lock.unlock();
      Status s = file_->Append({f.buffer.data(), f.length});
      lock.lock();
      if (!s.ok()) error_ = s.WithContext(fmt::format("shard {}", name_));
    }
    if (f.buffer.size() == options_.buffer_size) {
      free_.push_back(std::move(f.buffer));
    } else if (f.buffer.size() > options_.buffer_size) {
      // Up to `buffers` large ones are kept, the largest; the others are freed.
      large_.push_back(std::move(f.buffer));
      std::sort(large_.begin(), large_.end(), [](const AlignedBuffer& a, const AlignedBuffer& b) { return a.size() > b.size(); });
      if (large_.size() > options_.buffers) large_.pop_back();
    }
    cv_.notify_all();
  }
}

}  // namespace strata::shard
