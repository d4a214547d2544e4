// The save path: the caller copies each piece, cut into fixed-size chunks, into a bounded
// staging buffer; workers hash, compress (where it helps), encrypt and pack each chunk through
// a write batch of their own; a committer makes the batches durable, writes the checkpoint's
// tree and creates its tag, the one step that makes it visible (checkpoint.h).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/logging.h"
#include "base/thread_pool.h"
#include "checkpoint/manifest.h"
#include "checkpoint/runs_impl.h"
#include "store/object_store.h"
#include "strata/lake.h"

namespace strata {

namespace checkpoint {

using store::ChunkRef;
using store::EntryType;
using store::ObjectKind;
using store::Tree;
using store::TreeEntry;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string FileName(char dir, int rank, size_t i) { return fmt::format("{}/{:05}-{:06}", dir, rank, i); }

TreeEntry FileEntry(std::string name, std::vector<ChunkRef> chunks, uint64_t size, int64_t mtime_ns) {
  TreeEntry e;
  e.name = std::move(name);
  e.type = EntryType::kFile;
  e.mode = 0644;
  e.mtime_ns = mtime_ns;
  e.size = size;
  e.chunks = std::move(chunks);
  return e;
}

TreeEntry DirEntry(std::string name, const ObjectId& subtree, uint64_t size, int64_t mtime_ns) {
  TreeEntry e;
  e.name = std::move(name);
  e.type = EntryType::kDirectory;
  e.mode = 0755;
  e.mtime_ns = mtime_ns;
  e.size = size;
  e.subtree = subtree;
  return e;
}

// Small content (a manifest) as chunks of at most `chunk` bytes.
std::vector<ChunkRef> PutSmall(store::WriteBatch* batch, std::string_view bytes, uint32_t chunk) {
  std::vector<ChunkRef> out;
  for (size_t off = 0; off < bytes.size(); off += chunk) {
    std::string_view part = bytes.substr(off, chunk);
    out.push_back({batch->Put(ObjectKind::kData, part), uint32_t(part.size())});
  }
  return out;
}

// A tree of `files` (names "t/..." and "s/..." and top-level names), written bottom-up.
ObjectId WriteCheckpointTree(store::WriteBatch* batch, std::vector<TreeEntry> files, int64_t mtime_ns) {
  std::map<std::string, Tree> dirs;
  std::map<std::string, uint64_t> dir_sizes;
  Tree root;
  for (auto& e : files) {
    size_t slash = e.name.find('/');
    if (slash == std::string::npos) {
      root.entries.push_back(std::move(e));
      continue;
    }
    std::string dir = e.name.substr(0, slash);
    e.name = e.name.substr(slash + 1);
    dir_sizes[dir] += e.size;
    dirs[dir].entries.push_back(std::move(e));
  }
  for (auto& [name, tree] : dirs) {
    std::sort(tree.entries.begin(), tree.entries.end(), [](const TreeEntry& a, const TreeEntry& b) { return a.name < b.name; });
    root.entries.push_back(DirEntry(name, batch->PutTree(tree), dir_sizes[name], mtime_ns));
  }
  std::sort(root.entries.begin(), root.entries.end(), [](const TreeEntry& a, const TreeEntry& b) { return a.name < b.name; });
  return batch->PutTree(root);
}

Status ValidateRequest(const SaveRequest& r, uint32_t chunk_bytes) {
  if (r.step < 0) return Status::InvalidArgument("a checkpoint's step must not be negative");
  if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size) {
    return Status::InvalidArgument(fmt::format("rank {} is not in [0, world_size {})", r.rank, r.world_size));
  }
  if (chunk_bytes == 0 || chunk_bytes > (64u << 20)) return Status::InvalidArgument("chunk size must be 1 byte to 64 MiB");
  std::set<std::string_view> names;
  for (const auto& t : r.tensors) {
    if (t.name.empty() || t.name.size() > 1024 || !names.insert(t.name).second) {
      return Status::InvalidArgument(fmt::format("tensor name '{}' is empty, too long or repeated", t.name));
    }
    if (DTypeSize(t.dtype) == 0) return Status::InvalidArgument(fmt::format("tensor '{}': bad dtype", t.name));
    uint64_t v = 0;
    if (t.shape.size() > 16 || !Volume(t.shape, DTypeSize(t.dtype), &v) || v != t.bytes) {
      return Status::InvalidArgument(fmt::format("tensor '{}': {} bytes do not match shape and dtype {}", t.name,
                                                 t.bytes, DTypeName(t.dtype)));
    }
    if (t.bytes && !t.data) return Status::InvalidArgument(fmt::format("tensor '{}': no data", t.name));
    if (!t.global_shape.empty() || !t.offsets.empty()) {
      if (t.global_shape.size() != t.shape.size() || t.offsets.size() != t.shape.size()) {
        return Status::InvalidArgument(fmt::format("tensor '{}': global_shape and offsets need one value per dim", t.name));
      }
      for (size_t d = 0; d < t.shape.size(); ++d) {
        if (t.offsets[d] > t.global_shape[d] || t.shape[d] > t.global_shape[d] - t.offsets[d]) {
          return Status::InvalidArgument(fmt::format("tensor '{}': the piece lies outside the global shape", t.name));
        }
      }
    }
  }
  std::set<std::string_view> states;
  for (const auto& s : r.states) {
    if (s.name.empty() || s.name.size() > 1024 || !states.insert(s.name).second) {
      return Status::InvalidArgument(fmt::format("state name '{}' is empty, too long or repeated", s.name));
    }
  }
  return Status::OK();
}

// Float tensors of trained weights look like noise to zstd: it saves a few percent of them
// (the exponent bits) for far more CPU than hashing and sealing, on every save and every load.
// Their chunks are compressed only when that saves a quarter (zeros, pruned or padded tensors).
constexpr uint32_t kFloatMinSaving = 4;

bool IsFloat(DType d) {
  switch (d) {
    case DType::kF64: case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kF8E4M3: case DType::kF8E5M2:
      return true;
    default:
      return false;
  }
}

}  // namespace

