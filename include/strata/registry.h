// Model registry, serving weights and lineage.
//
//   auto reg = strata::ModelRegistry::Open(repo.get());
//   auto v = (*reg)->Register({.model = "fmnist-cnn", .from = "exp1@1000"});   // version 1
//   (*reg)->SetAlias("fmnist-cnn", "production", v->version);                  // compare-and-swap
//   auto w = (*reg)->OpenWeights("fmnist-cnn@production");                     // a CheckpointReader
//   strata::ExportServing(w->get(), "/srv/model.strata");                      // one mmap-able file
//   auto loaded = strata::LoadWeights("/srv/model.strata");                    // zero-copy views
//
// A model is the dataset `model.NAME`. Version N is the immutable tag `model.NAME@v/<12 digits>`
// on a root commit whose tree holds `model.json` (what was registered: run, checkpoint, data
// commits, pipeline hash, metrics, signature) and `checkpoint/`, the registered checkpoint's
// own tree by id (no byte copied). So a model version keeps its weights alive after the run's
// checkpoint is deleted, a retention lock on it locks them, and `strata catalog rebuild`
// recovers models from the repository's records like any dataset. An alias is the branch
// `alias/NAME` pointing at a version's commit; it moves by the catalog's compare-and-swap,
// audited. Formats: docs/FORMAT.md ("Model versions", "Serving weights").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/checkpoint.h"
#include "strata/lake.h"

namespace strata {

struct TensorSignature {
  std::string name;
  std::string dtype;           // "F32", ... (as DTypeName)
  std::vector<int64_t> shape;  // -1 for a dimension of any size (the batch)
};
struct ModelSignature {
  std::vector<TensorSignature> inputs, outputs;
};
// {"inputs":[{"name":..,"dtype":..,"shape":[..]}],"outputs":[..]}; kInvalidArgument if malformed.
Result<ModelSignature> ParseSignature(std::string_view json);
std::string SignatureJson(const ModelSignature& s);

struct ModelVersion {
  std::string model;
  int64_t version = 0;
  ObjectId commit;  // of the version's tag
  int64_t time_ns = 0;
  std::string author;
  std::string run;
  int64_t step = 0;
  ObjectId checkpoint_commit;  // the checkpoint's commit when registered (run.RUN@ckpt/STEP)
  ObjectId checkpoint_tree;
  std::string data;           // the run's training data, NAME@COMMIT ("" if the run names none)
  std::string pipeline_hash;  // of the transform that made that data, when it recorded one
  std::map<std::string, std::string> params;  // the run's
  std::map<std::string, double> metrics;      // the checkpoint's, then those given at register
  ModelSignature signature;
  std::string description;
  std::vector<std::string> aliases;  // filled by Get and Versions
};

struct RegisterRequest {
  std::string model;
  // The checkpoint: "RUN@STEP", "run.RUN@ckpt/STEP" (a lake ref) or "RUN" (its newest).
  std::string from;
  std::map<std::string, double> metrics;
  ModelSignature signature;
  std::string description;
};

// Thread-compatible. Borrows its Repository, which must outlive it.
class ModelRegistry {
 public:
  virtual ~ModelRegistry() = default;
  static Result<std::unique_ptr<ModelRegistry>> Open(Repository* repo, const LakeOptions& options = {});

