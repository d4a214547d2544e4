// The model registry (strata._Models): versions, aliases, export and pull for serving, lineage.
// Versions and lineage nodes cross as plain dicts; python/strata/_registry.py wraps them.
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <mutex>

#include "common.h"
#include "strata/registry.h"

namespace strata::python {
namespace {

using nb::gil_scoped_release;

nb::list SignatureList(const std::vector<TensorSignature>& tensors) {
  nb::list out;
  for (const auto& t : tensors) {
    nb::dict d;
    d["name"] = t.name;
    d["dtype"] = t.dtype;
    d["shape"] = t.shape;
    out.append(d);
  }
  return out;
}

nb::dict VersionDict(const ModelVersion& v) {
  nb::dict d;
  d["model"] = v.model;
  d["version"] = v.version;
  d["commit"] = v.commit.ToHex();
  d["time_ns"] = v.time_ns;
  d["author"] = v.author;
  d["run"] = v.run;
  d["step"] = v.step;
  d["checkpoint_commit"] = v.checkpoint_commit.ToHex();
  d["data"] = v.data;
  d["pipeline_hash"] = v.pipeline_hash;
  d["params"] = v.params;
  d["metrics"] = v.metrics;
  nb::dict sig;
  sig["inputs"] = SignatureList(v.signature.inputs);
  sig["outputs"] = SignatureList(v.signature.outputs);
  d["signature"] = sig;
  d["description"] = v.description;
  d["aliases"] = v.aliases;
  return d;
}

nb::dict NodeDict(const LineageNode& n) {
  nb::dict d;
  d["kind"] = n.kind;
  d["label"] = n.label;
  d["attrs"] = n.attrs;
  nb::list inputs;
  for (const auto& c : n.inputs) inputs.append(NodeDict(c));
  d["inputs"] = inputs;
  return d;
}

class PyModels {
 public:
  explicit PyModels(nb::handle repository) : repo_(SharedRepository(repository)) {
    gil_scoped_release release;
    reg_ = Check(ModelRegistry::Open(repo_.get()));
  }
  ~PyModels() {
    gil_scoped_release release;
    reg_.reset();
    repo_.reset();
  }
  // Runs `fn` on the registry without the GIL, one call at a time.
  template <class Fn>
  auto With(Fn&& fn) {
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    return fn(reg_.get());
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Repository> repo_;
  std::unique_ptr<ModelRegistry> reg_;
};

}  // namespace

void BindRegistry(nb::module_& m) {
  nb::class_<PyModels>(m, "_Models")
      .def(nb::init<nb::handle>(), nb::arg("repository"))
      .def("register",
           [](PyModels& p, const std::string& model, const std::string& from, const std::map<std::string, double>& metrics,
              const std::string& signature_json, const std::string& description) {
             RegisterRequest rq;
             rq.model = model;
             rq.from = from;
             rq.metrics = metrics;
             rq.description = description;
             if (!signature_json.empty()) rq.signature = Check(ParseSignature(signature_json));
             return VersionDict(p.With([&](ModelRegistry* r) { return Check(r->Register(rq)); }));
           },
           nb::arg("model"), nb::arg("from_"), nb::arg("metrics"), nb::arg("signature_json"), nb::arg("description"))
      .def("models", [](PyModels& p) { return p.With([](ModelRegistry* r) { return Check(r->ListModels()); }); })
      .def("versions",
           [](PyModels& p, const std::string& model) {
             auto all = p.With([&](ModelRegistry* r) { return Check(r->Versions(model)); });
             nb::list out;
             for (const auto& v : all) out.append(VersionDict(v));
             return out;
           },
           nb::arg("model"))
      .def("get",
           [](PyModels& p, const std::string& spec) {
             return VersionDict(p.With([&](ModelRegistry* r) { return Check(r->Get(spec)); }));
           },
           nb::arg("spec"))
      .def("set_alias",
           [](PyModels& p, const std::string& model, const std::string& alias, int64_t version) {
             p.With([&](ModelRegistry* r) { Check(r->SetAlias(model, alias, version)); return 0; });
           },
           nb::arg("model"), nb::arg("alias"), nb::arg("version"))
      .def("delete_alias",
           [](PyModels& p, const std::string& model, const std::string& alias) {
             p.With([&](ModelRegistry* r) { Check(r->DeleteAlias(model, alias)); return 0; });
           },
           nb::arg("model"), nb::arg("alias"))
      .def("export",
           [](PyModels& p, const std::string& spec, const std::string& path, const std::string& format,
              uint32_t alignment, nb::bytes hash_key) {
             std::string key(hash_key.c_str(), hash_key.size());
             return VersionDict(p.With([&](ModelRegistry* r) {
               ModelVersion v = Check(r->Get(spec));
               auto reader = Check(r->OpenWeights(v));
               if (format == "safetensors") {
                 Check(ExportSafetensors(reader.get(), path));
               } else if (format == "strata") {
                 ServingExportOptions o;
                 o.alignment = alignment;
                 o.hash_key = key;
                 o.metadata = {{"model", v.model}, {"version", std::to_string(v.version)}};
                 Check(ExportServing(reader.get(), path, o));
               } else {
                 Check(Status::InvalidArgument("format must be 'strata' or 'safetensors', not '" + format + "'"));
               }
               return v;
             }));
           },
           nb::arg("spec"), nb::arg("path"), nb::arg("format"), nb::arg("alignment"), nb::arg("hash_key"))
      .def("pull",
           [](PyModels& p, const std::string& spec, const std::string& dir) {
             PullReport rep = p.With([&](ModelRegistry* r) { return Check(PullModel(r, spec, dir)); });
             nb::dict d;
             d["model"] = rep.model;
             d["version"] = rep.version;
             d["tensors"] = rep.tensors;
             d["tensors_reused"] = rep.tensors_reused;
             d["bytes"] = rep.bytes;
             d["bytes_read"] = rep.bytes_read;
             return d;
           },
           nb::arg("spec"), nb::arg("dir"))
      .def("lineage",
           [](PyModels& p, const std::string& spec) {
             return NodeDict(p.With([&](ModelRegistry* r) { return Check(ModelLineage(r, spec)); }));
           },
           nb::arg("spec"))
      .def("lineage_dot",
           [](PyModels& p, const std::string& spec) {
             return p.With([&](ModelRegistry* r) { return LineageDot(Check(ModelLineage(r, spec))); });
           },
           nb::arg("spec"))
      .def("trained_on",
           [](PyModels& p, const std::string& spec) {
             auto all = p.With([&](ModelRegistry* r) { return Check(ModelsTrainedOn(r, spec)); });
             nb::list out;
             for (const auto& v : all) out.append(VersionDict(v));
             return out;
           },
           nb::arg("spec"));
}

}  // namespace strata::python
