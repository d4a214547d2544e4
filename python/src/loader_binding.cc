// strata.Loader: the C++ training loader (include/strata/loader.h). A batch's columns become
// numpy arrays over the batch's own aligned buffer (the arrays keep the batch alive), and Next()
// runs without the GIL, so reads and decoding overlap the Python training step.
#include "common.h"

#ifdef STRATA_HAVE_LOADER
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <memory>

#include "dtype.h"
#include "loader/partition.h"
#include "strata/loader.h"

namespace strata::python {
namespace {

using nb::gil_scoped_release;
using loader::Batch;
using loader::LoaderState;

LoaderState StateFromPython(nb::handle h) {
  LoaderState s;
  nb::dict d = nb::cast<nb::dict>(h);
  s.seed = nb::cast<uint64_t>(d["seed"]);
  s.epoch = nb::cast<uint64_t>(d["epoch"]);
  s.consumed = nb::cast<uint64_t>(d["consumed"]);
  return s;
}

nb::dict StateToPython(const LoaderState& s) {
  nb::dict d;
  d["seed"] = s.seed;
  d["epoch"] = s.epoch;
  d["consumed"] = s.consumed;
  return d;
}

loader::ShuffleOptions ShuffleFrom(const std::string& mode, uint64_t block_records, uint64_t window_blocks) {
  loader::ShuffleOptions o;
  if (mode == "none") o.mode = loader::ShuffleMode::kNone;
  else if (mode == "global") o.mode = loader::ShuffleMode::kGlobal;
  else if (mode == "block") o.mode = loader::ShuffleMode::kBlock;
  else throw StatusError(Status::InvalidArgument("unknown shuffle '" + mode + "' (known: none, global, block)"));
  o.block_records = block_records;
  o.window_blocks = window_blocks;
  return o;
}

// The batch's columns as a dict; `info` gets indices, epoch, batch_index, skipped, state_after.
nb::tuple BatchToPython(std::unique_ptr<Batch> batch) {
  Batch* b = batch.release();
  nb::capsule owner(b, [](void* p) noexcept { delete static_cast<Batch*>(p); });
  auto* base = const_cast<uint8_t*>(b->data());
  nb::dict cols;
  for (const auto& c : b->columns()) {
    shard::DType dtype = c.dtype;
    if (!c.ragged) {
      std::vector<size_t> shape(c.shape.begin(), c.shape.end());
      cols[c.name.c_str()] =
          nb::ndarray<nb::numpy>(base + c.offset, shape.size(), shape.data(), owner, nullptr, DLPackType(dtype)).cast();
      continue;
    }
    const auto* offsets = reinterpret_cast<const uint64_t*>(base + c.offsets_offset);
    nb::list items;
    for (size_t i = 0; i < b->size(); ++i) {
      uint8_t* p = base + c.offset + offsets[i];
      size_t len = offsets[i + 1] - offsets[i];
      if (c.type == shard::FieldType::kTensor) {
        const auto* dims = reinterpret_cast<const int64_t*>(base + c.shapes_offset) + size_t(c.rank) * i;
        std::vector<size_t> shape(dims, dims + c.rank);
        items.append(nb::ndarray<nb::numpy>(p, shape.size(), shape.data(), owner, nullptr, DLPackType(dtype)).cast());
      } else if (c.type == shard::FieldType::kString) {
        items.append(nb::str(reinterpret_cast<const char*>(p), len));
      } else {
        items.append(nb::bytes(p, len));
      }
    }
    cols[c.name.c_str()] = items;
  }
  nb::dict info;
  size_t n = b->size();
  info["indices"] = nb::ndarray<nb::numpy, const uint64_t>(b->indices().data(), 1, &n, owner).cast();
  info["epoch"] = b->epoch();
  info["batch_index"] = b->batch_index();
  info["skipped"] = b->skipped();
  info["state_after"] = StateToPython(b->state_after());
  if (b->shared_fd() >= 0) {
    // The buffer's memfd (valid while the arrays live) and where each dense column starts in it,
    // for tensors over shared memory (strata.torch in DataLoader workers).
    info["shared_fd"] = b->shared_fd();
    info["nbytes"] = b->nbytes();
    nb::dict offsets;
    for (const auto& c : b->columns()) {
      if (!c.ragged) offsets[c.name.c_str()] = c.offset;
    }
    info["offsets"] = offsets;
  }
  return nb::make_tuple(cols, info);
}

class PyLoader {
 public:
  explicit PyLoader(loader::LoaderOptions options) {
    gil_scoped_release release;
    loader_ = Check(loader::Loader::Open(options));
  }
  nb::object Next() {
    std::unique_ptr<Batch> batch;
    {
      gil_scoped_release release;
      batch = Check(loader_->Next());
    }
    if (!batch) return nb::none();
    return BatchToPython(std::move(batch));
  }
  nb::tuple Get(nb::ndarray<const int64_t, nb::ndim<1>, nb::device::cpu> records) {
    std::vector<uint64_t> ids(records.shape(0));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (records(i) < 0) throw nb::index_error("negative record number");
      ids[i] = uint64_t(records(i));
    }
    std::unique_ptr<Batch> batch;
    {
      gil_scoped_release release;
      batch = Check(loader_->Get(ids));
    }
    return BatchToPython(std::move(batch));
  }
  loader::Loader* get() { return loader_.get(); }

 private:
  std::unique_ptr<loader::Loader> loader_;
};

}  // namespace

