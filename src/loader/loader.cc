// The loader: an I/O thread plans batches (positions -> records -> coalesced aligned reads),
// keeps queue_depth reads in flight with io_uring, and hands each batch whose reads are done
// to a decode thread, which verifies, decrypts, decodes and assembles it. Read buffers come
// from one registered arena used as a FIFO ring: batches are allocated and freed in order.
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "base/endian.h"
#include "base/logging.h"
#include "crypto/aead.h"
#include "loader/batch_builder.h"
#include "loader/partition.h"
#include "loader/shard_files.h"
#include "shard/format.h"
#include "strata/loader.h"

namespace strata::loader {
namespace {

// Batches prepared ahead with LoaderOptions::shared_memory: each holds a memfd until consumed.
constexpr size_t kMaxSharedBatches = 64;
// Reads handed to the kernel per io_uring_enter while filling the ring (IoLoop).
constexpr unsigned kSubmitBatch = 8;

struct Job;

struct Run {
  Job* job = nullptr;
  uint32_t shard = 0;
  uint64_t file_offset = 0, length = 0;  // an aligned extent (or the union of touching ones)
  uint64_t buf = 0;                      // arena offset
  uint64_t done = 0;                     // bytes read so far
};

struct Sample {
  uint64_t record = 0;  // 0..N-1
  uint32_t shard = 0;
  uint64_t index = 0;   // within the shard
  uint64_t offset = 0, length = 0;
  uint32_t crc = 0;
  uint32_t run = 0;
};

struct Job {
  uint64_t rank_batch = 0;
  bool last = false;
  std::vector<Sample> samples;  // in batch order
  std::vector<Run> runs;
  uint64_t region = 0, region_len = 0;
  uint64_t pending = 0;  // runs not yet complete (I/O thread only)
  bool done = false;     // guarded by the loader's mutex
  Status status;         // the first read error
};

// A FIFO ring over [0, size): regions are freed in the order they were allocated.
class Ring {
 public:
  void Reset(uint64_t size) {
    size_ = size;
    live_.clear();
  }
  bool Alloc(uint64_t n, uint64_t* off) {
    if (n > size_) return false;
    if (live_.empty()) {
      *off = 0;
    } else {
      const uint64_t front = live_.front().first;
      const uint64_t end = live_.back().first + live_.back().second;
      if (live_.back().first >= front) {  // not wrapped: room after the last, or before the first
        if (size_ - end >= n) *off = end;
        else if (front >= n) *off = 0;
        else return false;
      } else {
        if (front - end >= n) *off = end;
        else return false;
      }
    }
    live_.emplace_back(*off, n);
    return true;
  }
  bool CanAlloc(uint64_t n) {
    uint64_t off;
    if (!Alloc(n, &off)) return false;
    live_.pop_back();
    return true;
  }
  void FreeOldest() { live_.pop_front(); }

 private:
  uint64_t size_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> live_;
};

class LoaderImpl final : public Loader {
 public:
  explicit LoaderImpl(const LoaderOptions& options) : options_(options) {}
  ~LoaderImpl() override {
    StopThreads();
    for (const ShardFile& f : files_) ::close(f.fd);
    std::free(arena_);
  }

