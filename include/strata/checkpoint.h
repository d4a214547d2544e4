// Checkpoints and experiment runs.
//
//   auto ckpt = strata::Checkpointer::Open(repo.get(), "gpt-small");   // run gpt-small
//   strata::SaveRequest req{.step = 1000};
//   req.tensors.push_back({"layer0.weight", strata::DType::kF32, {4096, 4096}, w.data(), w.size()});
//   req.states.push_back({"optimizer", optimizer_bytes});
//   (*ckpt)->Save(req);   // returns once the bytes are copied; persisted in the background
//   (*ckpt)->Wait();      // every save so far durable and visible (or the first error)
//
//   auto r = strata::CheckpointReader::Open(repo.get(), "gpt-small");  // the newest checkpoint
//   (*r)->ReadTensor("layer0.weight", dst);                              // authenticated bytes
//
// A run is the dataset `run.NAME` (its branch `main` holds run.json and metrics.jsonl); each
// checkpoint is the immutable tag `run.NAME@ckpt/<step>` on a root commit whose tree holds
// manifest.json (docs/FORMAT.md, "Checkpoints") and one file per tensor piece and state blob.
// Tensor pieces are cut into fixed-size chunks from their first byte, so an unchanged tensor
// is stored once whatever the checkpoints around it; chunks are compressed only where zstd
// saves space (float noise is stored raw after a sample says it would not). A checkpoint is
// visible only once every byte and its tree are durable: creating the tag is the last step,
// so a crash leaves the previous checkpoint as it was and the partial one unreferenced (gc
// removes it). Deleting the tag (Runs::DeleteCheckpoint, retention) frees its data at gc.
//
// Sharded saves: each of `world_size` ranks (processes sharing the repository) saves its own
// pieces with their offsets in the global tensor; each rank's part becomes the tag
// `pending/<step>/<rank>`, and the rank that sees all parts present writes the checkpoint and
// drops the pending tags. Any reader may read any dim-0 range of a tensor, whatever the world
// size it was saved with (resharding on load).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/object_id.h"
#include "strata/repository.h"
#include "strata/status.h"

namespace strata {

// Element types, named as safetensors names them.
enum class DType : uint8_t { kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool };
std::string_view DTypeName(DType dtype);          // "F32", "BF16", ...
Result<DType> ParseDType(std::string_view name);  // kInvalidArgument for unknown names
size_t DTypeSize(DType dtype);                    // bytes per element

// One tensor, or this rank's piece of it, to save. Borrowed: `data` must stay valid and
// unchanged until Save returns (not until the save is durable).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // of these bytes (row-major, C order)
  const void* data = nullptr;
  uint64_t bytes = 0;           // must equal the product of shape times the element size
  // Sharded saves: the whole tensor's shape and where this piece starts in it. Empty: the piece
  // is the whole tensor.
  std::vector<uint64_t> global_shape;
  std::vector<uint64_t> offsets;
};

// Opaque state saved beside the tensors: optimizer state, RNG states, data-loader state (JSON).
struct StateBlob {
  std::string name;
  std::string_view bytes;  // borrowed like TensorView::data
};

struct SaveRequest {
  int64_t step = 0;  // >= 0; one checkpoint per step and run
  std::vector<TensorView> tensors;
  std::vector<StateBlob> states;
  std::map<std::string, std::string> meta;  // free metadata
  std::map<std::string, double> metrics;    // values retention can rank by ("loss")
  // Sharded saves: this process's rank in [0, world_size).
  int rank = 0;
  int world_size = 1;
};

struct TensorMeta {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // global
  uint64_t bytes = 0;           // of the whole tensor
  size_t pieces = 1;
};

struct CheckpointInfo {
  std::string run;
  int64_t step = 0;
  ObjectId commit;
  int64_t time_ns = 0;
  int world_size = 1;
  uint64_t bytes = 0;  // tensors and states, uncompressed
  std::vector<TensorMeta> tensors;       // sorted by name (filled by CheckpointReader)
  std::vector<std::string> states;       // names
  std::map<std::string, std::string> meta;
  std::map<std::string, double> metrics;
  std::vector<std::string> labels;       // Runs::LabelCheckpoint
};

struct CheckpointerOptions {
  // Copies of tensors waiting to be stored; Save blocks on a full buffer. A buffer at least as
  // large as the model makes the caller's stall a plain memcpy.
  uint64_t staging_bytes = 512ull << 20;
  uint32_t chunk_bytes = 4u << 20;  // fixed chunk size (<= 64 MiB)
  size_t max_in_flight = 1;         // checkpoints persisting at once; Save waits for older ones
  size_t threads = 0;               // hashing/sealing workers; 0 = one per core
  // Float tensors are compressed only where zstd saves a quarter of a chunk (zeros, pruned
  // tensors), not for the few percent it finds in trained weights at a large cost in CPU on
  // every save and load. true: compressed wherever that saves 1/32, like all other data.
  bool compress_floats = false;
  // Called on the background thread when a save is durable and visible (info set, OK) or failed.
  std::function<void(const Status&, const CheckpointInfo&)> on_complete;
};

// Saves checkpoints of one run. Not thread-safe (one training loop); must be destroyed before
// its Repository (the destructor waits for saves in flight).
class Checkpointer {
 public:
  virtual ~Checkpointer() = default;
  // Creates the run when it does not exist.
  static Result<std::unique_ptr<Checkpointer>> Open(Repository* repo, std::string_view run,
                                                    const CheckpointerOptions& options = {});
  // Validates the request, copies its bytes into the staging buffer and returns: the caller
  // may then change its tensors. Persistence runs in the background. A failed earlier save is
  // returned here (once) instead of starting this one: errors are never lost.
  virtual Status Save(const SaveRequest& request) = 0;
  // Waits until every save so far is durable and visible; returns the first error not yet
  // returned.
  virtual Status Wait() = 0;
};