void BindLoader(nb::module_& m) {
  m.attr("HAVE_LOADER") = true;

  // The partition rule (loader.h), for the map-style sampler and the datasets' resume state.
  m.def("_rank_samples", [](uint64_t n, uint64_t start, uint64_t world, uint64_t rank, uint64_t batch, bool drop_last,
                            bool pad) {
    loader::Partition p{.n = n, .start = start, .world = world, .rank = rank, .batch = batch, .drop_last = drop_last,
                        .pad = pad};
    return p.RankSamples();
  });
  m.def("_consumed_after", [](uint64_t n, uint64_t start, uint64_t world, uint64_t batch, uint64_t batches) {
    loader::Partition p{.n = n, .start = start, .world = world, .batch = batch};
    return batches == 0 ? std::min(n, start) : p.ConsumedAfter(batches - 1);
  });

  nb::class_<loader::Shuffle>(m, "_Shuffle")
      .def("__init__", [](loader::Shuffle* self, uint64_t n, uint64_t seed, uint64_t epoch, const std::string& mode,
                          uint64_t block_records, uint64_t window_blocks) {
        new (self) loader::Shuffle(n, seed, epoch, ShuffleFrom(mode, block_records, window_blocks));
      }, nb::arg("n"), nb::arg("seed"), nb::arg("epoch"), nb::arg("mode") = "global",
         nb::arg("block_records") = 1024, nb::arg("window_blocks") = 16)
      .def("__len__", &loader::Shuffle::size)
      // Records at positions [start, stop) as an int64 array.
      .def("positions", [](const loader::Shuffle& s, uint64_t start, uint64_t stop) {
        stop = std::min(stop, s.size());
        start = std::min(start, stop);
        size_t n = stop - start;
        auto* out = new int64_t[n ? n : 1];
        {
          gil_scoped_release release;
          for (size_t i = 0; i < n; ++i) out[i] = int64_t(s.Position(start + i));
        }
        nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
        return nb::ndarray<nb::numpy, int64_t>(out, 1, &n, owner);
      }, nb::arg("start"), nb::arg("stop"));

  nb::class_<PyLoader>(m, "_Loader")
      .def("__init__", [](PyLoader* self, const std::vector<std::string>& shards, uint64_t batch_size, uint64_t seed,
                          const std::string& shuffle, uint64_t block_records, uint64_t window_blocks, uint32_t rank,
                          uint32_t world_size, uint32_t worker_id, uint32_t num_workers, bool drop_last, bool pad,
                          uint64_t prefetch_bytes, uint32_t queue_depth, bool direct_io, bool skip_corrupt,
                          const std::optional<nb::bytes>& key, bool shared_memory) {
        loader::LoaderOptions o;
        o.shards = shards;
        o.key = ShardKey(key);
        o.batch_size = batch_size;
        o.seed = seed;
        o.shuffle = ShuffleFrom(shuffle, block_records, window_blocks);
        o.rank = rank;
        o.world_size = world_size;
        o.worker_id = worker_id;
        o.num_workers = num_workers;
        o.drop_last = drop_last;
        o.pad = pad;
        o.prefetch_bytes = prefetch_bytes;
        o.queue_depth = queue_depth;
        o.direct_io = direct_io;
        o.skip_corrupt = skip_corrupt;
        o.shared_memory = shared_memory;
        new (self) PyLoader(std::move(o));
      }, nb::arg("shards"), nb::arg("batch_size") = 32, nb::arg("seed") = 0, nb::arg("shuffle") = "global",
         nb::arg("block_records") = 1024, nb::arg("window_blocks") = 16, nb::arg("rank") = 0,
         nb::arg("world_size") = 1, nb::arg("worker_id") = 0, nb::arg("num_workers") = 1,
         nb::arg("drop_last") = false, nb::arg("pad") = false, nb::arg("prefetch_bytes") = 256ull << 20,
         nb::arg("queue_depth") = 64, nb::arg("direct_io") = true, nb::arg("skip_corrupt") = false,
         nb::arg("key") = nb::none(), nb::arg("shared_memory") = false)
      .def_prop_ro("schema", [](PyLoader& l) { return SchemaList(l.get()->schema()); })
      .def_prop_ro("num_samples", [](PyLoader& l) { return l.get()->num_samples(); })
      .def("samples_from", [](PyLoader& l, nb::handle state) { return l.get()->SamplesFrom(StateFromPython(state)); })
      .def("batches_from", [](PyLoader& l, nb::handle state) { return l.get()->BatchesFrom(StateFromPython(state)); })
      .def("start", [](PyLoader& l, nb::handle state) {
        LoaderState s = StateFromPython(state);
        gil_scoped_release release;
        Check(l.get()->Start(s));
      })
      .def("next", &PyLoader::Next)
      .def("get", &PyLoader::Get, nb::arg("records"))
      .def("stats", [](PyLoader& l) {
        loader::LoaderStats s = l.get()->stats();
        nb::dict d;
        d["batches"] = s.batches;
        d["samples"] = s.samples;
        d["skipped"] = s.skipped;
        d["reads"] = s.reads;
        d["bytes_read"] = s.bytes_read;
        d["peak_buffered_bytes"] = s.peak_buffered_bytes;
        d["direct_io"] = s.direct_io;
        return d;
      });
}

}  // namespace strata::python

#else  // the tree has no loader module yet

namespace strata::python {
void BindLoader(nb::module_& m) { m.attr("HAVE_LOADER") = false; }
}  // namespace strata::python

#endif
