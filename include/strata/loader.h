// The training loader: batches from a set of shards at the disk's limit, in a deterministic
// global shuffle, partitioned over ranks and DataLoader workers, with exact resume.
//
//   strata::loader::LoaderOptions options;
//   options.shards = {"/srv/train/shard-00000.shard", "/srv/train/shard-00001.shard"};
//   options.batch_size = 256;
//   options.seed = 17;
//   options.rank = rank;  options.world_size = world_size;
//   auto loader = strata::loader::Loader::Open(options);
//   (*loader)->Start({.seed = 17, .epoch = 3, .consumed = 0});    // or a saved state
//   while (true) {
//     auto batch = (*loader)->Next();                  // blocks; nullptr at the end of the epoch
//     if (!batch.ok()) ...;                            // kCorruption names shard and record
//     if (*batch == nullptr) break;
//     const auto& image = (*batch)->column(0);         // dense [B, 28, 28] uint8 at data()+offset
//     state = (*batch)->state_after();                 // save this to resume after the batch
//   }
//
// Order. The samples of all shards are numbered 0..N-1 in the order of `shards`. An epoch
// visits them in a permutation P(seed, epoch) of [0, N): a keyed Feistel bijection (O(1)
// memory), or, in block mode, a permutation of blocks of consecutive records shuffled within a
// window of blocks (for stores that like larger reads). P does not depend on the world size.
//
// Partition rule. Positions of P are handed out in lockstep: from a start position S (the
// samples already consumed by the whole job), rank r of W takes positions S+r, S+r+W,
// S+r+2W, ... Its j-th sample belongs to its batch j / batch_size, and DataLoader worker w of K
// produces that rank's batches w, w+K, w+2K, ... (the round-robin order in which PyTorch's
// DataLoader collects them). So once every rank has consumed its first b batches, the job has
// consumed exactly the prefix [0, S + b·batch_size·W) of P — which is the whole resume state:
// {seed, epoch, consumed}. Resuming with another world size or worker count continues with
// exactly the positions not yet consumed. At the end of an epoch ranks may differ by one
// sample (every sample is served exactly once); `drop_last` gives every rank the same number
// of full batches (dropping at most W·batch_size - 1 samples of the epoch's tail); `pad` gives
// every rank ceil(remaining / W) samples by repeating positions from the start of P.
//
// Reads. io_uring with O_DIRECT into registered buffers (a buffered fallback with one warning
// where the file system refuses O_DIRECT), neighbouring records coalesced into one read, an I/O
// thread keeping `queue_depth` reads in flight and a second thread that verifies (CRC32C, and
// AES-256-GCM for keyed shards), decodes and assembles batches. Read buffers plus assembled
// batches not yet returned by Next() stay within `prefetch_bytes`; batches the caller holds
// are the caller's.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/shard.h"
#include "strata/status.h"

namespace strata::loader {

enum class ShuffleMode : uint8_t {
  kNone = 0,    // positions in record order
  kGlobal = 1,  // a uniform-looking permutation of all records
  kBlock = 2,   // blocks of `block_records` consecutive records permuted, then shuffled
                // within windows of `window_blocks` blocks
};

struct ShuffleOptions {
  ShuffleMode mode = ShuffleMode::kGlobal;
  uint64_t block_records = 1024;  // kBlock only
  uint64_t window_blocks = 16;    // kBlock only
};

// The permutation of one epoch: Position(p) is the record at position p. Pure, O(1) memory,
// thread-safe; equal (seed, epoch, n, options) give equal orders on every machine.
class Shuffle {
 public:
  Shuffle(uint64_t num_records, uint64_t seed, uint64_t epoch, const ShuffleOptions& options);
  uint64_t size() const { return n_; }
  uint64_t Position(uint64_t p) const;  // p < size()