struct ReadOptions {
  // Open: when the chosen checkpoint fails verification (every byte read and authenticated),
  // fall back to the newest older one that passes.
  bool latest_valid = false;
  size_t threads = 0;  // parallel reads in Verify/ReadTensors; 0 = one per core
};

// A whole tensor's destination for CheckpointReader::ReadTensors.
struct TensorBuffer {
  std::string name;
  std::span<uint8_t> dst;  // exactly the tensor's size
};

inline constexpr int64_t kLatestStep = -1;

// Reads one checkpoint. Every byte is authenticated (AES-GCM bound to its chunk's keyed id);
// damage fails the read with kCorruption naming the tensor. Thread-safe.
class CheckpointReader {
 public:
  virtual ~CheckpointReader() = default;
  static Result<std::unique_ptr<CheckpointReader>> Open(Repository* repo, std::string_view run,
                                                        int64_t step = kLatestStep, const ReadOptions& options = {});
  virtual const CheckpointInfo& info() const = 0;
  // The whole tensor; `dst` must be exactly its size.
  virtual Status ReadTensor(std::string_view name, std::span<uint8_t> dst) = 0;
  // Rows [begin, end) of dim 0, all other dims whole, assembled from whatever pieces hold them.
  virtual Status ReadRows(std::string_view name, uint64_t begin, uint64_t end, std::span<uint8_t> dst) = 0;
  // Many whole tensors at once, their pieces read in parallel (ReadOptions::threads); the first
  // failure is returned, naming its tensor. Reading everything this way also verifies it.
  virtual Status ReadTensors(std::span<const TensorBuffer> buffers) = 0;
  virtual Result<std::string> ReadState(std::string_view name) = 0;
  // Reads and authenticates every byte (first damaged tensor or state named).
  virtual Status Verify() = 0;
};

// --- runs ---

struct RunInfo {
  std::string name;
  std::string status = "running";  // free text: running, finished, failed, ...
  int64_t created_ns = 0, updated_ns = 0;
  std::map<std::string, std::string> params;
  std::set<std::string> tags;
  std::string dataset;       // lineage: NAME@COMMIT the run trained on (resolved at create)
  std::string loader_state;  // the data loader's state (JSON) it started from
};

struct MetricPoint {
  int64_t step = 0;
  std::string name;
  double value = 0;
};

struct RetentionSpec {
  uint32_t keep_last = 0;   // the newest N checkpoints
  uint32_t keep_best = 0;   // the best K by `metric`
  std::string metric;
  bool maximize = false;    // larger is better
  bool keep_labelled = true;
  bool dry_run = false;
};

struct RetentionResult {
  std::vector<int64_t> kept, removed;
  // Kept only because a retention lock or legal hold is in force on them (also in `kept`, the
  // lock described in `reasons`); Retain skips them rather than failing.
  std::vector<int64_t> locked;
  std::map<int64_t, std::vector<std::string>> reasons;  // step -> why kept
};

// Runs and their checkpoints. Thread-compatible (one per thread).
class Runs {
 public:
  virtual ~Runs() = default;
  static Result<std::unique_ptr<Runs>> Open(Repository* repo);

  // kAlreadyExists if present. `info.dataset` (NAME@REF) is resolved to a commit id.
  virtual Status Create(const RunInfo& info) = 0;
  virtual Result<RunInfo> Get(std::string_view run) = 0;
  virtual Result<std::vector<RunInfo>> List() = 0;
  virtual Status SetStatus(std::string_view run, std::string_view status) = 0;
  virtual Status LogMetrics(std::string_view run, const std::vector<MetricPoint>& points) = 0;
  virtual Result<std::vector<MetricPoint>> Metrics(std::string_view run) = 0;

  // Visible checkpoints, newest step first (pending parts of sharded saves are not listed).
  virtual Result<std::vector<CheckpointInfo>> Checkpoints(std::string_view run) = 0;
  virtual Status DeleteCheckpoint(std::string_view run, int64_t step) = 0;
  virtual Status LabelCheckpoint(std::string_view run, int64_t step, std::string_view label) = 0;
  // The metric's value for a checkpoint: its own metrics, else the run's series at its step.
  // The best `k`, best first.
  virtual Result<std::vector<CheckpointInfo>> Best(std::string_view run, std::string_view metric, size_t k,
                                                   bool maximize) = 0;
  // Keeps the last N, the best K and the labelled checkpoints and deletes the others' tags,
  // plus pending parts of sharded saves older than an hour; gc then frees their data. A
  // checkpoint under a retention lock or legal hold is skipped (kept, listed in `locked`).
  virtual Result<RetentionResult> Retain(std::string_view run, const RetentionSpec& spec) = 0;
};

// --- safetensors ---

// Writes a checkpoint's tensors (not its states) as a safetensors file: an 8-byte little-endian
// header length, the JSON header (run, step and meta in "__metadata__"), then the data. Written
// to a temporary name, synced and renamed, so `path` is whole or absent.
Status ExportSafetensors(CheckpointReader* reader, const std::string& path, Env* env = Env::Default());

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};
struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;                // 8 + header length
};
// Parses and validates a safetensors header against the file size (untrusted input, fuzzed):
// sizes, dtypes, shapes that overflow, ranges outside the data or overlapping.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix, uint64_t file_size);
// Saves the tensors of a safetensors file as checkpoint `step` of `checkpointer`'s run.
Status ImportSafetensors(Checkpointer* checkpointer, const std::string& path, int64_t step,
                         Env* env = Env::Default());

}  // namespace strata
