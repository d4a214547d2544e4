// Reading checkpoints: whole tensors, dim-0 ranges assembled from any pieces (resharding), and
// verification. Every byte comes through the store's BlobReader, which authenticates each chunk.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/logging.h"
#include "base/thread_pool.h"
#include "checkpoint/manifest.h"
#include "checkpoint/runs_impl.h"
#include "strata/lake.h"

namespace strata {
namespace checkpoint {
namespace {

// Reads exactly `n` bytes at `offset` of `reader`; a short file is corruption.
Status ReadExact(BlobReader* reader, uint64_t offset, size_t n, uint8_t* dst) {
  while (n > 0) {
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(reader->ReadAt(offset, n, dst, &got));
    if (got == 0) return Status::Corruption("stored piece is shorter than its manifest says");
    offset += got;
    dst += got;
    n -= got;
  }
  return Status::OK();
}

class ReaderImpl : public CheckpointReader {
 public:
  ReaderImpl(Repository* repo, ObjectId tree, Manifest m, CheckpointInfo info, size_t threads)
      : repo_(repo), tree_(tree), m_(std::move(m)), info_(std::move(info)), threads_(threads) {}

  const CheckpointInfo& info() const override { return info_; }

  Status ReadTensor(std::string_view name, std::span<uint8_t> dst) override {
    STRATA_ASSIGN_OR_RETURN(const TensorRecord* t, Find(name));
    if (t->shape.empty()) {
      if (dst.size() != DTypeSize(t->dtype)) return Status::InvalidArgument(fmt::format("tensor '{}' is a scalar of {} bytes", name, DTypeSize(t->dtype)));
      return Named(t, ReadPiece(t->pieces[0], 0, dst.size(), dst.data()));
    }
    return ReadRows(name, 0, t->shape[0], dst);
  }

  Status ReadRows(std::string_view name, uint64_t begin, uint64_t end, std::span<uint8_t> dst) override {
    STRATA_ASSIGN_OR_RETURN(const TensorRecord* t, Find(name));
    if (t->shape.empty()) return Status::InvalidArgument(fmt::format("tensor '{}' is a scalar: read it whole", name));
    const size_t elem = DTypeSize(t->dtype);
    uint64_t row = 0;
    std::vector<uint64_t> inner(t->shape.begin() + 1, t->shape.end());
    (void)Volume(inner, elem, &row);
    if (begin > end || end > t->shape[0]) {
      return Status::InvalidArgument(fmt::format("rows [{}, {}) are outside tensor '{}' of {} rows", begin, end, name, t->shape[0]));
    }
    if (dst.size() != (end - begin) * row) {
      return Status::InvalidArgument(fmt::format("tensor '{}': rows [{}, {}) are {} bytes, the buffer {}", name, begin, end,
                                                 (end - begin) * row, dst.size()));
    }
    for (const auto& p : t->pieces) {
      uint64_t lo = std::max(begin, p.offsets[0]), hi = std::min(end, p.offsets[0] + p.shape[0]);
      if (lo >= hi) continue;
      bool full_rows = std::equal(p.shape.begin() + 1, p.shape.end(), t->shape.begin() + 1);
      if (full_rows) {
        // The common case (dim-0 sharding, or one piece): one contiguous read.
        STRATA_RETURN_IF_ERROR(Named(t, ReadPiece(p, (lo - p.offsets[0]) * row, (hi - lo) * row, dst.data() + (lo - begin) * row)));
        continue;
      }
      // A piece split along other dims: read it row by row and scatter each row's runs.
      uint64_t prow = 0;
      std::vector<uint64_t> pinner(p.shape.begin() + 1, p.shape.end());
      (void)Volume(pinner, elem, &prow);
      std::vector<uint8_t> buf(prow);
      for (uint64_t r = lo; r < hi; ++r) {
        STRATA_RETURN_IF_ERROR(Named(t, ReadPiece(p, (r - p.offsets[0]) * prow, prow, buf.data())));
        Scatter(*t, p, buf.data(), dst.data() + (r - begin) * row, elem);
      }
    }
    return Status::OK();
  }

  Result<std::string> ReadState(std::string_view name) override {
    for (const auto& s : m_.states) {
      if (s.name != name) continue;
      auto text = ReadTreeFile(repo_, tree_, s.file);
      if (!text.ok()) return text.status().WithContext(fmt::format("{}: state '{}'", Where(), name));
      if (text->size() != s.bytes) return Status::Corruption(fmt::format("{}: state '{}' has {} bytes, its manifest says {}", Where(), name, text->size(), s.bytes));
      return text;
    }
    return Status::NotFound(fmt::format("{} has no state '{}'", Where(), name));
  }

