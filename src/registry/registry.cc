// The model registry: versions as tags of `model.NAME` on root commits whose tree is model.json
// plus the checkpoint's own tree, aliases as branches (see include/strata/registry.h).
#include "strata/registry.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "checkpoint/manifest.h"
#include "checkpoint/runs_impl.h"
#include "store/object_store.h"
#include "store/tree.h"

namespace strata {

using nlohmann::json;

namespace {

constexpr std::string_view kModelPrefix = "model.";
constexpr std::string_view kVersionTagPrefix = "v/";
constexpr std::string_view kAliasPrefix = "alias/";
constexpr std::string_view kModelFile = "model.json";
constexpr std::string_view kCheckpointDir = "checkpoint";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool AllDigits(std::string_view s) { return !s.empty() && s.size() <= 12 && s.find_first_not_of("0123456789") == std::string_view::npos; }

int64_t VersionOfTag(std::string_view tag) {
  if (!tag.starts_with(kVersionTagPrefix)) return -1;
  std::string_view d = tag.substr(kVersionTagPrefix.size());
  if (d.size() != 12 || !AllDigits(d)) return -1;
  return std::stoll(std::string(d));
}

Status ValidateModelName(std::string_view name) {
  if (name.empty() || name.find('@') != std::string_view::npos || name.find(':') != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("'{}' is not a model name", name));
  }
  return catalog::ValidateDatasetName(ModelDataset(name));
}

json TensorSigJson(const std::vector<TensorSignature>& v) {
  json a = json::array();
  for (const auto& t : v) a.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}});
  return a;
}