// One checkpoint being persisted.
struct SaveJob {
  Manifest manifest;
  std::vector<std::string> files;             // tree path of each file, by index
  std::vector<uint64_t> file_sizes;
  std::vector<uint32_t> min_saving;           // per file: the compression bar (codec::Compress)
  std::vector<std::vector<ChunkRef>> chunks;  // filled in by the workers
  std::vector<std::unique_ptr<store::WriteBatch>> batches;  // one per worker, opened on first use
  size_t outstanding = 0;  // chunks queued or being stored
  bool submitted = false;  // the caller copied everything
  Status status;           // the first failure of a worker
};

struct ChunkTask {
  std::shared_ptr<SaveJob> job;
  size_t file = 0, chunk = 0, slot = 0;
  uint32_t offset = 0;  // in the slot: chunks smaller than a slot share one
  uint32_t size = 0;
};

class CheckpointerImpl : public Checkpointer {
 public:
  CheckpointerImpl(Repository* repo, std::string run, const CheckpointerOptions& options, std::unique_ptr<Lake> lake)
      : repo_(repo), run_(std::move(run)), dataset_(RunDataset(run_)), options_(options), lake_(std::move(lake)) {
    size_t slots = std::max<uint64_t>(2, options_.staging_bytes / options_.chunk_bytes);
    slot_mem_.resize(slots);
    slot_refs_.assign(slots, 0);
    for (size_t i = slots; i-- > 0;) free_slots_.push_back(i);
    size_t workers = ThreadsOrCores(options_.threads);
    for (size_t w = 0; w < workers; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
    committer_ = std::thread([this] { CommitterLoop(); });
  }

  ~CheckpointerImpl() override {
    Status s = Wait();
    if (!s.ok()) LogWarning(fmt::format("checkpoint of run {} failed: {}", run_, s.ToString()));
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    committer_.join();
  }

  Status Save(const SaveRequest& r) override {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (!error_.ok()) return TakeError();
    }
    STRATA_RETURN_IF_ERROR(ValidateRequest(r, options_.chunk_bytes));
    auto job = std::make_shared<SaveJob>();
    Manifest& m = job->manifest;
    m.run = run_;
    m.step = r.step;
    m.world_size = r.world_size;
    m.rank = r.world_size > 1 ? r.rank : -1;
    m.chunk_bytes = options_.chunk_bytes;
    m.time_ns = NowNs();
    m.meta = r.meta;
    m.metrics = r.metrics;
    struct Source {
      const uint8_t* data;
      uint64_t bytes;
    };
    std::vector<Source> sources;
    for (const auto& t : r.tensors) {
      TensorRecord tr;
      tr.name = t.name;
      tr.dtype = t.dtype;
      tr.shape = t.global_shape.empty() ? t.shape : t.global_shape;
      PieceRecord p;
      p.file = FileName('t', r.rank, job->files.size());
      p.offsets = t.offsets.empty() ? std::vector<uint64_t>(t.shape.size(), 0) : t.offsets;
      p.shape = t.shape;
      p.bytes = t.bytes;
      job->files.push_back(p.file);
      job->min_saving.push_back(IsFloat(t.dtype) && !options_.compress_floats ? kFloatMinSaving : codec::kDefaultMinSaving);
      sources.push_back({static_cast<const uint8_t*>(t.data), t.bytes});
      tr.pieces.push_back(std::move(p));
      if (r.world_size == 1) STRATA_RETURN_IF_ERROR(CheckCoverage(tr).WithContext("the piece is not the whole tensor"));
      m.tensors.push_back(std::move(tr));
    }
    std::sort(m.tensors.begin(), m.tensors.end(), [](const TensorRecord& a, const TensorRecord& b) { return a.name < b.name; });
    for (const auto& s : r.states) {
      StateRecord sr;
      sr.name = r.world_size > 1 ? fmt::format("rank{}/{}", r.rank, s.name) : s.name;
      sr.file = FileName('s', r.rank, job->files.size());
      sr.bytes = s.bytes.size();
      job->files.push_back(sr.file);
      job->min_saving.push_back(codec::kDefaultMinSaving);
      sources.push_back({reinterpret_cast<const uint8_t*>(s.bytes.data()), s.bytes.size()});
      m.states.push_back(std::move(sr));
    }
    job->chunks.resize(job->files.size());
    job->file_sizes.resize(job->files.size());
    job->batches.resize(workers_.size());
    for (size_t f = 0; f < sources.size(); ++f) {
      job->file_sizes[f] = sources[f].bytes;
      job->chunks[f].resize((sources[f].bytes + options_.chunk_bytes - 1) / options_.chunk_bytes);
    }

    // Staging memory is allocated on first use. Fault in, here, about as many slots as this
    // request can hold at once (slots are taken lowest index first and a freed one is reused
    // first, so with one checkpoint in flight a save of this size rarely reaches past them): the
    // first save pays for the page faults once, instead of each following save growing the pool
    // a little further and paying for that part inside the caller's stall. Slots past these are
    // still allocated when first used.
    {
      uint64_t full = 0, partial = 0;
      for (const auto& src : sources) {
        full += src.bytes / options_.chunk_bytes;
        partial += (src.bytes % options_.chunk_bytes + 63) / 64 * 64;
      }
      uint64_t need = std::min<uint64_t>(slot_mem_.size(), full + partial / options_.chunk_bytes + OpenSlots() + 2);
      for (uint64_t i = 0; i < need; ++i) {
        if (slot_mem_[i]) continue;  // null slots are in no one's use: no lock needed
        slot_mem_[i] = std::make_unique_for_overwrite<uint8_t[]>(options_.chunk_bytes);
        std::memset(slot_mem_[i].get(), 0, options_.chunk_bytes);
      }
    }

    std::unique_lock<std::mutex> l(mu_);
    // Bounded checkpoints in flight: the oldest must be durable before another starts.
    cv_.wait(l, [&] { return in_flight_ < options_.max_in_flight; });
    if (!error_.ok()) return TakeError();  // a save that was in flight failed meanwhile
    ++in_flight_;
    // A full-size chunk takes a slot of its own; smaller ones (a tensor's last chunk, small
    // tensors such as biases and norms) are packed (64-byte aligned) into shared slots, each into
    // the first of up to OpenSlots() open ones with room (first fit: with one open slot, a model
    // of 435 bfloat16 tensors needed 10% more slots than the model's size and Save waited for
    // the workers). One slot per chunk would let a model of many small tensors fill a buffer
    // larger than itself. A slot is free again once its last chunk is stored and, for a shared
    // slot, this loop has closed it (the loop holds one reference to each open slot).
    //
    // The workers are woken when the copy is done, or earlier when it needs a slot they must
    // free first: until then the caller, whose stall this is, has the cores to itself.
    auto take_slot = [&] {
      if (free_slots_.empty()) cv_.notify_all();
      cv_.wait(l, [&] { return !free_slots_.empty(); });
      size_t slot = free_slots_.back();
      free_slots_.pop_back();
      return slot;
    };
    struct OpenSlot {
      size_t slot;
      uint32_t at;  // first free byte
    };
    std::vector<OpenSlot> open;
    for (size_t f = 0; f < sources.size(); ++f) {
      for (size_t c = 0; c < job->chunks[f].size(); ++c) {
        uint64_t off = uint64_t(c) * options_.chunk_bytes;
        uint32_t n = uint32_t(std::min<uint64_t>(options_.chunk_bytes, sources[f].bytes - off));
        size_t slot;
        uint32_t at = 0;
        if (n == options_.chunk_bytes) {
          slot = take_slot();
          slot_refs_[slot] = 0;
        } else {
          auto it = std::find_if(open.begin(), open.end(),
                                 [&](const OpenSlot& o) { return uint64_t(o.at) + n <= options_.chunk_bytes; });
          if (it == open.end()) {
            if (open.size() == OpenSlots()) {  // close the fullest
              auto fullest = std::max_element(open.begin(), open.end(),
                                              [](const OpenSlot& a, const OpenSlot& b) { return a.at < b.at; });
              ReleaseSlotLocked(fullest->slot);
              open.erase(fullest);
            }
            size_t s = take_slot();
            slot_refs_[s] = 1;
            open.push_back({s, 0});
            it = open.end() - 1;
          }
          slot = it->slot;
          at = it->at;
          it->at = uint32_t(std::min<uint64_t>(options_.chunk_bytes, (uint64_t(at) + n + 63) / 64 * 64));
        }
        ++slot_refs_[slot];
        ++job->outstanding;
        l.unlock();
        if (!slot_mem_[slot]) slot_mem_[slot] = std::make_unique_for_overwrite<uint8_t[]>(options_.chunk_bytes);
        std::memcpy(slot_mem_[slot].get() + at, sources[f].data + off, n);
        l.lock();
        tasks_.push_back({job, f, c, slot, at, n});
      }
    }
    for (const auto& o : open) ReleaseSlotLocked(o.slot);
    job->submitted = true;
    if (job->outstanding == 0) ready_.push_back(job);
    cv_.notify_all();
    return Status::OK();
  }