  Status Load() {
    const LoaderOptions& o = options_;
    if (o.shards.empty()) return Status::InvalidArgument("loader: no shards given");
    if (o.batch_size == 0) return Status::InvalidArgument("loader: batch_size must be at least 1");
    if (o.world_size == 0 || o.rank >= o.world_size) {
      return Status::InvalidArgument(fmt::format("loader: rank {} is not below world_size {}", o.rank, o.world_size));
    }
    if (o.num_workers == 0 || o.worker_id >= o.num_workers) {
      return Status::InvalidArgument(
          fmt::format("loader: worker_id {} is not below num_workers {}", o.worker_id, o.num_workers));
    }
    if (o.queue_depth == 0 || o.queue_depth > 4096) return Status::InvalidArgument("loader: queue_depth must be 1..4096");
    if (o.key) aead_.emplace(*o.key);
    uint64_t max_extent = 0, total_extent = 0;
    size_t buffered = 0;
    for (const std::string& path : o.shards) {
      shard::ReaderOptions ro;
      ro.key = o.key;
      ro.direct_io = o.direct_io;
      STRATA_ASSIGN_OR_RETURN(auto reader, shard::ShardReader::Open(path, ro));
      if (!readers_.empty() && !(reader->schema() == readers_[0]->schema())) {
        return Status::InvalidArgument(
            fmt::format("loader: shard {} has another schema than shard {}", path, readers_[0]->path()));
      }
      for (uint64_t i = 0; i < reader->record_count(); ++i) {
        const uint64_t extent = reader->Locate(i).extent_length;
        max_extent = std::max(max_extent, extent);
        total_extent += extent;
      }
      starts_.push_back(n_);
      n_ += reader->record_count();
      readers_.push_back(std::move(reader));
      STRATA_ASSIGN_OR_RETURN(ShardFile file, OpenShardFile(path, o.direct_io));
      if (o.direct_io && !file.direct) ++buffered;
      files_.push_back(file);
    }
    if (buffered > 0) {
      direct_ = false;
      LogWarning(fmt::format("loader: the file system refuses O_DIRECT for {} of {} shards (first: {}); "
                             "reading them through the page cache",
                             buffered, files_.size(), o.shards[0]));
    } else {
      direct_ = o.direct_io;
    }
    // The arena holds at least two batches' reads of records of the average size, so one can
    // be decoded while the next is read; beyond that, enough for the queue depth, up to half the
    // budget. Sized by the largest record instead, a data set with a long tail of sizes (images)
    // would need many times the memory its batches take; a batch of larger records than the
    // arena holds grows it when it comes (GrowArena).
    const uint64_t mean_extent = n_ > 0 ? (total_extent + n_ - 1) / n_ : shard::kBlock;
    const uint64_t batch_reads = std::max<uint64_t>(o.batch_size * mean_extent, shard::kBlock);
    uint64_t want = std::max<uint64_t>(4ull * o.queue_depth * max_extent, 64ull << 20);
    arena_size_ = shard::AlignUp(std::max(2 * batch_reads, std::min(o.prefetch_bytes / 2, want)));
    if (o.prefetch_bytes < arena_size_ + batch_reads) {
      return Status::InvalidArgument(fmt::format(
          "loader: prefetch_bytes {} cannot hold batches of {} records of {} bytes on average; give at least {}",
          o.prefetch_bytes, o.batch_size, mean_extent, arena_size_ + batch_reads));
    }
    // Buffers of consumed batches kept for reuse count against the budget too.
    // (Shared-memory batches are never reused, so they keep none.)
    pool_bytes_ = o.shared_memory ? 0 : std::min<uint64_t>((o.prefetch_bytes - arena_size_) / 4, 64ull << 20);
    pool_ = std::make_shared<BufferPool>(pool_bytes_, o.shared_memory);
    out_budget_ = o.prefetch_bytes - arena_size_ - pool_bytes_;
    arena_ = static_cast<uint8_t*>(std::aligned_alloc(shard::kBlock, arena_size_));
    if (arena_ == nullptr) return Status::Internal("loader: cannot allocate the read buffers");
    return Status::OK();
  }

  const shard::Schema& schema() const override { return readers_[0]->schema(); }
  uint64_t num_samples() const override { return n_; }

  uint64_t SamplesFrom(const LoaderState& state) const override {
    Partition p = PartitionFor(state);
    uint64_t total = 0;
    for (uint64_t k = 0; k < p.WorkerBatches(); ++k) total += p.BatchSamples(p.RankBatch(k));
    return total;
  }
  uint64_t BatchesFrom(const LoaderState& state) const override { return PartitionFor(state).WorkerBatches(); }