Result<std::vector<TensorSignature>> TensorSigs(const json& a, const char* what) {
  std::vector<TensorSignature> out;
  if (a.is_null()) return out;
  if (!a.is_array()) return Status::InvalidArgument(fmt::format("signature: '{}' must be an array", what));
  for (const auto& t : a) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) {
      return Status::InvalidArgument(fmt::format("signature: each of '{}' needs a name", what));
    }
    TensorSignature s;
    s.name = t["name"].get<std::string>();
    if (t.contains("dtype")) {
      if (!t["dtype"].is_string() || !ParseDType(t["dtype"].get<std::string>()).ok()) {
        return Status::InvalidArgument(fmt::format("signature: '{}' has an unknown dtype", s.name));
      }
      s.dtype = t["dtype"].get<std::string>();
    }
    if (t.contains("shape")) {
      if (!t["shape"].is_array()) return Status::InvalidArgument(fmt::format("signature: '{}' shape must be an array", s.name));
      for (const auto& d : t["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < -1) {
          return Status::InvalidArgument(fmt::format("signature: '{}' shape holds sizes or -1", s.name));
        }
        s.shape.push_back(d.get<int64_t>());
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

json VersionJson(const ModelVersion& v) {
  return {{"format", "strata.model"},
          {"version", 1},
          {"model", v.model},
          {"model_version", v.version},
          {"time_ns", v.time_ns},
          {"author", v.author},
          {"run", v.run},
          {"step", v.step},
          {"checkpoint_commit", v.checkpoint_commit.ToHex()},
          {"checkpoint_tree", v.checkpoint_tree.ToHex()},
          {"data", v.data},
          {"pipeline_hash", v.pipeline_hash},
          {"params", v.params},
          {"metrics", v.metrics},
          {"signature", json::parse(SignatureJson(v.signature))},
          {"description", v.description}};
}

Result<ModelVersion> DecodeVersion(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "strata.model") {
    return Status::Corruption("model.json is not a model version record");
  }
  ModelVersion v;
  try {
    v.model = j.at("model").get<std::string>();
    v.version = j.at("model_version").get<int64_t>();
    v.time_ns = j.value("time_ns", int64_t{0});
    v.author = j.value("author", "");
    v.run = j.value("run", "");
    v.step = j.value("step", int64_t{0});
    STRATA_ASSIGN_OR_RETURN(v.checkpoint_commit, ObjectId::FromHex(j.at("checkpoint_commit").get<std::string>()));
    STRATA_ASSIGN_OR_RETURN(v.checkpoint_tree, ObjectId::FromHex(j.at("checkpoint_tree").get<std::string>()));
    v.data = j.value("data", "");
    v.pipeline_hash = j.value("pipeline_hash", "");
    v.params = j.value("params", std::map<std::string, std::string>{});
    v.metrics = j.value("metrics", std::map<std::string, double>{});
    v.description = j.value("description", "");
    if (j.contains("signature")) {
      auto sig = ParseSignature(j["signature"].dump());
      if (!sig.ok()) return Status::Corruption(fmt::format("model.json: {}", sig.status().message()));
      v.signature = std::move(*sig);
    }
  } catch (const json::exception& e) {
    return Status::Corruption(fmt::format("model.json: {}", e.what()));
  }
  return v;
}

// "RUN@STEP", "run.RUN@ckpt/STEP", "RUN" -> (run, step or kLatestStep).
Result<std::pair<std::string, int64_t>> ParseFrom(std::string_view from) {
  std::string f(from);
  if (f.starts_with(checkpoint::kRunPrefix)) f = f.substr(checkpoint::kRunPrefix.size());
  size_t at = f.find('@');
  if (at == std::string::npos) return std::pair{f, kLatestStep};
  std::string run = f.substr(0, at), ref = f.substr(at + 1);
  if (ref.starts_with(checkpoint::kCheckpointTagPrefix)) ref = ref.substr(checkpoint::kCheckpointTagPrefix.size());
  if (!AllDigits(ref)) {
    return Status::InvalidArgument(
        fmt::format("'{}': expected RUN, RUN@STEP or run.RUN@ckpt/STEP (a checkpoint of a run)", from));
  }
  return std::pair{run, static_cast<int64_t>(std::stoll(ref))};
}

class RegistryImpl : public ModelRegistry {
 public:
  RegistryImpl(Repository* repo, std::unique_ptr<Lake> lake) : repo_(repo), lake_(std::move(lake)) {}

  Lake* lake() override { return lake_.get(); }
  Repository* repository() override { return repo_; }

  Result<ModelVersion> Register(const RegisterRequest& req) override {
    STRATA_RETURN_IF_ERROR(ValidateModelName(req.model));
    STRATA_ASSIGN_OR_RETURN(auto from, ParseFrom(req.from));
    auto [run, step] = from;
    STRATA_ASSIGN_OR_RETURN(auto runs, Runs::Open(repo_));
    STRATA_ASSIGN_OR_RETURN(RunInfo info, runs->Get(run));
    STRATA_ASSIGN_OR_RETURN(auto ckpts, runs->Checkpoints(run));
    auto it = ckpts.begin();
    if (step != kLatestStep) {
      // A copy: clang before 16 cannot capture a structured binding.
      it = std::find_if(ckpts.begin(), ckpts.end(), [want = step](const CheckpointInfo& c) { return c.step == want; });
    }
    if (it == ckpts.end()) {
      return Status::NotFound(step == kLatestStep ? fmt::format("run {} has no checkpoint", run)
                                                  : fmt::format("run {} has no checkpoint {}", run, step));
    }
    STRATA_ASSIGN_OR_RETURN(Resolved ck, lake_->Resolve(checkpoint::RunDataset(run) + "@" + checkpoint::CheckpointTag(it->step)));
    // The weights must be readable before they are registered.
    STRATA_RETURN_IF_ERROR(checkpoint::OpenCheckpointTree(repo_, ck.commit.tree, *it).status());

    ModelVersion v;
    v.model = req.model;
    v.time_ns = NowNs();
    v.author = lake_->actor();
    v.run = run;
    v.step = it->step;
    v.checkpoint_commit = ck.commit.id;
    v.checkpoint_tree = ck.commit.tree;
    v.data = info.dataset;
    v.params = info.params;
    v.metrics = it->metrics;
    for (const auto& [k, x] : req.metrics) v.metrics[k] = x;
    v.signature = req.signature;
    v.description = req.description;
    if (!v.data.empty()) {
      auto d = lake_->Resolve(v.data);
      if (d.ok()) {
        auto p = d->commit.meta.find("transform.pipeline_hash");
        if (p != d->commit.meta.end()) v.pipeline_hash = p->second;
      }
    }

    Status s = lake_->CreateDataset(ModelDataset(req.model));
    if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
    // The tag's creation picks the number: a concurrent registration that took it makes this
    // one try the next.
    for (int attempt = 0; attempt < 16; ++attempt) {
      STRATA_ASSIGN_OR_RETURN(auto versions, VersionTags(req.model));
      v.version = versions.empty() ? 1 : versions.rbegin()->first + 1;
      std::string text = VersionJson(v).dump(2) + "\n";
      STRATA_ASSIGN_OR_RETURN(auto batch, repo_->objects()->NewBatch({.redundancy_class = ModelDataset(req.model)}));
      store::Tree tree;
      store::TreeEntry ckd;
      ckd.name = std::string(kCheckpointDir);
      ckd.type = store::EntryType::kDirectory;
      ckd.mode = 0755;
      ckd.mtime_ns = v.time_ns;
      ckd.subtree = ck.commit.tree;
      ckd.size = it->bytes;
      tree.entries.push_back(ckd);
      store::TreeEntry mf;
      mf.name = std::string(kModelFile);
      mf.type = store::EntryType::kFile;
      mf.mtime_ns = v.time_ns;
      mf.size = text.size();
      mf.chunks.push_back({batch->Put(store::ObjectKind::kData, text), static_cast<uint32_t>(text.size())});
      tree.entries.push_back(mf);
      ObjectId root = batch->PutTree(tree);
      STRATA_RETURN_IF_ERROR(batch->Commit());
      CommitOptions co;
      co.message = fmt::format("model {} version {} from run {} checkpoint {}", v.model, v.version, run, v.step);
      co.time_ns = v.time_ns;
      co.meta = {{"model.name", v.model},
                 {"model.version", std::to_string(v.version)},
                 {"model.run", v.run},
                 {"model.step", std::to_string(v.step)},
                 {"model.checkpoint", v.checkpoint_commit.ToHex()},
                 {"model.data", v.data}};
      for (const auto& [k, x] : v.metrics) co.meta["metric." + k] = fmt::format("{}", x);
      // The batch stays open until the tag names its objects, so gc cannot take them.
      auto id = lake_->TagTree(ModelDataset(v.model) + "@" + VersionTag(v.version), root, co);
      if (id.ok()) {
        v.commit = *id;
        return v;
      }
      if (id.status().code() != StatusCode::kAlreadyExists) return id.status();
    }
    return Status::Aborted(fmt::format("model {}: too many concurrent registrations", req.model));
  }

  Result<std::vector<std::string>> ListModels() override {
    STRATA_ASSIGN_OR_RETURN(auto ds, lake_->ListDatasets());
    std::vector<std::string> out;
    for (const auto& d : ds) {
      if (d.starts_with(kModelPrefix)) out.push_back(d.substr(kModelPrefix.size()));
    }
    return out;
  }

  Result<std::vector<ModelVersion>> Versions(std::string_view model) override {
    STRATA_ASSIGN_OR_RETURN(auto tags, VersionTags(model));
    STRATA_ASSIGN_OR_RETURN(auto aliases, Aliases(model));
    std::vector<ModelVersion> out;
    for (const auto& [n, ref] : tags) {
      STRATA_ASSIGN_OR_RETURN(ModelVersion v, Read(model, ref.target));
      v.aliases = aliases[v.commit];
      out.push_back(std::move(v));
    }
    return out;
  }

  Result<ModelVersion> Get(std::string_view spec) override {
    std::string model(spec), ref;
    if (size_t at = model.find('@'); at != std::string::npos) {
      ref = model.substr(at + 1);
      model.resize(at);
    }
    STRATA_RETURN_IF_ERROR(ValidateModelName(model));
    STRATA_ASSIGN_OR_RETURN(auto tags, VersionTags(model));
    ObjectId commit;
    if (ref.empty()) {
      if (tags.empty()) return Status::NotFound(fmt::format("model {} has no version", model));
      commit = tags.rbegin()->second.target;
    } else {
      std::string num = ref.starts_with("v") && AllDigits(ref.substr(1)) ? ref.substr(1) : ref;
      if (AllDigits(num)) {
        auto t = tags.find(std::stoll(num));
        if (t == tags.end()) return Status::NotFound(fmt::format("model {} has no version {}", model, num));
        commit = t->second.target;
      } else {
        auto r = lake_->Resolve(ModelDataset(model) + "@" + std::string(kAliasPrefix) + ref);
        if (!r.ok()) {
          if (r.status().IsNotFound()) return Status::NotFound(fmt::format("model {} has no alias '{}'", model, ref));
          return r.status();
        }
        commit = r->commit.id;
      }
    }
    STRATA_ASSIGN_OR_RETURN(ModelVersion v, Read(model, commit));
    STRATA_ASSIGN_OR_RETURN(auto aliases, Aliases(model));
    v.aliases = aliases[v.commit];
    return v;
  }

  Status SetAlias(std::string_view model, std::string_view alias, int64_t version) override {
    STRATA_RETURN_IF_ERROR(ValidateModelName(model));
    if (alias.empty() || AllDigits(alias) || (alias.starts_with("v") && AllDigits(alias.substr(1)))) {
      return Status::InvalidArgument(fmt::format("'{}' cannot be an alias: it reads as a version number", alias));
    }
    std::string branch = fmt::format("{}@{}{}", ModelDataset(model), kAliasPrefix, alias);
    STRATA_RETURN_IF_ERROR(catalog::ValidateRefName(std::string(kAliasPrefix) + std::string(alias)));
    std::string to = ModelDataset(model) + "@" + VersionTag(version);
    STRATA_ASSIGN_OR_RETURN(Resolved target, lake_->Resolve(to));
    auto cur = lake_->Resolve(branch);
    int64_t from_version = 0;
    if (cur.ok()) {
      auto m = cur->commit.meta.find("model.version");
      if (m != cur->commit.meta.end()) from_version = std::stoll(m->second);
      if (cur->commit.id == target.commit.id) return Status::OK();
      // Reset is the catalog's compare-and-swap from the head just read.
      STRATA_RETURN_IF_ERROR(lake_->Reset(branch, to).status());
    } else if (cur.status().IsNotFound()) {
      STRATA_RETURN_IF_ERROR(lake_->CreateRef(branch, to, RefType::kBranch));
    } else {
      return cur.status();
    }
    json d = {{"model", model}, {"alias", alias}, {"from_version", from_version}, {"to_version", version},
              {"commit", target.commit.id.ToHex()}};
    return lake_->RecordEvent("model.alias", branch, d.dump());
  }

  Status DeleteAlias(std::string_view model, std::string_view alias) override {
    std::string branch = fmt::format("{}@{}{}", ModelDataset(model), kAliasPrefix, alias);
    STRATA_RETURN_IF_ERROR(lake_->DeleteRef(branch));
    return lake_->RecordEvent("model.alias.delete", branch, json{{"model", model}, {"alias", alias}}.dump());
  }

  Result<std::unique_ptr<CheckpointReader>> OpenWeights(const ModelVersion& v) override {
    CheckpointInfo info;
    info.run = v.run;
    info.step = v.step;
    info.commit = v.checkpoint_commit;
    auto r = checkpoint::OpenCheckpointTree(repo_, v.checkpoint_tree, info);
    if (!r.ok()) return r.status().WithContext(fmt::format("model {} version {}", v.model, v.version));
    return r;
  }

 private:
  Result<std::map<int64_t, RefInfo>> VersionTags(std::string_view model) {
    auto refs = lake_->ListRefs(ModelDataset(model));
    if (!refs.ok()) {
      if (refs.status().IsNotFound()) return Status::NotFound(fmt::format("no model named '{}' (see `strata model list`)", model));
      return refs.status();
    }
    std::map<int64_t, RefInfo> out;
    for (auto& r : *refs) {
      int64_t n = VersionOfTag(r.name);
      if (n >= 0 && r.type == RefType::kTag) out.emplace(n, std::move(r));
    }
    return out;
  }

  Result<std::map<ObjectId, std::vector<std::string>>> Aliases(std::string_view model) {
    STRATA_ASSIGN_OR_RETURN(auto refs, lake_->ListRefs(ModelDataset(model)));
    std::map<ObjectId, std::vector<std::string>> out;
    for (const auto& r : refs) {
      if (r.name.starts_with(kAliasPrefix) && r.type == RefType::kBranch) {
        out[r.target].push_back(r.name.substr(kAliasPrefix.size()));
      }
    }
    return out;
  }

  Result<ModelVersion> Read(std::string_view model, const ObjectId& commit) {
    STRATA_ASSIGN_OR_RETURN(Resolved r, lake_->Resolve(fmt::format("{}@{}", ModelDataset(model), commit.ToHex())));
    STRATA_ASSIGN_OR_RETURN(std::string text, checkpoint::ReadTreeFile(repo_, r.commit.tree, kModelFile));
    auto v = DecodeVersion(text);
    if (!v.ok()) return v.status().WithContext(fmt::format("model {} commit {}", model, commit.Short()));
    v->commit = commit;
    // The tree's checkpoint entry is what holds the weights: trust it over model.json's copy.
    STRATA_ASSIGN_OR_RETURN(store::Tree tree, repo_->objects()->ReadTree(r.commit.tree));
    const store::TreeEntry* e = tree.Find(kCheckpointDir);
    if (!e || e->type != store::EntryType::kDirectory) {
      return Status::Corruption(fmt::format("model {} version {} has no checkpoint/ directory", model, v->version));
    }
    v->checkpoint_tree = e->subtree;
    return v;
  }

  Repository* repo_;
  std::unique_ptr<Lake> lake_;
};

}  // namespace

std::string ModelDataset(std::string_view model) { return std::string(kModelPrefix) + std::string(model); }
std::string VersionTag(int64_t version) { return fmt::format("{}{:012}", kVersionTagPrefix, version); }

Result<ModelSignature> ParseSignature(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("a signature is a JSON object {\"inputs\":[..],\"outputs\":[..]}");
  ModelSignature s;
  STRATA_ASSIGN_OR_RETURN(s.inputs, TensorSigs(j.value("inputs", json()), "inputs"));
  STRATA_ASSIGN_OR_RETURN(s.outputs, TensorSigs(j.value("outputs", json()), "outputs"));
  return s;
}

std::string SignatureJson(const ModelSignature& s) {
  return json{{"inputs", TensorSigJson(s.inputs)}, {"outputs", TensorSigJson(s.outputs)}}.dump();
}

Result<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(Repository* repo, const LakeOptions& options) {
  STRATA_ASSIGN_OR_RETURN(auto lake, Lake::Open(repo, options));
  return std::unique_ptr<ModelRegistry>(new RegistryImpl(repo, std::move(lake)));
}

}  // namespace strata
