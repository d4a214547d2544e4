// strata._strata_data: transforms and curation from Python. A separate extension because they
// link OpenCV, libjpeg, utf8proc and SentencePiece, which `import strata` should not load; it
// is imported on the first Repository.transform() or .curate(), and runs them on the open
// repository of strata._strata through _Repository._run_native (native_call.h).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "native_call.h"
#include "strata/curate.h"
#include "strata/transform.h"

namespace strata::python {
namespace {

// Runs fn(repo, lake) -> Result<R> on `repository` (a strata._strata._Repository) and returns
// R; a failure is raised by _strata as the strata.Error of its code.
template <class R, class Fn>
R RunOnLake(nb::handle repository, Fn fn) {
  struct Ctx {
    Fn* fn;
    std::optional<R> out;
  } ctx{&fn, std::nullopt};
  NativeLakeCall call;
  call.ctx = &ctx;
  call.fn = [](Repository* repo, Lake* lake, void* p, Status* status) {
    auto* c = static_cast<Ctx*>(p);
    Result<R> r = (*c->fn)(repo, lake);
    if (r.ok()) c->out = std::move(*r);
    else *status = r.status();
  };
  repository.attr("_run_native")(nb::capsule(&call, kNativeLakeCallName));
  return std::move(*ctx.out);
}

nb::dict TransformDict(const TransformReport& r) {
  nb::dict d;
  d["input_commit"] = r.input_commit;
  d["input_tree"] = r.input_tree;
  d["pipeline_hash"] = r.pipeline_hash;
  d["up_to_date"] = r.up_to_date;
  d["records_in"] = r.records_in;
  d["records"] = r.records_out;
  d["failed"] = r.failed;
  d["reused"] = r.reused;
  d["fit_reused"] = r.fit_reused;
  d["resumed_records"] = r.resumed_records;
  d["resumed_shards"] = r.resumed_shards;
  d["checkpoints"] = r.checkpoints;
  nb::list errors;
  for (const auto& e : r.errors) {
    nb::dict x;
    x["path"] = e.path;
    x["op"] = e.op;
    x["error"] = e.message;
    errors.append(x);
  }
  d["errors"] = errors;
  nb::list shards;
  for (const auto& s : r.shards) {
    nb::dict x;
    x["path"] = s.path;
    x["id"] = s.id;
    x["first_record"] = s.first_record;
    x["records"] = s.records;
    x["bytes"] = s.bytes;
    shards.append(x);
  }
  d["shards"] = shards;
  d["manifest"] = r.manifest;
  d["commit"] = CommitResultDict(r.commit);
  d["seconds"] = r.seconds;
  d["fit_seconds"] = r.fit_seconds;
  d["write_seconds"] = r.write_seconds;
  d["store_seconds"] = r.store_seconds;
  d["write_cpu_seconds"] = r.write_cpu_seconds;
  d["store_cpu_seconds"] = r.store_cpu_seconds;
  return d;
}

nb::dict CurationDict(const CurationReport& r) {
  nb::dict d;
  d["source"] = r.source;
  d["target"] = r.target;
  d["source_commit"] = r.source_commit.ToHex();
  d["records_before"] = r.records_before;
  d["records_after"] = r.records_after;
  d["relabelled"] = r.relabelled;
  d["normalised"] = r.normalised;
  nb::dict per_rule;
  for (const auto& [rule, n] : r.per_rule) per_rule[rule.c_str()] = n;
  d["per_rule"] = per_rule;
  nb::list quarantined;
  for (const auto& f : r.quarantined) {
    nb::dict x;
    x["path"] = f.path;
    x["rule"] = f.rule;
    x["reason"] = f.reason;
    quarantined.append(x);
  }
  d["quarantined"] = quarantined;
  d["commit"] = CommitResultDict(r.commit);
  d["seconds"] = r.seconds;
  return d;
}

}  // namespace

NB_MODULE(_strata_data, m) {
  m.doc() = "strata's transforms and curation (OpenCV, SentencePiece), used by strata.Repository.";

  m.def("transform", [](nb::handle repository, const std::string& input, const std::string& output,
                        const std::string& pipeline, const std::string& pipeline_name, size_t threads,
                        uint64_t memory_mib, bool force, const std::string& message,
                        const std::optional<nb::dict>& meta) {
    TransformOptions o;
    o.pipeline = pipeline;
    o.pipeline_name = pipeline_name;
    o.threads = threads;
    if (memory_mib) o.memory_budget = memory_mib << 20;
    o.force = force;
    o.commit.message = message;
    o.commit.meta = MetaStrings(meta);
    TransformReport r = RunOnLake<TransformReport>(repository, [&](Repository* repo, Lake* lake) {
      return Transform(repo, lake, input, output, o);
    });
    return TransformDict(r);
  });

  m.def("curate", [](nb::handle repository, const std::string& source, const std::string& target,
                     const std::string& rules, const std::string& message, const std::optional<nb::dict>& meta) {
    CurateOptions o;
    o.commit.message = message;
    o.commit.meta = MetaStrings(meta);
    CurationReport r = RunOnLake<CurationReport>(repository, [&](Repository*, Lake* lake) -> Result<CurationReport> {
      STRATA_ASSIGN_OR_RETURN(CurationRules parsed, ParseCurationRules(rules));
      return Curate(lake, source, target, parsed, o);
    });
    nb::dict d = CurationDict(r);
    d["report_json"] = CurationReportJson(r);
    return d;
  });
}

}  // namespace strata::python
