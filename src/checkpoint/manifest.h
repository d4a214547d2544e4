// The checkpoint manifest (docs/FORMAT.md, "Checkpoints"): which tensors and states a
// checkpoint holds, their pieces and the files of the checkpoint's tree that hold them. The
// same form, with `rank` set, is one rank's part of a sharded save (rank.json).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/checkpoint.h"

namespace strata::checkpoint {

inline constexpr std::string_view kManifestFormat = "strata.checkpoint";
inline constexpr int kManifestVersion = 1;
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kRankFile = "rank.json";
inline constexpr std::string_view kRunPrefix = "run.";
inline constexpr std::string_view kCheckpointTagPrefix = "ckpt/";
inline constexpr std::string_view kPendingTagPrefix = "pending/";
inline constexpr std::string_view kLabelTagPrefix = "label/";

struct PieceRecord {
  std::string file;               // "t/RRRRR-NNNNNN" in the checkpoint's tree
  std::vector<uint64_t> offsets;  // in the global tensor
  std::vector<uint64_t> shape;
  uint64_t bytes = 0;
};

struct TensorRecord {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // global
  std::vector<PieceRecord> pieces;
};

struct StateRecord {
  std::string name;
  std::string file;  // "s/RRRRR-NNNNNN"
  uint64_t bytes = 0;
};

struct Manifest {
  std::string run;
  int64_t step = 0;
  int world_size = 1;
  int rank = -1;  // >= 0 only in a rank's part
  uint32_t chunk_bytes = 0;
  int64_t time_ns = 0;
  std::map<std::string, std::string> meta;
  std::map<std::string, double> metrics;
  std::vector<TensorRecord> tensors;  // sorted by name in a complete manifest
  std::vector<StateRecord> states;
};

std::string EncodeManifest(const Manifest& m);
// Strict: every field typed and bounded, names unique, pieces inside their tensor and sized to
// their shape; with `complete`, every tensor covered exactly once by its pieces (no overlap).
Result<Manifest> ParseManifest(std::string_view text, bool complete);
Status CheckCoverage(const TensorRecord& t);

// Overflow-checked product of `shape` times `elem` (false on overflow).
bool Volume(const std::vector<uint64_t>& shape, uint64_t elem, uint64_t* out);

std::string RunDataset(std::string_view run);
std::string CheckpointTag(int64_t step);               // "ckpt/000000001000"
std::string PendingTag(int64_t step, int rank);        // "pending/000000001000/00003"
std::string PendingPrefix(int64_t step);               // "pending/000000001000/"
// The step of a "ckpt/..." tag name; -1 if it is not one.
int64_t StepOfTag(std::string_view tag);
Status ValidateRunName(std::string_view run);

}  // namespace strata::checkpoint