  Status Wait() override {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return in_flight_ == 0; });
    return TakeError();
  }

 private:
  // Drops one reference to a staging slot; the last one frees it. Expects mu_ held.
  void ReleaseSlotLocked(size_t slot) {
    if (--slot_refs_[slot] == 0) {
      free_slots_.push_back(slot);
      cv_.notify_all();
    }
  }

  // Shared slots packed at once: a quarter of the buffer at most, so full-size chunks always
  // have slots to cycle through while the loop holds the open ones.
  size_t OpenSlots() const { return std::clamp<size_t>(slot_refs_.size() / 4, 1, 8); }

  Status TakeError() {
    Status s = error_;
    error_ = Status::OK();
    return s;
  }

  void WorkerLoop(size_t w) {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      ChunkTask t = std::move(tasks_.front());
      tasks_.pop_front();
      SaveJob& job = *t.job;
      bool failed = !job.status.ok();
      l.unlock();
      if (!failed) {
        Status s;
        if (!job.batches[w]) {
          auto b = repo_->objects()->NewBatch({.redundancy_class = dataset_});
          if (b.ok()) job.batches[w] = std::move(*b);
          else s = b.status();
        }
        if (s.ok()) {
          std::string_view bytes(reinterpret_cast<const char*>(slot_mem_[t.slot].get()) + t.offset, t.size);
          job.chunks[t.file][t.chunk] = {job.batches[w]->Put(ObjectKind::kData, bytes, job.min_saving[t.file]), t.size};
        }
        if (!s.ok()) {
          std::lock_guard<std::mutex> g(mu_);
          if (job.status.ok()) job.status = s;
        }
      }
      l.lock();
      ReleaseSlotLocked(t.slot);
      if (--job.outstanding == 0 && job.submitted) ready_.push_back(t.job);
      cv_.notify_all();
    }
  }

  void CommitterLoop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [&] { return stop_ || !ready_.empty(); });
      if (ready_.empty()) return;
      std::shared_ptr<SaveJob> job = std::move(ready_.front());
      ready_.pop_front();
      l.unlock();
      CheckpointInfo info;
      Status s = job->status;
      if (s.ok()) s = Persist(job.get(), &info);
      s = s.ok() ? s : s.WithContext(fmt::format("saving checkpoint {} of run {}", job->manifest.step, run_));
      job->batches.clear();  // releases the shared locks
      if (options_.on_complete) options_.on_complete(s, info);
      l.lock();
      if (!s.ok() && error_.ok()) error_ = s;
      --in_flight_;
      cv_.notify_all();
    }
  }

  Status Persist(SaveJob* job, CheckpointInfo* info) {
    // Every chunk durable first; the tree and its tag come after.
    for (auto& b : job->batches) {
      if (b) STRATA_RETURN_IF_ERROR(b->Commit());
    }
    if (!job->batches[0]) {
      STRATA_ASSIGN_OR_RETURN(job->batches[0], repo_->objects()->NewBatch({.redundancy_class = dataset_}));
    }
    store::WriteBatch* batch = job->batches[0].get();
    const Manifest& m = job->manifest;
    std::vector<TreeEntry> files;
    for (size_t f = 0; f < job->files.size(); ++f) {
      files.push_back(FileEntry(job->files[f], std::move(job->chunks[f]), job->file_sizes[f], m.time_ns));
    }
    if (m.world_size == 1) {
      return CommitCheckpoint(batch, m, std::move(files), info, lake_.get());
    }
    std::string text = EncodeManifest(m);
    files.push_back(FileEntry(std::string(kRankFile), PutSmall(batch, text, m.chunk_bytes), text.size(), m.time_ns));
    ObjectId tree = WriteCheckpointTree(batch, std::move(files), m.time_ns);
    STRATA_RETURN_IF_ERROR(batch->Commit());
    CommitOptions co;
    co.message = fmt::format("checkpoint {} of run {}: rank {} of {}", m.step, run_, m.rank, m.world_size);
    co.time_ns = m.time_ns;
    auto tagged = lake_->TagTree(dataset_ + "@" + PendingTag(m.step, m.rank), tree, co);
    if (!tagged.ok() && tagged.status().code() != StatusCode::kAlreadyExists) return tagged.status();
    if (!tagged.ok()) {
      return Status::AlreadyExists(fmt::format("rank {} already saved its part of checkpoint {}", m.rank, m.step));
    }
    return FinalizeSharded(repo_, lake_.get(), run_, m.step, m.world_size, info);
  }

  Repository* repo_;
  std::string run_, dataset_;
  CheckpointerOptions options_;
  std::unique_ptr<Lake> lake_;  // used by the committer thread only (after Open)

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<uint8_t[]>> slot_mem_;  // staging, allocated on first use
  std::vector<size_t> free_slots_;
  std::vector<uint32_t> slot_refs_;  // chunks queued in each slot, plus one while Save fills it
  std::deque<ChunkTask> tasks_;
  std::deque<std::shared_ptr<SaveJob>> ready_;
  size_t in_flight_ = 0;
  Status error_;  // the first failure not yet returned
  bool stop_ = false;
  std::vector<std::thread> workers_;
  std::thread committer_;
};