  Status Start(const LoaderState& state) override {
    if (state.seed != options_.seed) {
      return Status::InvalidArgument(
          fmt::format("loader: the state's seed {} is not the loader's seed {}", state.seed, options_.seed));
    }
    if (state.consumed > n_) {
      return Status::InvalidArgument(
          fmt::format("loader: the state has consumed {} samples of an epoch of {}", state.consumed, n_));
    }
    StopThreads();
    partition_ = PartitionFor(state);
    shuffle_.emplace(n_, options_.seed, state.epoch, options_.shuffle);
    epoch_ = state.epoch;
    total_jobs_ = partition_.WorkerBatches();
    ring_.Reset(arena_size_);
    jobs_.clear();
    ready_.clear();
    out_bytes_ = 0;
    error_ = Status::OK();
    finished_ = false;
    started_ = true;
    if (total_jobs_ == 0) {
      ready_.emplace_back(std::unique_ptr<Batch>());
      return Status::OK();
    }
    io_thread_ = std::thread([this] { IoLoop(); });
    decode_thread_ = std::thread([this] { DecodeLoop(); });
    return Status::OK();
  }

  Result<std::unique_ptr<Batch>> Next() override {
    std::unique_lock lk(mu_);
    if (!started_) return Status::FailedPrecondition("loader: Next() before Start()");
    if (!error_.ok()) return error_;
    if (finished_) return std::unique_ptr<Batch>();
    ready_cv_.wait(lk, [&] { return !ready_.empty(); });
    Result<std::unique_ptr<Batch>> r = std::move(ready_.front());
    ready_.pop_front();
    if (!r.ok()) {
      error_ = r.status();
      return error_;
    }
    if (*r == nullptr) {
      finished_ = true;
      return r;
    }
    out_bytes_ -= (*r)->nbytes();
    stats_.batches++;
    stats_.samples += (*r)->size();
    decode_cv_.notify_all();
    return r;
  }

  Result<std::unique_ptr<Batch>> Get(std::span<const uint64_t> records) override {
    std::vector<std::string> payloads;
    std::vector<uint64_t> kept;
    std::vector<std::vector<shard::FieldView>> views;
    payloads.reserve(records.size());
    uint64_t skipped = 0;
    for (uint64_t rec : records) {
      if (rec >= n_) {
        return Status::InvalidArgument(fmt::format("loader: record {} out of range ({} records)", rec, n_));
      }
      auto [s, i] = Find(rec);
      auto payload = readers_[s]->ReadPayload(i);
      Status st = payload.status();
      std::vector<shard::FieldView> v;
      if (st.ok()) {
        payloads.push_back(std::move(*payload));
        const std::string& p = payloads.back();
        st = shard::DecodeRecordView(schema(), AsBytes(p), &v);
        if (!st.ok()) st = RecordCorrupt(s, i, st.message());
      }
      if (!st.ok()) {
        if (!(options_.skip_corrupt && st.IsCorruption())) return st;
        ++skipped;
        continue;
      }
      views.push_back(std::move(v));
      kept.push_back(rec);
    }
    if (skipped) {
      std::lock_guard lk(mu_);
      stats_.skipped += skipped;
    }
    BatchBuilder builder(schema(), views);
    return builder.Build(pool_, std::move(kept), 0, 0, skipped, LoaderState{options_.seed, 0, 0});
  }

  LoaderStats stats() const override {
    std::lock_guard lk(mu_);
    LoaderStats s = stats_;
    s.reads = reads_.load();
    s.bytes_read = bytes_read_.load();
    s.direct_io = direct_;
    return s;
  }

 private:
  Partition PartitionFor(const LoaderState& state) const {
    Partition p;
    p.n = n_;
    p.start = std::min(state.consumed, n_);
    p.world = options_.world_size;
    p.rank = options_.rank;
    p.workers = options_.num_workers;
    p.worker = options_.worker_id;
    p.batch = options_.batch_size;
    p.drop_last = options_.drop_last;
    p.pad = options_.pad && !options_.drop_last;
    return p;
  }

  std::pair<uint32_t, uint64_t> Find(uint64_t record) const {
    size_t s = std::upper_bound(starts_.begin(), starts_.end(), record) - starts_.begin() - 1;
    return {static_cast<uint32_t>(s), record - starts_[s]};
  }