  Status ReadTensors(std::span<const TensorBuffer> buffers) override {
    // Work items of one stored chunk each (chunks are aligned to the piece, so none is decrypted
    // twice): a full-rows piece is one contiguous range of its tensor's buffer, so a large
    // tensor is read by several threads at once.
    const uint64_t item = std::max<uint64_t>(m_.chunk_bytes, 64 << 10);
    std::vector<std::function<Status(std::vector<uint8_t>&)>> items;
    for (const auto& b : buffers) {
      STRATA_ASSIGN_OR_RETURN(const TensorRecord* t, Find(b.name));
      uint64_t bytes = 0;
      (void)Volume(t->shape, DTypeSize(t->dtype), &bytes);
      if (b.dst.size() != bytes) {
        return Status::InvalidArgument(fmt::format("tensor '{}' is {} bytes, the buffer {}", b.name, bytes, b.dst.size()));
      }
      const bool contiguous = std::all_of(t->pieces.begin(), t->pieces.end(), [&](const PieceRecord& p) {
        return t->shape.empty() || std::equal(p.shape.begin() + 1, p.shape.end(), t->shape.begin() + 1);
      });
      if (!contiguous) {
        items.push_back([this, &b](std::vector<uint8_t>&) { return ReadTensor(b.name, b.dst); });
        continue;
      }
      const uint64_t row = t->shape.empty() ? 0 : bytes / std::max<uint64_t>(1, t->shape[0]);
      for (const auto& p : t->pieces) {
        uint8_t* base = b.dst.data() + (t->shape.empty() ? 0 : p.offsets[0] * row);
        for (uint64_t off = 0; off < p.bytes; off += item) {
          size_t n = std::min<uint64_t>(item, p.bytes - off);
          items.push_back([this, t, &p, off, n, base](std::vector<uint8_t>&) { return Named(t, ReadPiece(p, off, n, base + off)); });
        }
      }
    }
    return RunParallel(items);
  }

  Status Verify() override {
    // Every piece and state; the first damaged one is named.
    std::vector<std::function<Status(std::vector<uint8_t>&)>> items;
    for (const auto& t : m_.tensors) {
      for (const auto& p : t.pieces) {
        items.push_back([this, &t, &p](std::vector<uint8_t>& buf) {
          buf.resize(std::min<uint64_t>(kStep, p.bytes));
          Status s;
          for (uint64_t off = 0; off < p.bytes && s.ok(); off += kStep) {
            s = Named(&t, ReadPiece(p, off, std::min<uint64_t>(kStep, p.bytes - off), buf.data()));
          }
          return s;
        });
      }
    }
    for (const auto& s : m_.states) {
      items.push_back([this, &s](std::vector<uint8_t>&) { return ReadState(s.name).status(); });
    }
    return RunParallel(items);
  }

  const Manifest& manifest() const { return m_; }

 private:
  static constexpr uint64_t kStep = 16ull << 20;  // bytes read at once by Verify

  // Runs `items` on up to threads_ threads (each with its own scratch buffer); the first failure
  // stops the rest and is returned.
  Status RunParallel(const std::vector<std::function<Status(std::vector<uint8_t>&)>>& items) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    Status first;
    auto work = [&] {
      std::vector<uint8_t> buf;
      for (size_t i; (i = next.fetch_add(1)) < items.size();) {
        Status s = items[i](buf);
        if (!s.ok()) {
          std::lock_guard<std::mutex> l(mu);
          if (first.ok()) first = s;
          next = items.size();
        }
      }
    };
    size_t n = std::min(items.size(), ThreadsOrCores(threads_));
    std::vector<std::thread> pool;
    for (size_t i = 1; i < n; ++i) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return first;
  }

  std::string Where() const { return fmt::format("checkpoint {} of run {}", m_.step, m_.run); }

  Status Named(const TensorRecord* t, Status s) const {
    if (s.ok()) return s;
    return s.WithContext(fmt::format("{}: tensor '{}'", Where(), t->name));
  }

  Result<const TensorRecord*> Find(std::string_view name) const {
    auto it = std::lower_bound(m_.tensors.begin(), m_.tensors.end(), name,
                               [](const TensorRecord& t, std::string_view n) { return t.name < n; });
    if (it == m_.tensors.end() || it->name != name) return Status::NotFound(fmt::format("{} has no tensor '{}'", Where(), name));
    return &*it;
  }

  Status ReadPiece(const PieceRecord& p, uint64_t offset, size_t n, uint8_t* dst) {
    STRATA_ASSIGN_OR_RETURN(auto reader, repo_->OpenFile(tree_, p.file));
    if (reader->size() != p.bytes) {
      return Status::Corruption(fmt::format("piece {} has {} bytes, its manifest says {}", p.file, reader->size(), p.bytes));
    }
    return ReadExact(reader.get(), offset, n, dst);
  }