// Writes the tree of a complete checkpoint (manifest first) and creates its tag. `batch` has
// written `files`' chunks (durable) and stays open until the tag is.
Status CommitCheckpoint(store::WriteBatch* batch, Manifest m, std::vector<TreeEntry> files, CheckpointInfo* info,
                        Lake* lake) {
  std::sort(m.tensors.begin(), m.tensors.end(), [](const TensorRecord& a, const TensorRecord& b) { return a.name < b.name; });
  m.rank = -1;
  std::string text = EncodeManifest(m);
  files.push_back(FileEntry(std::string(kManifestFile), PutSmall(batch, text, std::max<uint32_t>(m.chunk_bytes, 1u << 20)),
                            text.size(), m.time_ns));
  ObjectId tree = WriteCheckpointTree(batch, std::move(files), m.time_ns);
  STRATA_RETURN_IF_ERROR(batch->Commit());
  CommitOptions co;
  co.message = fmt::format("checkpoint {} of run {}", m.step, m.run);
  co.time_ns = m.time_ns;
  uint64_t bytes = 0;
  for (const auto& t : m.tensors) {
    for (const auto& p : t.pieces) bytes += p.bytes;
  }
  for (const auto& s : m.states) bytes += s.bytes;
  co.meta = {{"ckpt.step", std::to_string(m.step)},
             {"ckpt.world_size", std::to_string(m.world_size)},
             {"ckpt.bytes", std::to_string(bytes)},
             {"ckpt.tensors", std::to_string(m.tensors.size())}};
  for (const auto& [k, v] : m.metrics) co.meta["metric." + k] = fmt::format("{}", v);
  for (const auto& [k, v] : m.meta) co.meta["meta." + k] = v;
  STRATA_ASSIGN_OR_RETURN(ObjectId commit, lake->TagTree(RunDataset(m.run) + "@" + CheckpointTag(m.step), tree, co));
  info->run = m.run;
  info->step = m.step;
  info->commit = commit;
  info->time_ns = m.time_ns;
  info->world_size = m.world_size;
  info->bytes = bytes;
  info->meta = m.meta;
  info->metrics = m.metrics;
  return Status::OK();
}