  Status RecordCorrupt(uint32_t s, uint64_t i, std::string_view what) const {
    return Status::Corruption(fmt::format("shard {}: record {}: {}", readers_[s]->path(), i, what));
  }

  // The reads of the worker's k-th batch: records in batch order, extents sorted by file
  // position and merged where they touch or overlap.
  std::unique_ptr<Job> Plan(uint64_t k) const {
    auto job = std::make_unique<Job>();
    job->rank_batch = partition_.RankBatch(k);
    job->last = k + 1 == total_jobs_;
    const uint64_t count = partition_.BatchSamples(job->rank_batch);
    job->samples.resize(count);
    std::vector<uint32_t> order(count);
    for (uint64_t j = 0; j < count; ++j) {
      Sample& s = job->samples[j];
      s.record = shuffle_->Position(partition_.PositionOf(job->rank_batch * partition_.batch + j));
      auto [shard, index] = Find(s.record);
      s.shard = shard;
      s.index = index;
      shard::RecordLocation loc = readers_[shard]->Locate(index);
      s.offset = loc.offset;
      s.length = loc.length;
      s.crc = loc.crc32c;
      order[j] = static_cast<uint32_t>(j);
    }
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      const Sample &x = job->samples[a], &y = job->samples[b];
      return x.shard != y.shard ? x.shard < y.shard : x.offset < y.offset;
    });
    for (uint32_t j : order) {
      Sample& s = job->samples[j];
      uint64_t eo, el;
      shard::ExtentOf(s.offset, s.length, &eo, &el);
      if (!job->runs.empty()) {
        Run& r = job->runs.back();
        const uint64_t end = std::max(r.file_offset + r.length, eo + el);
        if (r.shard == s.shard && eo <= r.file_offset + r.length && end - r.file_offset <= options_.max_coalesce_bytes) {
          r.length = end - r.file_offset;
          s.run = static_cast<uint32_t>(job->runs.size() - 1);
          continue;
        }
      }
      Run r;
      r.job = job.get();
      r.shard = s.shard;
      r.file_offset = eo;
      r.length = el;
      job->runs.push_back(r);  // placed in the region below, once its length is final
      s.run = static_cast<uint32_t>(job->runs.size() - 1);
    }
    uint64_t at = 0;
    for (Run& r : job->runs) {
      r.buf = at;
      at += r.length;
    }
    job->region_len = at;
    job->pending = job->runs.size();
    return job;
  }