  // Records the next version number (1, 2, ...); two concurrent registrations get different
  // numbers (the tag's creation is the arbiter; the loser takes the next one).
  virtual Result<ModelVersion> Register(const RegisterRequest& request) = 0;
  virtual Result<std::vector<std::string>> ListModels() = 0;
  virtual Result<std::vector<ModelVersion>> Versions(std::string_view model) = 0;  // oldest first
  // "NAME@ALIAS", "NAME@N", "NAME@vN" or "NAME" (the newest version).
  virtual Result<ModelVersion> Get(std::string_view spec) = 0;
  // Points alias `alias` of `model` at `version`: created, or moved by compare-and-swap from
  // where it was read (kAborted if another process moved it meanwhile). Audited.
  virtual Status SetAlias(std::string_view model, std::string_view alias, int64_t version) = 0;
  virtual Status DeleteAlias(std::string_view model, std::string_view alias) = 0;
  // The version's weights, read from its own tree (authenticated like every read).
  virtual Result<std::unique_ptr<CheckpointReader>> OpenWeights(const ModelVersion& v) = 0;
  virtual Lake* lake() = 0;
  virtual Repository* repository() = 0;
};

std::string ModelDataset(std::string_view model);  // "model.NAME"
std::string VersionTag(int64_t version);           // "v/000000000001"

// --- serving weights: one file laid out for memory mapping (docs/FORMAT.md) ---

struct ServingExportOptions {
  // Tensor alignment in the file: 4096 (pages, O_DIRECT) or 64 (cache lines).
  uint32_t alignment = 4096;
  // Non-empty: per-tensor hashes are HMAC-SHA-256 under this key (a reader needs it to verify
  // and a forger without it cannot make a matching file); empty: plain SHA-256.
  std::string hash_key;
  std::map<std::string, std::string> metadata;
};
// Writes every tensor of `reader` to `path` (temporary file, sync, rename): `path` is whole or
// absent.
Status ExportServing(CheckpointReader* reader, const std::string& path, const ServingExportOptions& options = {},
                     Env* env = Env::Default());

enum class VerifyMode : uint8_t {
  kNone,      // trust the file (it was verified when pulled)
  kOnDemand,  // each tensor's hash is checked the first time Tensor() returns it
  kFull,      // every tensor checked by LoadWeights before it returns
};
struct LoadOptions {
  VerifyMode verify = VerifyMode::kOnDemand;
  std::string hash_key;  // for files written with one
};

struct WeightView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> bytes;  // into the mapping: valid while the Weights live
};

// A mapped serving file. Thread-safe.
class Weights {
 public:
  virtual ~Weights() = default;
  virtual const std::vector<std::string>& names() const = 0;
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  // The tensor's bytes in the mapping, no copy; kCorruption if its hash does not match (checked
  // once per tensor under kOnDemand), kNotFound for an unknown name.
  virtual Result<WeightView> Tensor(std::string_view name) = 0;
  // Checks every tensor (or those named) not yet checked, on up to one thread per core; the
  // first mismatch in the file's order is named.
  virtual Status VerifyAll() = 0;
  virtual Status Verify(const std::vector<std::string>& names) = 0;
};
// Maps and parses `path` (untrusted: every header field bounded and checked against the file).
Result<std::unique_ptr<Weights>> LoadWeights(const std::string& path, const LoadOptions& options = {},
                                             Env* env = Env::Default());

// Materialises version `spec` in `dir` for an inference host: `model.strata` (the serving file,
// fully verified after writing) and `model.json` (version, signature, metrics, and each
// tensor's content id: a hash of its chunk ids). A repeated pull reads from the repository only
// the tensors whose content id changed; the others are copied from the previous file after
// their hash is checked.
struct PullReport {
  std::string model;
  int64_t version = 0;
  uint64_t tensors = 0, tensors_reused = 0;
  uint64_t bytes = 0, bytes_read = 0;  // bytes_read: from the repository
};
Result<PullReport> PullModel(ModelRegistry* registry, std::string_view spec, const std::string& dir,
                             Env* env = Env::Default());

// --- lineage ---

struct LineageNode {
  std::string kind;   // model, checkpoint, run, dataset, source
  std::string label;  // "model.fmnist@v/000000000001", "fm@3f2a...", ...
  std::map<std::string, std::string> attrs;
  std::vector<LineageNode> inputs;  // what it was made from
};
// The chain from a model version back to its sources: model -> checkpoint -> run -> training
// data commit (transform: pipeline hash, stats) -> its input (curated) commit -> the raw
// ingest commit -> source. Follows the commit meta transform, curate and ingest record.
Result<LineageNode> ModelLineage(ModelRegistry* registry, std::string_view spec);
// Model versions whose lineage contains the commit `spec` (any NAME@REF) names.
Result<std::vector<ModelVersion>> ModelsTrainedOn(ModelRegistry* registry, std::string_view spec);
std::string LineageDot(const LineageNode& root);

}  // namespace strata
