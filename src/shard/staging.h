// The shard writer's output pipeline: the caller encodes records straight into 4 KiB-aligned
// staging buffers, and a background thread hands each full buffer to the file while the caller
// fills the next one, so encoding and checksumming overlap the disk instead of adding to it.
//
// Every buffer but the last is handed over as a whole number of 4 KiB blocks starting at a
// block-aligned file offset and from an aligned address, which lets an O_DIRECT file
// (Env::NewStreamingFile) write it without copying it again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "shard/block_file.h"
#include "strata/env.h"
#include "strata/status.h"

namespace strata::shard {

// 1 MiB writes, four buffers: on the virtio disk of docs/PERFORMANCE.md ("Shards") 1 MiB
// O_DIRECT writes were faster than 2, 4 or 8 MiB ones, and 512 KiB ones slower.
struct StagingOptions {
  size_t buffer_size = 1u << 20;  // a multiple of 4096; a record larger than this gets its own
  size_t buffers = 4;             // at most this many (of buffer_size) exist at once; 2 at least
};

// Used by one thread at a time (the caller); the file is used only by the background thread
// until Finish() returns, and only by the caller after.
class StagedOutput {
 public:
  // `name` is how errors name the file.
  StagedOutput(std::unique_ptr<WritableFile> file, std::string name, StagingOptions options);
  // Abandons whatever is not yet written and stops the thread; the file is closed unsynced.
  ~StagedOutput();
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  // `n` contiguous bytes at the end of the output for the caller to fill; they become part of
  // the output with Commit(n). Valid until the next call. Fails with the first error any
  // write reported (and keeps failing), or after Finish().
  Result<uint8_t*> Reserve(size_t n);
  void Commit(size_t n) { used_ += n; size_ += n; }
  Status Append(std::span<const uint8_t> data);

  // Hands the last bytes to the file and waits until every write has returned; the first
  // error of any of them, if one failed. The file is then the caller's (file()).
  Status Finish();
  WritableFile* file() const { return file_.get(); }
  uint64_t size() const { return size_; }  // bytes committed

 private:
  struct Filled {
    AlignedBuffer buffer;
    size_t length = 0;
  };
  // Takes a buffer able to hold `n` bytes: a free one, a new one while fewer than `buffers`
  // exist, or else waits for the writer to return one. A larger-than-usual request gets a
  // buffer of its own, freed after its write.
  Result<AlignedBuffer> TakeBuffer(size_t n);
  void Submit(AlignedBuffer buffer, size_t length);
  void Run();
  Status FirstError();

  const std::unique_ptr<WritableFile> file_;
  const std::string name_;
  StagingOptions options_;  // normalised by the constructor

  // Caller's side.
  AlignedBuffer current_;
  size_t used_ = 0;       // bytes of current_ in use (its first byte is at a block-aligned offset)
  uint64_t size_ = 0;
  bool finished_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Filled> queue_;          // waiting for the writer, in file order
  std::deque<AlignedBuffer> free_;    // standard-size buffers ready for reuse
  std::deque<AlignedBuffer> large_;   // larger ones kept for the next large record, largest first
  size_t created_ = 0;                // standard-size buffers in existence
  bool stop_ = false;                 // no more buffers will come
  bool abandon_ = false;              // drop what is queued
  Status error_;                      // the first failed write
  std::thread thread_;
};

}  // namespace strata::shard
