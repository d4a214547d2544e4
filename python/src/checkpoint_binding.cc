// Checkpoints, runs and served weights: strata::Checkpointer, CheckpointReader, Runs and
// LoadWeights. The Python side (strata/_checkpoint.py) maps numpy dtypes to the checkpoint's
// names and shapes the arrays; this file moves bytes with the GIL released.
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/set.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common.h"
#include "strata/checkpoint.h"
#include "strata/registry.h"
#include "strata/repository.h"

namespace strata::python {
namespace {

using nb::gil_scoped_release;
using Bytes = nb::ndarray<nb::c_contig, nb::device::cpu>;

nb::dict InfoDict(const CheckpointInfo& c) {
  nb::dict d;
  d["run"] = c.run;
  d["step"] = c.step;
  d["commit"] = c.commit.ToHex();
  d["time_ns"] = c.time_ns;
  d["world_size"] = c.world_size;
  d["bytes"] = c.bytes;
  nb::list tensors;
  for (const auto& t : c.tensors) {
    nb::dict td;
    td["name"] = t.name;
    td["dtype"] = std::string(DTypeName(t.dtype));
    td["shape"] = t.shape;
    td["bytes"] = t.bytes;
    td["pieces"] = t.pieces;
    tensors.append(td);
  }
  d["tensors"] = tensors;
  d["states"] = c.states;
  d["meta"] = c.meta;
  d["metrics"] = c.metrics;
  d["labels"] = c.labels;
  return d;
}

nb::dict RunDict(const RunInfo& r) {
  nb::dict d;
  d["name"] = r.name;
  d["status"] = r.status;
  d["created_ns"] = r.created_ns;
  d["updated_ns"] = r.updated_ns;
  d["params"] = r.params;
  d["tags"] = r.tags;
  d["dataset"] = r.dataset;
  d["loader_state"] = r.loader_state;
  return d;
}

// One run's checkpointer. Saves copy into the staging buffer and return; the destructor (or
// close) waits for the saves in flight, without the GIL so a completion callback can run.
class PyCheckpointer {
 public:
  PyCheckpointer(nb::handle repository, const std::string& run, uint64_t staging_bytes, uint32_t chunk_bytes,
                 size_t max_in_flight, size_t threads, nb::object on_complete)
      : repo_(SharedRepository(repository)) {
    CheckpointerOptions o;
    if (staging_bytes) o.staging_bytes = staging_bytes;
    if (chunk_bytes) o.chunk_bytes = chunk_bytes;
    if (max_in_flight) o.max_in_flight = max_in_flight;
    o.threads = threads;
    if (!on_complete.is_none()) {
      callback_ = std::make_shared<nb::object>(std::move(on_complete));
      std::weak_ptr<nb::object> cb = callback_;
      o.on_complete = [cb](const Status& s, const CheckpointInfo& info) {
        if (!Py_IsInitialized()) return;
        nb::gil_scoped_acquire acquire;
        auto fn = cb.lock();
        if (!fn) return;
        try {
          nb::object err = nb::none();
          if (!s.ok()) err = nb::str(s.ToString().c_str());
          (*fn)(err, InfoDict(info));
        } catch (nb::python_error& e) {
          e.discard_as_unraisable("strata checkpoint on_complete");
        }
      };
    }
    gil_scoped_release release;
    ckpt_ = Check(Checkpointer::Open(repo_.get(), run, o));
  }
  ~PyCheckpointer() {
    // An error nobody waited for is lost here as it would be at process exit; close() raises it.
    try {
      Close();
    } catch (const StatusError&) {
    }
  }

  // tensors: (name, dtype name, array, global_shape or None, offsets or None).
  void Save(int64_t step, const std::vector<std::tuple<std::string, std::string, Bytes, std::optional<std::vector<uint64_t>>,
                                                         std::optional<std::vector<uint64_t>>>>& tensors,
            const std::vector<std::pair<std::string, nb::bytes>>& states,
            const std::map<std::string, std::string>& meta, const std::map<std::string, double>& metrics, int rank,
            int world_size) {
    Checkpointer* c = get();
    SaveRequest req;
    req.step = step;
    req.meta = meta;
    req.metrics = metrics;
    req.rank = rank;
    req.world_size = world_size;
    req.tensors.reserve(tensors.size());
    for (const auto& [name, dtype, array, global_shape, offsets] : tensors) {
      TensorView v;
      v.name = name;
      v.dtype = Check(ParseDType(dtype));
      if (array.itemsize() != DTypeSize(v.dtype)) {
        throw StatusError(Status::InvalidArgument("tensor '" + name + "': " + std::to_string(array.itemsize()) +
                                                  "-byte elements for dtype " + dtype));
      }
      for (size_t i = 0; i < array.ndim(); ++i) v.shape.push_back(array.shape(i));
      v.data = array.data();
      v.bytes = array.nbytes();
      if (global_shape) v.global_shape = *global_shape;
      if (offsets) v.offsets = *offsets;
      req.tensors.push_back(std::move(v));
    }
    for (const auto& [name, blob] : states) req.states.push_back({name, std::string_view(blob.c_str(), blob.size())});
    // The arrays and bytes stay referenced by the arguments until Save returns: the copy into
    // the staging buffer runs without the GIL.
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    Check(c->Save(req));
  }