  // Copies one dim-0 row of piece `p` (at `src`) into the tensor's row at `dst`.
  static void Scatter(const TensorRecord& t, const PieceRecord& p, const uint8_t* src, uint8_t* dst, size_t elem) {
    const size_t d = t.shape.size();
    const uint64_t run = p.shape[d - 1] * elem;
    if (run == 0) return;
    for (size_t k = 1; k < d; ++k) {
      if (p.shape[k] == 0) return;
    }
    // Index over dims 1 .. d-2 of the piece; each step copies one run along the last dim.
    std::vector<uint64_t> idx(d, 0);
    while (true) {
      uint64_t s = 0, g = 0;
      for (size_t k = 1; k < d; ++k) {
        s = s * p.shape[k] + (k + 1 < d ? idx[k] : 0);
        g = g * t.shape[k] + p.offsets[k] + (k + 1 < d ? idx[k] : 0);
      }
      std::memcpy(dst + g * elem, src + s * elem, run);
      // Next index, last of dims 1 .. d-2 fastest; done when dim 1 wraps.
      size_t k = d - 1;
      while (true) {
        if (k == 1) return;
        --k;
        if (++idx[k] < p.shape[k]) break;
        idx[k] = 0;
      }
    }
  }

  Repository* repo_;
  ObjectId tree_;
  Manifest m_;
  CheckpointInfo info_;
  size_t threads_;
};


Result<std::unique_ptr<ReaderImpl>> OpenTree(Repository* repo, const ObjectId& tree, const CheckpointInfo& ci,
                                             size_t threads) {
  const std::string& run = ci.run;
  auto text = ReadTreeFile(repo, tree, kManifestFile);
  if (!text.ok()) return text.status().WithContext(fmt::format("checkpoint {} of run {}: manifest", ci.step, run));
  auto m = ParseManifest(*text, /*complete=*/true);
  if (!m.ok()) return m.status().WithContext(fmt::format("checkpoint {} of run {}", ci.step, run));
  CheckpointInfo info = ci;
  for (const auto& t : m->tensors) {
    uint64_t bytes = 0;
    (void)Volume(t.shape, DTypeSize(t.dtype), &bytes);
    info.tensors.push_back({t.name, t.dtype, t.shape, bytes, t.pieces.size()});
  }
  for (const auto& s : m->states) info.states.push_back(s.name);
  info.meta = m->meta;
  info.metrics = m->metrics;
  return std::make_unique<ReaderImpl>(repo, tree, std::move(*m), std::move(info), threads);
}

Result<std::unique_ptr<ReaderImpl>> OpenOne(Repository* repo, Lake* lake, std::string_view run, const CheckpointInfo& ci,
                                            size_t threads) {
  STRATA_ASSIGN_OR_RETURN(Resolved r, lake->Resolve(RunDataset(run) + "@" + CheckpointTag(ci.step)));
  return OpenTree(repo, r.commit.tree, ci, threads);
}

}  // namespace

Result<std::unique_ptr<CheckpointReader>> OpenCheckpointTree(Repository* repo, const ObjectId& tree,
                                                             const CheckpointInfo& info, size_t threads) {
  STRATA_ASSIGN_OR_RETURN(auto r, OpenTree(repo, tree, info, threads));
  return std::unique_ptr<CheckpointReader>(std::move(r));
}

Result<std::string> ReadTreeFile(Repository* repo, const ObjectId& tree, std::string_view path) {
  STRATA_ASSIGN_OR_RETURN(auto reader, repo->OpenFile(tree, path));
  if (reader->size() > (1ull << 32)) return Status::Corruption(fmt::format("{} is too large", path));
  std::string out(reader->size(), '\0');
  STRATA_RETURN_IF_ERROR(ReadExact(reader.get(), 0, out.size(), reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

}  // namespace checkpoint

Result<std::unique_ptr<CheckpointReader>> CheckpointReader::Open(Repository* repo, std::string_view run, int64_t step,
                                                                 const ReadOptions& options) {
  using namespace checkpoint;
  STRATA_RETURN_IF_ERROR(ValidateRunName(run));
  STRATA_ASSIGN_OR_RETURN(auto lake, Lake::Open(repo));
  STRATA_ASSIGN_OR_RETURN(auto list, ListCheckpoints(lake.get(), run));
  auto it = list.begin();
  if (step != kLatestStep) {
    it = std::find_if(list.begin(), list.end(), [&](const CheckpointInfo& c) { return c.step == step; });
    if (it == list.end()) return Status::NotFound(fmt::format("run {} has no checkpoint {}", run, step));
  }
  if (it == list.end()) return Status::NotFound(fmt::format("run {} has no checkpoint", run));
  Status first;
  for (; it != list.end(); ++it) {
    auto r = OpenOne(repo, lake.get(), run, *it, options.threads);
    Status s = r.status();
    if (r.ok() && options.latest_valid) s = (*r)->Verify();
    if (s.ok()) return std::unique_ptr<CheckpointReader>(std::move(*r));
    bool damaged = s.code() == StatusCode::kCorruption || s.code() == StatusCode::kNotFound;
    if (!options.latest_valid || !damaged) return s;
    LogWarning(fmt::format("skipping damaged checkpoint: {}", s.message()));
    if (first.ok()) first = s;
  }
  return first.WithContext(fmt::format("run {} has no undamaged checkpoint", run));
}

}  // namespace strata
