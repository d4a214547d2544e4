// Lineage: from a model version back to its sources, through the commit meta that transform
// (transform.input_commit, pipeline hash and stats), curate (curate.source) and ingest (source,
// source.format, source.sha256) record, and the reverse question.
#include <functional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "strata/registry.h"

namespace strata {
namespace {

constexpr int kMaxDepth = 32;

LineageNode DataNode(Lake* lake, const std::string& spec, int depth) {
  LineageNode n;
  n.kind = "dataset";
  n.label = spec;
  auto r = lake->Resolve(spec);
  if (!r.ok()) {
    n.attrs["error"] = r.status().message();
    return n;
  }
  n.label = fmt::format("{}@{}", r->spec.dataset, r->commit.id.Short());
  n.attrs["commit"] = r->commit.id.ToHex();
  n.attrs["dataset"] = r->spec.dataset;
  n.attrs["message"] = r->commit.message.substr(0, r->commit.message.find('\n'));
  const auto& meta = r->commit.meta;
  for (const auto& [k, v] : meta) {
    if (k.starts_with("transform.") || k.starts_with("curate.") || k.starts_with("source")) n.attrs[k] = v;
  }
  if (meta.count("transform.pipeline_hash")) n.kind = "shards";
  else if (meta.count("curate.source")) n.kind = "curated";
  else if (meta.count("source")) n.kind = "ingest";
  if (depth >= kMaxDepth) return n;
  if (auto in = meta.find("transform.input_commit"); in != meta.end()) {
    std::string ds = r->spec.dataset;
    if (auto s = meta.find("transform.input"); s != meta.end()) {
      auto parsed = ParseRefSpec(s->second);
      if (parsed.ok()) ds = parsed->dataset;
    }
    n.inputs.push_back(DataNode(lake, ds + "@" + in->second, depth + 1));
  } else if (auto cs = meta.find("curate.source"); cs != meta.end()) {
    n.inputs.push_back(DataNode(lake, r->spec.dataset + "@" + cs->second, depth + 1));
  } else if (auto src = meta.find("source"); src != meta.end()) {
    LineageNode s;
    s.kind = "source";
    s.label = src->second;
    for (const char* k : {"source.format", "source.sha256", "source.files", "source.bytes", "source.records"}) {
      if (auto it = meta.find(k); it != meta.end()) s.attrs[k] = it->second;
    }
    n.inputs.push_back(std::move(s));
    // An ingest that added to the branch keeps what the ingests before it brought: they are
    // inputs too (one that replaced the branch's files is the whole story).
    auto mode = meta.find("source.mode");
    if ((mode == meta.end() || mode->second != "replace") && !r->commit.parents.empty()) {
      std::string parent = fmt::format("{}@{}", r->spec.dataset, r->commit.parents.front().ToHex());
      auto p = lake->Resolve(parent);
      if (p.ok() && p->commit.meta.count("source")) n.inputs.push_back(DataNode(lake, parent, depth + 1));
    }
  }
  return n;
}

void Commits(const LineageNode& n, std::set<std::string>* out) {
  if (auto it = n.attrs.find("commit"); it != n.attrs.end()) out->insert(it->second);
  for (const auto& c : n.inputs) Commits(c, out);
}

std::string DotEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

Result<LineageNode> ModelLineage(ModelRegistry* reg, std::string_view spec) {
  STRATA_ASSIGN_OR_RETURN(ModelVersion v, reg->Get(spec));
  Lake* lake = reg->lake();
  LineageNode model;
  model.kind = "model";
  model.label = fmt::format("{}@{}", ModelDataset(v.model), VersionTag(v.version));
  model.attrs = {{"model", v.model}, {"version", std::to_string(v.version)}, {"commit", v.commit.ToHex()}};
  if (!v.aliases.empty()) model.attrs["aliases"] = fmt::format("{}", fmt::join(v.aliases, ","));
  for (const auto& [k, x] : v.metrics) model.attrs["metric." + k] = fmt::format("{}", x);

  LineageNode ckpt;
  ckpt.kind = "checkpoint";
  ckpt.label = fmt::format("run.{}@ckpt/{:012}", v.run, v.step);
  ckpt.attrs = {{"step", std::to_string(v.step)}, {"commit", v.checkpoint_commit.ToHex()},
                {"tree", v.checkpoint_tree.ToHex()}};

  LineageNode run;
  run.kind = "run";
  run.label = "run." + v.run;
  auto runs = Runs::Open(reg->repository());
  if (runs.ok()) {
    auto info = (*runs)->Get(v.run);
    if (info.ok()) {
      run.attrs["status"] = info->status;
      if (!info->loader_state.empty()) run.attrs["loader_state"] = info->loader_state;
    } else {
      run.attrs["note"] = info.status().message();
    }
  }
  for (const auto& [k, p] : v.params) run.attrs["param." + k] = p;
  if (!v.pipeline_hash.empty()) run.attrs["pipeline_hash"] = v.pipeline_hash;
  if (!v.data.empty()) run.inputs.push_back(DataNode(lake, v.data, 0));
  ckpt.inputs.push_back(std::move(run));
  model.inputs.push_back(std::move(ckpt));
  return model;
}

Result<std::vector<ModelVersion>> ModelsTrainedOn(ModelRegistry* reg, std::string_view spec) {
  STRATA_ASSIGN_OR_RETURN(Resolved target, reg->lake()->Resolve(spec));
  std::string want = target.commit.id.ToHex();
  std::vector<ModelVersion> out;
  STRATA_ASSIGN_OR_RETURN(auto models, reg->ListModels());
  for (const auto& m : models) {
    STRATA_ASSIGN_OR_RETURN(auto versions, reg->Versions(m));
    for (auto& v : versions) {
      STRATA_ASSIGN_OR_RETURN(LineageNode n, ModelLineage(reg, fmt::format("{}@{}", m, v.version)));
      std::set<std::string> commits;
      Commits(n, &commits);
      if (commits.count(want)) out.push_back(std::move(v));
    }
  }
  return out;
}

std::string LineageDot(const LineageNode& root) {
  std::string out = "digraph lineage {\n  rankdir=RL;\n  node [shape=box, fontname=\"monospace\"];\n";
  int next = 0;
  std::function<int(const LineageNode&)> walk = [&](const LineageNode& n) {
    int id = next++;
    std::string label = fmt::format("{}\\n{}", n.kind, DotEscape(n.label));
    for (const char* k : {"transform.pipeline_hash", "source.format", "status", "metric.accuracy"}) {
      if (auto it = n.attrs.find(k); it != n.attrs.end()) label += fmt::format("\\n{}={}", k, DotEscape(it->second.substr(0, 24)));
    }
    out += fmt::format("  n{} [label=\"{}\"];\n", id, label);
    for (const auto& c : n.inputs) {
      int child = walk(c);
      out += fmt::format("  n{} -> n{};\n", child, id);
    }
    return id;
  };
  walk(root);
  out += "}\n";
  return out;
}

}  // namespace strata