  void Wait() {
    Checkpointer* c = get();
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    Check(c->Wait());
  }

  // Waits for the saves in flight and releases the checkpointer; an error not yet reported is
  // raised here.
  void Close() {
    std::unique_ptr<Checkpointer> c;
    Status s;
    {
      gil_scoped_release release;
      std::lock_guard lock(mu_);
      if (!ckpt_) return;
      s = ckpt_->Wait();
      c = std::move(ckpt_);
      c.reset();
      repo_.reset();
    }
    callback_.reset();
    Check(s);
  }

 private:
  Checkpointer* get() {
    if (!ckpt_) throw StatusError(Status::FailedPrecondition("the checkpointer is closed"));
    return ckpt_.get();
  }

  std::mutex mu_;
  std::shared_ptr<Repository> repo_;
  std::shared_ptr<nb::object> callback_;
  std::unique_ptr<Checkpointer> ckpt_;
};

class PyReader {
 public:
  PyReader(nb::handle repository, const std::string& run, int64_t step, bool latest_valid, size_t threads)
      : repo_(SharedRepository(repository)) {
    ReadOptions o;
    o.latest_valid = latest_valid;
    o.threads = threads;
    gil_scoped_release release;
    reader_ = Check(CheckpointReader::Open(repo_.get(), run, step, o));
  }
  ~PyReader() {
    gil_scoped_release release;
    reader_.reset();
    repo_.reset();
  }

  nb::dict Info() { return InfoDict(reader_->info()); }

  void Read(const std::string& name, Bytes out) {
    auto* p = static_cast<uint8_t*>(out.data());
    std::span<uint8_t> dst(p, out.nbytes());
    gil_scoped_release release;
    Check(reader_->ReadTensor(name, dst));
  }
  void ReadRows(const std::string& name, uint64_t begin, uint64_t end, Bytes out) {
    auto* p = static_cast<uint8_t*>(out.data());
    std::span<uint8_t> dst(p, out.nbytes());
    gil_scoped_release release;
    Check(reader_->ReadRows(name, begin, end, dst));
  }
  // [(name, out array)]: all read at once, in parallel.
  void ReadMany(const std::vector<std::pair<std::string, Bytes>>& outs) {
    std::vector<TensorBuffer> buffers;
    buffers.reserve(outs.size());
    for (const auto& [name, out] : outs) {
      buffers.push_back({name, std::span<uint8_t>(static_cast<uint8_t*>(out.data()), out.nbytes())});
    }
    gil_scoped_release release;
    Check(reader_->ReadTensors(buffers));
  }
  nb::bytes ReadState(const std::string& name) {
    Result<std::string> r = Status::NotFound("");
    {
      gil_scoped_release release;
      r = reader_->ReadState(name);
    }
    std::string s = Check(std::move(r));
    return nb::bytes(s.data(), s.size());
  }
  void Verify() {
    gil_scoped_release release;
    Check(reader_->Verify());
  }
  void ExportServing(const std::string& path, uint32_t alignment, nb::bytes hash_key,
                     const std::map<std::string, std::string>& metadata) {
    ServingExportOptions o;
    o.alignment = alignment;
    o.hash_key.assign(hash_key.c_str(), hash_key.size());
    o.metadata = metadata;
    gil_scoped_release release;
    Check(strata::ExportServing(reader_.get(), path, o));
  }
  void ExportSafetensors(const std::string& path) {
    gil_scoped_release release;
    Check(strata::ExportSafetensors(reader_.get(), path));
  }