 private:
  uint64_t n_;
  ShuffleOptions options_;
  uint64_t key_;
};

// The resume state: the job has consumed positions [0, consumed) of epoch `epoch`'s
// permutation. consumed == num_samples() means the epoch is complete.
struct LoaderState {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  uint64_t consumed = 0;
  bool operator==(const LoaderState&) const = default;
  // {"seed":17,"epoch":3,"consumed":40960} (seed as a number; 64-bit values survive exactly).
  std::string ToJson() const;
  static Result<LoaderState> FromJson(std::string_view json);  // kInvalidArgument when malformed
};

struct LoaderOptions {
  std::vector<std::string> shards;          // at least one; samples numbered in this order
  std::optional<shard::Key> key;            // for encrypted shards
  uint64_t batch_size = 32;
  uint64_t seed = 0;
  ShuffleOptions shuffle;
  uint32_t rank = 0, world_size = 1;        // rank < world_size
  uint32_t worker_id = 0, num_workers = 1;  // worker_id < num_workers
  bool drop_last = false;
  bool pad = false;                         // ignored with drop_last
  // Read buffers plus batches prepared ahead; Open fails (kInvalidArgument) if it cannot hold
  // two batches of the largest records.
  uint64_t prefetch_bytes = 256ull << 20;
  uint32_t queue_depth = 64;                // reads in flight
  bool direct_io = true;                    // O_DIRECT where the file system allows it
  // A corrupt record: false -> Next() fails with kCorruption naming shard and record;
  // true -> the record is left out of its batch and counted in stats().skipped.
  bool skip_corrupt = false;
  uint64_t max_coalesce_bytes = 1ull << 20; // neighbouring records merge into reads up to this size
  // Each batch's buffer is a shared-memory file of its own (memfd; Batch::shared_fd), so that
  // another process can map it instead of receiving a copy (PyTorch DataLoader workers hand
  // batches to the training process this way). Costs a fresh mapping per batch (no reuse), and
  // at most 64 batches are prepared ahead (each holds a descriptor).
  bool shared_memory = false;
};

// One column of a batch, in the batch's buffer.
//   dense (tensors of one shape in the batch, int, float, label): `shape` = {B, dims...},
//     elements of `dtype` at data() + offset, row-major. int -> kInt64, float -> kFloat64,
//     label -> kInt64.
//   ragged (bytes, string, tensors whose shapes differ within the batch): `nbytes` bytes of
//     concatenated values at data() + offset, `shape` = {nbytes}; sample i is bytes
//     [offsets[i], offsets[i+1]) where offsets are B+1 uint64 at data() + offsets_offset; for a
//     ragged tensor, sample i's shape is rank int64 values at data() + shapes_offset + 8·rank·i.
struct Column {
  std::string name;
  shard::FieldType type = shard::FieldType::kBytes;
  shard::DType dtype = shard::DType::kUint8;
  bool ragged = false;
  std::vector<int64_t> shape;
  uint64_t offset = 0, nbytes = 0;
  uint64_t offsets_offset = 0;  // ragged only
  uint64_t shapes_offset = 0;   // ragged tensors only
  uint32_t rank = 0;            // ragged tensors only: dimensions per sample
};

class BufferPool;

// A batch owns one buffer aligned to 4096 bytes (every column starts on a 64-byte boundary).
// Immutable once returned; it may be used and destroyed on any thread, also after its loader.
class Batch {
 public:
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t nbytes() const { return nbytes_; }
  uint64_t size() const { return indices_.size(); }          // samples
  const std::vector<Column>& columns() const { return columns_; }
  const Column& column(size_t i) const { return columns_[i]; }
  const Column* Find(std::string_view name) const;
  // The record number (0..N-1) of each sample.
  std::span<const uint64_t> indices() const { return indices_; }
  uint64_t epoch() const { return epoch_; }
  uint64_t batch_index() const { return batch_index_; }     // the rank's batch number this epoch
  uint64_t skipped() const { return skipped_; }             // corrupt records left out
  // The state to save once this batch has been consumed (on every rank).
  LoaderState state_after() const { return state_after_; }
  // With LoaderOptions::shared_memory: a memfd whose first nbytes() bytes are the buffer (map it
  // MAP_SHARED, or dup it, before the batch is destroyed); -1 otherwise.
  int shared_fd() const { return fd_; }

 private:
  friend class BatchBuilder;
  Batch() = default;
  std::shared_ptr<BufferPool> pool_;  // where the buffer goes back to (freed when null)
  int fd_ = -1;                       // shared memory: the buffer is mapped from this memfd
  uint8_t* data_ = nullptr;
  uint64_t nbytes_ = 0;
  std::vector<Column> columns_;
  std::vector<uint64_t> indices_;
  uint64_t epoch_ = 0, batch_index_ = 0, skipped_ = 0;
  LoaderState state_after_;
};

struct LoaderStats {
  uint64_t batches = 0, samples = 0, skipped = 0;
  uint64_t reads = 0, bytes_read = 0;   // read requests (after coalescing) and their bytes
  uint64_t peak_buffered_bytes = 0;     // read buffers + prepared batches; <= prefetch_bytes
  bool direct_io = true;                // false when any shard is read through the page cache
};

// Thread-safe: Next(), Get() and stats() may be called from any thread; Start() must not run
// concurrently with Next(). Every call blocks until done.
class Loader {
 public:
  virtual ~Loader() = default;
  // Opens and validates every shard (headers and indexes through shard::ShardReader).
  static Result<std::unique_ptr<Loader>> Open(const LoaderOptions& options);

  virtual const shard::Schema& schema() const = 0;
  virtual uint64_t num_samples() const = 0;  // N, all shards
  // Samples and batches this rank and worker will get from `state` to the end of its epoch.
  virtual uint64_t SamplesFrom(const LoaderState& state) const = 0;
  virtual uint64_t BatchesFrom(const LoaderState& state) const = 0;

  // Begins (or restarts) iteration at `state`; state.seed must equal options.seed.
  // Prefetching starts here. kInvalidArgument for a state beyond the epoch's end.
  virtual Status Start(const LoaderState& state) = 0;
  // The next batch of this rank and worker, or nullptr when its share of the epoch is done.
  virtual Result<std::unique_ptr<Batch>> Next() = 0;
  // Random access: the records with these numbers (each < num_samples()), in this order, as one
  // batch (synchronous reads, verified like Next()). Independent of Start/Next.
  virtual Result<std::unique_ptr<Batch>> Get(std::span<const uint64_t> records) = 0;

  virtual LoaderStats stats() const = 0;
};

}  // namespace strata::loader