Status FinalizeSharded(Repository* repo, Lake* lake, const std::string& run, int64_t step, int world_size,
                       CheckpointInfo* info) {
  const std::string ds = RunDataset(run);
  const std::string prefix = PendingPrefix(step);
  STRATA_ASSIGN_OR_RETURN(auto refs, lake->ListRefs(ds));
  std::vector<RefInfo> parts;
  bool done = false;
  for (auto& r : refs) {
    if (r.name.starts_with(prefix)) parts.push_back(r);
    if (r.name == CheckpointTag(step)) done = true;
  }
  auto drop_parts = [&] {
    for (const auto& p : parts) {
      Status s = lake->DeleteRef(ds + "@" + p.name);
      if (!s.ok() && !s.IsNotFound()) LogWarning(fmt::format("could not drop {}@{}: {}", ds, p.name, s.ToString()));
    }
  };
  if (done) {
    drop_parts();
    return Status::OK();
  }
  if (parts.size() < size_t(world_size)) return Status::OK();
  // The batch's shared lock keeps gc away between reading the parts and the new tag.
  STRATA_ASSIGN_OR_RETURN(auto batch, repo->objects()->NewBatch({.redundancy_class = ds}));
  Manifest m;
  std::map<std::string, TensorRecord> tensors;
  std::vector<TreeEntry> files;
  std::vector<bool> seen(world_size, false);
  for (const auto& p : parts) {
    STRATA_ASSIGN_OR_RETURN(Resolved part, lake->Resolve(ds + "@" + p.name));
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadTreeFile(repo, part.commit.tree, kRankFile));
    STRATA_ASSIGN_OR_RETURN(Manifest rm, ParseManifest(text, /*complete=*/false));
    if (rm.step != step || rm.world_size != world_size || rm.rank < 0 || seen[rm.rank]) {
      return Status::Corruption(fmt::format("part {} of checkpoint {} does not match its tag (step {}, rank {} of {})",
                                            p.name, step, rm.step, rm.rank, rm.world_size));
    }
    seen[rm.rank] = true;
    if (rm.rank == 0 || m.run.empty()) {
      m.run = run;
      m.step = step;
      m.world_size = world_size;
      m.chunk_bytes = rm.chunk_bytes;
      m.meta.insert(rm.meta.begin(), rm.meta.end());
      m.metrics.insert(rm.metrics.begin(), rm.metrics.end());
    }
    m.time_ns = std::max(m.time_ns, rm.time_ns);
    for (auto& t : rm.tensors) {
      auto [it, fresh] = tensors.emplace(t.name, t);
      if (fresh) continue;
      if (it->second.dtype != t.dtype || it->second.shape != t.shape) {
        return Status::InvalidArgument(fmt::format("checkpoint {}: ranks disagree on the dtype or shape of tensor '{}'",
                                                   step, t.name));
      }
      for (auto& piece : t.pieces) it->second.pieces.push_back(std::move(piece));
    }
    for (auto& s : rm.states) m.states.push_back(std::move(s));
    STRATA_ASSIGN_OR_RETURN(store::Tree root, repo->objects()->ReadTree(part.commit.tree));
    for (const auto& e : root.entries) {
      if (e.type != EntryType::kDirectory) continue;
      STRATA_ASSIGN_OR_RETURN(store::Tree sub, repo->objects()->ReadTree(e.subtree));
      for (auto& f : sub.entries) {
        f.name = e.name + "/" + f.name;
        files.push_back(std::move(f));
      }
    }
  }
  for (auto& [name, t] : tensors) {
    Status s = CheckCoverage(t);
    if (!s.ok()) return Status::InvalidArgument(fmt::format("checkpoint {}: {}", step, s.message()));
    m.tensors.push_back(std::move(t));
  }
  Status s = CommitCheckpoint(batch.get(), std::move(m), std::move(files), info, lake);
  if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;  // another rank finished first
  drop_parts();
  return Status::OK();
}

}  // namespace checkpoint

Result<std::unique_ptr<Checkpointer>> Checkpointer::Open(Repository* repo, std::string_view run,
                                                         const CheckpointerOptions& options) {
  using namespace checkpoint;
  STRATA_RETURN_IF_ERROR(ValidateRunName(run));
  if (options.chunk_bytes == 0 || options.chunk_bytes > (64u << 20)) {
    return Status::InvalidArgument("chunk size must be 1 byte to 64 MiB");
  }
  if (options.max_in_flight == 0) return Status::InvalidArgument("max_in_flight must be at least 1");
  STRATA_ASSIGN_OR_RETURN(auto lake, Lake::Open(repo));
  STRATA_RETURN_IF_ERROR(EnsureRun(lake.get(), run));
  return std::unique_ptr<Checkpointer>(new CheckpointerImpl(repo, std::string(run), options, std::move(lake)));
}

}  // namespace strata