 private:
  std::shared_ptr<Repository> repo_;
  std::unique_ptr<CheckpointReader> reader_;
};

// Runs is thread-compatible: calls are serialised.
class PyRuns {
 public:
  explicit PyRuns(nb::handle repository) : repo_(SharedRepository(repository)) {
    gil_scoped_release release;
    runs_ = Check(Runs::Open(repo_.get()));
  }
  ~PyRuns() {
    gil_scoped_release release;
    runs_.reset();
    repo_.reset();
  }
  template <class Fn>
  auto With(Fn&& fn) {
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    return fn(runs_.get());
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Repository> repo_;
  std::unique_ptr<Runs> runs_;
};

// A mapped serving file; arrays handed out hold it (a capsule owning a shared reference), so
// the mapping lives as long as any of them.
class PyWeights {
 public:
  explicit PyWeights(std::shared_ptr<Weights> w) : w_(std::move(w)) {}
  const std::vector<std::string>& names() const { return w_->names(); }
  const std::map<std::string, std::string>& metadata() const { return w_->metadata(); }

  // (dtype name, shape, read-only uint8 array over the tensor's bytes in the mapping).
  nb::tuple Tensor(const std::string& name) {
    Result<WeightView> r = Status::NotFound("");
    {
      gil_scoped_release release;
      r = w_->Tensor(name);
    }
    WeightView v = Check(std::move(r));
    auto* keep = new std::shared_ptr<Weights>(w_);
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<Weights>*>(p); });
    size_t n = v.bytes.size();
    auto array = nb::ndarray<nb::numpy, const uint8_t, nb::ndim<1>>(v.bytes.data(), 1, &n, owner);
    return nb::make_tuple(std::string(DTypeName(v.dtype)), v.shape, array.cast());
  }
  void VerifyAll() {
    gil_scoped_release release;
    Check(w_->VerifyAll());
  }
  void Verify(const std::vector<std::string>& names) {
    gil_scoped_release release;
    Check(w_->Verify(names));
  }

 private:
  std::shared_ptr<Weights> w_;
};

VerifyMode ParseVerify(const std::string& mode) {
  if (mode == "none") return VerifyMode::kNone;
  if (mode == "on_demand") return VerifyMode::kOnDemand;
  if (mode == "full") return VerifyMode::kFull;
  throw StatusError(Status::InvalidArgument("verify must be 'none', 'on_demand' or 'full', not '" + mode + "'"));
}

}  // namespace