  void IoLoop() {
    io_uring ring;
    // This thread alone submits and reaps, so the kernel may leave completions for it to
    // process when it next waits (DEFER_TASKRUN, Linux 6.1) instead of interrupting it for
    // each one; with reads submitted a few at a time (below), 6-10% more reads per second at
    // 4 KiB on this VM's disk. Older kernels refuse the flags: cooperative task running (5.19),
    // then none.
    int rc = -EINVAL;
    for (unsigned flags : {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, unsigned{IORING_SETUP_COOP_TASKRUN},
                           0u}) {
      io_uring_params params{};
      params.flags = flags;
      rc = io_uring_queue_init_params(options_.queue_depth, &ring, &params);
      if (rc >= 0) break;
    }
    if (rc < 0) {
      FailAll(Status::FromErrno(-rc, "loader: cannot set up io_uring"));
      return;
    }
    std::vector<int> fds;
    for (const ShardFile& f : files_) fds.push_back(f.fd);
    const bool fixed_files = io_uring_register_files(&ring, fds.data(), static_cast<unsigned>(fds.size())) == 0;
    iovec iov{arena_, arena_size_};
    bool fixed_bufs = io_uring_register_buffers(&ring, &iov, 1) == 0;

    std::deque<Run*> pending;
    uint64_t inflight = 0, next = 0;
    bool failed = false;  // the arena could not grow
    std::unique_ptr<Job> planned;
    auto prep = [&](Run* r) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      while (sqe == nullptr) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
      }
      uint8_t* dst = arena_ + r->buf + r->done;
      const unsigned len = static_cast<unsigned>(r->length - r->done);
      const uint64_t off = r->file_offset + r->done;
      const int fd = fixed_files ? static_cast<int>(r->shard) : files_[r->shard].fd;
      if (fixed_bufs) io_uring_prep_read_fixed(sqe, fd, dst, len, off, 0);
      else io_uring_prep_read(sqe, fd, dst, len, off);
      if (fixed_files) sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data(sqe, r);
    };
    auto complete = [&](Run* r) {
      Job* job = r->job;
      reads_.fetch_add(1, std::memory_order_relaxed);
      if (--job->pending == 0) {
        std::lock_guard lk(mu_);
        job->done = true;
        decode_cv_.notify_all();
      }
    };
    for (;;) {
      const bool stopping = stop_.load();
      if (!stopping) {
        while (next < total_jobs_ && pending.size() < options_.queue_depth) {
          if (!planned) planned = Plan(next);
          uint64_t off;
          {
            std::lock_guard lk(mu_);
            if (MustGrow(*planned)) {
              if (!jobs_.empty()) break;  // wait until every earlier batch is decoded
              Status grown = GrowArena(&ring, *planned, &fixed_bufs);
              if (!grown.ok()) {  // nothing is in flight: record the error and end
                fatal_ = std::move(grown);
                decode_cv_.notify_all();
                failed = true;
                break;
              }
            }
            if (!ring_.Alloc(planned->region_len, &off)) break;
            planned->region = off;
            for (Run& r : planned->runs) {
              r.buf += off;
              pending.push_back(&r);
            }
            jobs_.push_back(std::move(planned));
          }
          ++next;
        }
        if (failed) break;
        // Handed to the kernel a few at a time, so the disk starts on the first while the rest
        // are prepared; submitted all at once, the ring settled into rounds of the whole queue
        // depth per wait (strace: 64 per io_uring_enter, against fio's 3).
        unsigned prepped = 0;
        while (inflight < options_.queue_depth && !pending.empty()) {
          prep(pending.front());
          pending.pop_front();
          ++inflight;
          if (++prepped % kSubmitBatch == 0) io_uring_submit(&ring);
        }
      }
      if (inflight == 0) {
        if (stopping || (next == total_jobs_ && pending.empty())) break;
        std::unique_lock lk(mu_);
        io_cv_.wait(lk, [&] {
          return stop_.load() || (planned && (MustGrow(*planned) ? jobs_.empty() : ring_.CanAlloc(planned->region_len)));
        });
        continue;
      }
      rc = io_uring_submit_and_wait(&ring, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        // The ring itself failed: nothing more can be read; fail the reads in flight.
        FailAll(Status::FromErrno(-rc, "loader: io_uring_submit_and_wait"));
        break;
      }
      io_uring_cqe* cqe;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++seen;
        --inflight;
        Run* r = static_cast<Run*>(io_uring_cqe_get_data(cqe));
        const int res = cqe->res;
        if (res == -EAGAIN || res == -EINTR) {
          pending.push_front(r);
          continue;
        }
        if (res < 0) {
          if (r->job->status.ok()) {
            r->job->status = Status::FromErrno(
                -res, fmt::format("cannot read shard {} at offset {}", readers_[r->shard]->path(), r->file_offset + r->done));
          }
          complete(r);
          continue;
        }
        r->done += static_cast<uint64_t>(res);
        bytes_read_.fetch_add(static_cast<uint64_t>(res), std::memory_order_relaxed);
        // A short read in whole blocks is continued; one that ends elsewhere hit the end of
        // the file, and the decoder reports any record it cut as truncated.
        if (res > 0 && r->done < r->length && (!files_[r->shard].direct || res % shard::kBlock == 0)) {
          pending.push_front(r);
          continue;
        }
        complete(r);
      }
      io_uring_cq_advance(&ring, seen);
    }
    io_uring_queue_exit(&ring);
  }

  // Whether `job`'s reads need more than the whole arena (records far above the average size).
  bool MustGrow(const Job& job) const { return job.region_len > arena_size_; }

  // Replaces the arena with one that holds `job`'s reads; called with mu_ held and no batch in
  // the arena, so neither thread points into the old one. Warns once: the loader now holds more
  // than prefetch_bytes.
  Status GrowArena(io_uring* ring, const Job& job, bool* fixed_bufs) {
    const uint64_t size = shard::AlignUp(job.region_len);
    if (!grew_) {
      LogWarning(fmt::format("loader: batch {} of epoch {} needs {} bytes of read buffers, more than the {} that "
                             "prefetch_bytes {} leaves for them (its records are far above the average size); "
                             "the buffers grow to hold it: give prefetch_bytes of at least {} to stay within it",
                             job.rank_batch, epoch_, size, arena_size_, options_.prefetch_bytes,
                             2 * size + pool_bytes_));
      grew_ = true;
    }
    if (*fixed_bufs) io_uring_unregister_buffers(ring);
    std::free(arena_);
    arena_ = static_cast<uint8_t*>(std::aligned_alloc(shard::kBlock, size));
    arena_size_ = arena_ == nullptr ? 0 : size;
    ring_.Reset(arena_size_);
    if (arena_ == nullptr) return Status::Internal(fmt::format("loader: cannot allocate {} bytes of read buffers", size));
    iovec iov{arena_, arena_size_};
    *fixed_bufs = io_uring_register_buffers(ring, &iov, 1) == 0;
    return Status::OK();
  }

  // Records a fatal error as the next result; Next() returns it.
  void FailAll(Status status) {
    std::lock_guard lk(mu_);
    fatal_ = std::move(status);
    decode_cv_.notify_all();
  }

  void DecodeLoop() {
    std::vector<std::vector<shard::FieldView>> views;
    std::vector<uint8_t> plain;
    for (;;) {
      Job* job;
      {
        std::unique_lock lk(mu_);
        decode_cv_.wait(lk, [&] { return stop_.load() || !fatal_.ok() || (!jobs_.empty() && jobs_.front()->done); });
        if (stop_) return;
        if (!fatal_.ok()) {
          ready_.emplace_back(fatal_);
          ready_cv_.notify_all();
          return;
        }
        job = jobs_.front().get();
      }
      Result<std::unique_ptr<Batch>> result = Assemble(job, &views, &plain);
      const bool last = job->last;
      {
        std::lock_guard lk(mu_);
        if (stop_) return;
        jobs_.pop_front();
        ring_.FreeOldest();
        io_cv_.notify_all();
        ready_.push_back(std::move(result));
        if (last) ready_.emplace_back(std::unique_ptr<Batch>());
        ready_cv_.notify_all();
      }
      if (last) return;
    }
  }

  Result<std::unique_ptr<Batch>> Assemble(Job* job, std::vector<std::vector<shard::FieldView>>* views,
                                          std::vector<uint8_t>* plain) {
    if (!job->status.ok()) return job->status;
    const size_t count = job->samples.size();
    if (aead_) {
      uint64_t total = 0;
      for (const Sample& s : job->samples) total += s.length > shard::kTagSize ? s.length - shard::kTagSize : 0;
      plain->resize(total);
    }
    views->resize(count);
    std::vector<uint64_t> indices;
    indices.reserve(count);
    uint64_t skipped = 0, plain_at = 0;
    size_t m = 0;
    for (const Sample& s : job->samples) {
      Status st = Check(*job, s, plain->data() + plain_at, &(*views)[m]);
      if (aead_) plain_at += s.length > shard::kTagSize ? s.length - shard::kTagSize : 0;
      if (!st.ok()) {
        if (!options_.skip_corrupt) return st;
        ++skipped;
        continue;
      }
      indices.push_back(s.record);
      ++m;
    }
    views->resize(m);
    BatchBuilder builder(schema(), *views);
    const uint64_t bytes = builder.nbytes();
    {
      std::unique_lock lk(mu_);
      // Shared-memory batches hold a descriptor each, so their number is bounded too.
      decode_cv_.wait(lk, [&] {
        return stop_.load() || out_bytes_ == 0 ||
               (out_bytes_ + bytes <= out_budget_ && (!options_.shared_memory || ready_.size() < kMaxSharedBatches));
      });
      if (stop_) return Status::Aborted("loader stopped");
      out_bytes_ += bytes;
      stats_.peak_buffered_bytes = std::max(stats_.peak_buffered_bytes, arena_size_ + pool_bytes_ + out_bytes_);
      stats_.skipped += skipped;
    }
    LoaderState after{options_.seed, epoch_, partition_.ConsumedAfter(job->rank_batch)};
    return builder.Build(pool_, std::move(indices), epoch_, job->rank_batch, skipped, after);
  }

  // Verifies one record in the arena and decodes it into `view` (decrypting into `plain`).
  Status Check(const Job& job, const Sample& s, uint8_t* plain, std::vector<shard::FieldView>* view) const {
    const Run& r = job.runs[s.run];
    if (s.offset + s.length > r.file_offset + r.done) {
      return RecordCorrupt(s.shard, s.index,
                           fmt::format("truncated: the file ends at {}, the record at {}", r.file_offset + r.done,
                                       s.offset + s.length));
    }
    const uint8_t* p = arena_ + r.buf + (s.offset - r.file_offset);
    const uint32_t crc = shard::Crc32c({p, s.length});
    if (crc != s.crc) {
      return RecordCorrupt(s.shard, s.index, fmt::format("checksum mismatch (stored {:08x}, computed {:08x})", s.crc, crc));
    }
    std::span<const uint8_t> payload{p, s.length};
    if (aead_) {
      if (s.length < shard::kTagSize) return RecordCorrupt(s.shard, s.index, "too short to be sealed");
      const std::string ad = shard::RecordAd(readers_[s.shard]->id(), s.index);
      if (!aead_->Open({p, s.length}, AsBytes(ad), plain).ok()) {
        return RecordCorrupt(s.shard, s.index, "failed authentication: wrong key, or a record moved from another place");
      }
      payload = {plain, s.length - shard::kTagSize};
    }
    Status st = shard::DecodeRecordView(schema(), payload, view);
    if (!st.ok()) return RecordCorrupt(s.shard, s.index, st.message());
    return Status::OK();
  }

  void StopThreads() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      io_cv_.notify_all();
      decode_cv_.notify_all();
    }
    if (io_thread_.joinable()) io_thread_.join();
    if (decode_thread_.joinable()) decode_thread_.join();
    std::lock_guard lk(mu_);
    stop_ = false;
    fatal_ = Status::OK();
    jobs_.clear();
    ready_.clear();
    out_bytes_ = 0;
  }

  const LoaderOptions options_;
  std::vector<std::unique_ptr<shard::ShardReader>> readers_;
  std::vector<ShardFile> files_;
  std::vector<uint64_t> starts_;
  uint64_t n_ = 0;
  std::optional<crypto::Aead> aead_;
  bool direct_ = true;
  uint8_t* arena_ = nullptr;
  uint64_t arena_size_ = 0, out_budget_ = 0, pool_bytes_ = 0;
  std::shared_ptr<BufferPool> pool_;

  // Set by Start, read by the threads it starts.
  Partition partition_;
  std::optional<Shuffle> shuffle_;
  uint64_t epoch_ = 0, total_jobs_ = 0;

  mutable std::mutex mu_;
  std::condition_variable io_cv_, decode_cv_, ready_cv_;
  std::atomic<bool> stop_{false};
  Ring ring_;
  std::deque<std::unique_ptr<Job>> jobs_;
  std::deque<Result<std::unique_ptr<Batch>>> ready_;
  uint64_t out_bytes_ = 0;
  Status error_, fatal_;
  bool finished_ = false, started_ = false;
  bool grew_ = false;  // GrowArena has warned
  LoaderStats stats_;
  std::atomic<uint64_t> reads_{0}, bytes_read_{0};
  std::thread io_thread_, decode_thread_;
};

}  // namespace

Result<std::unique_ptr<Loader>> Loader::Open(const LoaderOptions& options) {
  auto loader = std::make_unique<LoaderImpl>(options);
  STRATA_RETURN_IF_ERROR(loader->Load());
  return std::unique_ptr<Loader>(std::move(loader));
}

}  // namespace strata::loader
