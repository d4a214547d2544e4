// A transform pipeline as parsed from YAML: which records, which label, which ops, what output.
// Parsing fills in every default, so the canonical form (and the hash) names all that shapes the
// output and nothing that does not (comments, key order, the pipeline's name).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/shard.h"
#include "strata/status.h"

namespace strata::transform {

enum class OpKind : uint8_t {
  // image
  kDecode, kResize, kCenterCrop, kRandomCrop, kClahe, kBrightness, kGrayscale, kRgb, kFlip, kRotate,
  kNormalize, kTensor,
  // text
  kText, kUnicode, kLowercase, kWhitespace, kStopwords, kTokenize, kPad,
  // tabular
  kColumns, kFillMissing, kStandardize, kMinMax, kOneHot, kBucketize,
};

// What a pipeline reads, set by its first op: decode (files as images), text (files, or a
// column of the records file, as UTF-8 text) or columns (rows of the records file).
enum class PipelineKind : uint8_t { kImage, kText, kTabular };

struct Op {
  OpKind kind = OpKind::kDecode;
  std::string name;      // as written: "resize"
  int line = 0;          // 1-based line in the YAML
  int version = 1;       // bumped when an op's output changes for the same parameters
  nlohmann::json params; // every parameter, defaults filled in (the canonical form)

  // Typed parameters (the ones each op uses).
  std::string mode;                 // decode: grayscale|rgb|any; resize: exact|shorter_side; flip: horizontal|vertical|both
  int interpolation = 1;            // cv::InterpolationFlags
  int height = 0, width = 0;        // resize exact, crops: the size; resize shorter_side: height only
  int padding = 0;                  // random_crop: zeros added on each side first
  double clip_limit = 2.0;          // clahe
  int tile = 8;                     // clahe: tile grid (tile x tile)
  double factor_lo = 1, factor_hi = 1, delta_lo = 0, delta_hi = 0;  // brightness
  double probability = 1.0;         // flip, rotate
  int angle = 0;                    // rotate: 90, 180 or 270
  double degrees_lo = 0, degrees_hi = 0;  // rotate: a random angle in [lo, hi] instead
  bool fit = false;                 // normalize: mean and std fitted on the data
  std::vector<double> mean, std;    // normalize: given
  double scale = 255.0;             // normalize: pixels are divided by this first
  shard::DType dtype = shard::DType::kFloat32;  // tensor
  bool chw = true;                  // tensor layout

  // text: `column` (empty: the file's bytes); unicode: `mode` is NFC, NFD, NFKC or NFKD
  std::string column;
  std::shared_ptr<const std::unordered_set<std::string>> word_set;  // stopwords
  // tokenize: `model` is "train" or a path in the input version
  std::string model, model_type = "unigram";
  int vocab_size = 8000;
  double character_coverage = 0.9995;
  bool add_bos = false, add_eos = false;
  int length = 0;                   // pad: tokens per record
  int pad_id = -1;                  // pad: -1 = the model's pad id (0 when it has none)

  // tabular: the columns an op applies to (empty: every column); columns: those read
  std::vector<std::string> columns;
  double fill_value = 0;            // fill_missing with a number (`mode` mean|median|most_frequent|value)
  double range_lo = 0, range_hi = 1;  // min_max
  std::vector<std::string> categories;  // one_hot: given (empty: fitted)
  std::vector<double> boundaries;   // bucketize, ascending
};

struct Pipeline {
  PipelineKind kind = PipelineKind::kImage;
  std::string name;
  uint64_t seed = 0;
  // select
  std::string prefix;                       // input paths below this (relative to the spec's path)
  std::vector<std::string> extensions;      // lowercase, with the dot
  // label
  bool has_label = true;
  std::string label_column = "label";
  std::vector<std::string> classes;         // empty: integer labels, or the sorted distinct values
  // augmentation
  uint32_t variants = 1;
  // augment.online: ops the loader applies to each sample as it reads it (random_crop, flip,
  // rotate by a right angle), described in the manifest; they change no stored byte.
  std::vector<Op> online;
  std::vector<Op> ops;
  // output
  std::string field = "image";       // the output field (default by kind: image, tokens or text, features)
  bool keep_path = true;                    // a string field "path" with the input record's path
  uint64_t shard_size = uint64_t{64} << 20;

  int normalize_index = -1;                 // in ops, or -1
  int tokenize_index = -1, pad_index = -1;  // text: in ops, or -1
  // Records are rows of the records file (`table.csv#17`: a table's columns, or a text
  // column), content or not, rather than files chosen by extension.
  bool reads_rows = false;
  int channels = 0;                         // known from decode/grayscale/rgb; 0: any
  int out_height = 0, out_width = 0;        // known from the last sizing op; 0: any
  shard::DType out_dtype = shard::DType::kUint8;
  bool out_chw = true;

  nlohmann::json canonical;                 // what the hash covers
  std::string hash;                         // hex SHA-256 of canonical.dump()
};

// kInvalidArgument naming `source_name`, the line and the op for anything wrong.
Result<Pipeline> ParsePipeline(std::string_view yaml, std::string_view source_name);

// Ops as in the canonical form: [{"op", "version", "params"}, ...].
nlohmann::json OpsJson(const std::vector<Op>& ops);

// SHA-256 of `data`, as 32 raw bytes.
std::string Sha256(std::string_view data);

}  // namespace strata::transform