void BindCheckpoint(nb::module_& m) {
  nb::class_<PyCheckpointer>(m, "_Checkpointer")
      .def(nb::init<nb::handle, const std::string&, uint64_t, uint32_t, size_t, size_t, nb::object>(),
           nb::arg("repository"), nb::arg("run"), nb::arg("staging_bytes") = 0, nb::arg("chunk_bytes") = 0,
           nb::arg("max_in_flight") = 0, nb::arg("threads") = 0, nb::arg("on_complete") = nb::none())
      .def("save", &PyCheckpointer::Save, nb::arg("step"), nb::arg("tensors"), nb::arg("states"), nb::arg("meta"),
           nb::arg("metrics"), nb::arg("rank") = 0, nb::arg("world_size") = 1)
      .def("wait", &PyCheckpointer::Wait)
      .def("close", &PyCheckpointer::Close);

  nb::class_<PyReader>(m, "_CheckpointReader")
      .def(nb::init<nb::handle, const std::string&, int64_t, bool, size_t>(), nb::arg("repository"), nb::arg("run"),
           nb::arg("step") = kLatestStep, nb::arg("latest_valid") = false, nb::arg("threads") = 0)
      .def("info", &PyReader::Info)
      .def("read", &PyReader::Read, nb::arg("name"), nb::arg("out"))
      .def("read_rows", &PyReader::ReadRows, nb::arg("name"), nb::arg("begin"), nb::arg("end"), nb::arg("out"))
      .def("read_many", &PyReader::ReadMany, nb::arg("outs"))
      .def("read_state", &PyReader::ReadState, nb::arg("name"))
      .def("verify", &PyReader::Verify)
      .def("export_serving", &PyReader::ExportServing, nb::arg("path"), nb::arg("alignment") = 4096,
           nb::arg("hash_key"), nb::arg("metadata") = std::map<std::string, std::string>{})
      .def("export_safetensors", &PyReader::ExportSafetensors, nb::arg("path"));

  nb::class_<PyRuns>(m, "_Runs")
      .def(nb::init<nb::handle>(), nb::arg("repository"))
      .def("create",
           [](PyRuns& r, const std::string& name, const std::map<std::string, std::string>& params,
              const std::set<std::string>& tags, const std::string& dataset, const std::string& loader_state,
              const std::string& status) {
             RunInfo info;
             info.name = name;
             info.params = params;
             info.tags = tags;
             info.dataset = dataset;
             info.loader_state = loader_state;
             if (!status.empty()) info.status = status;
             r.With([&](Runs* runs) { Check(runs->Create(info)); return 0; });
           },
           nb::arg("name"), nb::arg("params"), nb::arg("tags"), nb::arg("dataset"), nb::arg("loader_state"),
           nb::arg("status"))
      .def("get", [](PyRuns& r, const std::string& run) {
        RunInfo info = r.With([&](Runs* runs) { return Check(runs->Get(run)); });
        return RunDict(info);
      })
      .def("list", [](PyRuns& r) {
        auto all = r.With([&](Runs* runs) { return Check(runs->List()); });
        nb::list out;
        for (const auto& i : all) out.append(RunDict(i));
        return out;
      })
      .def("set_status", [](PyRuns& r, const std::string& run, const std::string& status) {
        r.With([&](Runs* runs) { Check(runs->SetStatus(run, status)); return 0; });
      })
      .def("log_metrics", [](PyRuns& r, const std::string& run,
                             const std::vector<std::tuple<int64_t, std::string, double>>& points) {
        std::vector<MetricPoint> p;
        for (const auto& [step, name, value] : points) p.push_back({step, name, value});
        r.With([&](Runs* runs) { Check(runs->LogMetrics(run, p)); return 0; });
      })
      .def("metrics", [](PyRuns& r, const std::string& run) {
        auto points = r.With([&](Runs* runs) { return Check(runs->Metrics(run)); });
        std::vector<std::tuple<int64_t, std::string, double>> out;
        for (const auto& p : points) out.emplace_back(p.step, p.name, p.value);
        return out;
      })
      .def("checkpoints", [](PyRuns& r, const std::string& run) {
        auto all = r.With([&](Runs* runs) { return Check(runs->Checkpoints(run)); });
        nb::list out;
        for (const auto& c : all) out.append(InfoDict(c));
        return out;
      })
      .def("delete_checkpoint", [](PyRuns& r, const std::string& run, int64_t step) {
        r.With([&](Runs* runs) { Check(runs->DeleteCheckpoint(run, step)); return 0; });
      })
      .def("label_checkpoint", [](PyRuns& r, const std::string& run, int64_t step, const std::string& label) {
        r.With([&](Runs* runs) { Check(runs->LabelCheckpoint(run, step, label)); return 0; });
      })
      .def("best", [](PyRuns& r, const std::string& run, const std::string& metric, size_t k, bool maximize) {
        auto all = r.With([&](Runs* runs) { return Check(runs->Best(run, metric, k, maximize)); });
        nb::list out;
        for (const auto& c : all) out.append(InfoDict(c));
        return out;
      })
      .def("retain", [](PyRuns& r, const std::string& run, uint32_t keep_last, uint32_t keep_best,
                        const std::string& metric, bool maximize, bool keep_labelled, bool dry_run) {
        RetentionSpec spec{keep_last, keep_best, metric, maximize, keep_labelled, dry_run};
        RetentionResult res = r.With([&](Runs* runs) { return Check(runs->Retain(run, spec)); });
        nb::dict d;
        d["kept"] = res.kept;
        d["removed"] = res.removed;
        d["reasons"] = res.reasons;
        return d;
      });

  nb::class_<PyWeights>(m, "_Weights")
      .def_prop_ro("names", &PyWeights::names)
      .def_prop_ro("metadata", &PyWeights::metadata)
      .def("tensor", &PyWeights::Tensor, nb::arg("name"))
      .def("verify_all", &PyWeights::VerifyAll)
      .def("verify", &PyWeights::Verify, nb::arg("names"));

  m.def(
      "_load_weights",
      [](const std::string& path, const std::string& verify, nb::bytes hash_key) {
        LoadOptions o;
        o.verify = ParseVerify(verify);
        o.hash_key.assign(hash_key.c_str(), hash_key.size());
        Result<std::unique_ptr<Weights>> r = Status::NotFound("");
        {
          gil_scoped_release release;
          r = LoadWeights(path, o);
        }
        return std::make_unique<PyWeights>(std::shared_ptr<Weights>(Check(std::move(r))));
      },
      nb::arg("path"), nb::arg("verify"), nb::arg("hash_key"));
}

}  // namespace strata::python
