#include "transform/pipeline.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <yaml-cpp/yaml.h>

#include "strata/object_id.h"
#include "transform/text_ops.h"

namespace strata::transform {
namespace {

using nlohmann::json;

// Errors while walking the document: thrown inside the parser only, turned into a Status at its
// edge (yaml-cpp reports its own errors by throwing too).
struct SpecError {
  int line;  // 1-based; 0 when unknown
  std::string message;
};

int LineOf(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

[[noreturn]] void Fail(const YAML::Node& at, std::string message) { throw SpecError{LineOf(at), std::move(message)}; }

// A map's keys must all be known: a typo is an error, not a silently ignored setting.
void CheckKeys(const YAML::Node& map, const std::vector<std::string>& known, std::string_view where) {
  if (!map || map.IsNull()) return;
  if (!map.IsMap()) Fail(map, fmt::format("{}: expected a map of settings", where));
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      Fail(kv.first, fmt::format("{}: unknown setting '{}' (known: {})", where, key, fmt::join(known, ", ")));
    }
  }
}

template <class T>
T Get(const YAML::Node& map, const char* key, T def, std::string_view where) {
  if (!map || map.IsNull() || !map[key]) return def;
  const YAML::Node n = map[key];
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    Fail(n, fmt::format("{}: '{}' has the wrong type (got '{}')", where, key, n.IsScalar() ? n.Scalar() : "a collection"));
  }
}

// "64MiB", "1GiB", "4096" -> bytes.
uint64_t ParseSize(const YAML::Node& n, std::string_view where) {
  std::string s = n.as<std::string>();
  size_t i = 0;
  while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) Fail(n, fmt::format("{}: '{}' is not a size (e.g. 64MiB)", where, s));
  uint64_t v = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  if (unit.empty() || unit == "B") return v;
  if (unit == "KiB" || unit == "K") return v << 10;
  if (unit == "MiB" || unit == "M") return v << 20;
  if (unit == "GiB" || unit == "G") return v << 30;
  Fail(n, fmt::format("{}: unknown size unit '{}' (use B, KiB, MiB or GiB)", where, unit));
}

// `size: 32` or `size: [24, 32]` (height, width).
void ParseHW(const YAML::Node& params, const char* key, Op* op, std::string_view where, bool required) {
  YAML::Node n = params ? params[key] : YAML::Node();
  if (!n) {
    if (required) Fail(params ? params : YAML::Node(), fmt::format("{}: '{}' is required", where, key));
    return;
  }
  if (n.IsSequence()) {
    if (n.size() != 2) Fail(n, fmt::format("{}: '{}' is N or [height, width]", where, key));
    op->height = n[0].as<int>();
    op->width = n[1].as<int>();
  } else {
    op->height = op->width = Get<int>(params, key, 0, where);
  }
  if (op->height <= 0 || op->width <= 0 || op->height > 65536 || op->width > 65536) {
    Fail(n, fmt::format("{}: '{}' must be between 1 and 65536", where, key));
  }
}

// A number or [lo, hi] (a random value between them per record).
void ParseRange(const YAML::Node& params, const char* key, double def, double* lo, double* hi,
                std::string_view where) {
  *lo = *hi = def;
  if (!params || !params[key]) return;
  YAML::Node n = params[key];
  try {
    if (n.IsSequence()) {
      if (n.size() != 2) Fail(n, fmt::format("{}: '{}' is a number or [low, high]", where, key));
      *lo = n[0].as<double>();
      *hi = n[1].as<double>();
      if (*lo > *hi) Fail(n, fmt::format("{}: '{}' has low > high", where, key));
    } else {
      *lo = *hi = n.as<double>();
    }
  } catch (const YAML::Exception&) {
    Fail(n, fmt::format("{}: '{}' is a number or [low, high]", where, key));
  }
}

json RangeJson(double lo, double hi) { return lo == hi ? json(lo) : json::array({lo, hi}); }

int ParseInterpolation(const YAML::Node& at, const std::string& name, std::string_view where) {
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "linear" || name == "bilinear") return cv::INTER_LINEAR;
  if (name == "area") return cv::INTER_AREA;
  if (name == "cubic" || name == "bicubic") return cv::INTER_CUBIC;
  if (name == "lanczos") return cv::INTER_LANCZOS4;
  Fail(at, fmt::format("{}: unknown interpolation '{}' (nearest, linear, area, cubic or lanczos)", where, name));
}

std::vector<double> ParseVector(const YAML::Node& n, std::string_view where, const char* key) {
  std::vector<double> v;
  try {
    if (n.IsSequence()) {
      for (const auto& x : n) v.push_back(x.as<double>());
    } else {
      v.push_back(n.as<double>());
    }
  } catch (const YAML::Exception&) {
    Fail(n, fmt::format("{}: '{}' is 'fit', a number or a list of numbers (one per channel)", where, key));
  }
  if (v.empty() || v.size() > 4) Fail(n, fmt::format("{}: '{}' needs 1 to 4 values", where, key));
  return v;
}

std::vector<std::string> StringList(const YAML::Node& n, std::string_view where, const char* key) {
  if (!n.IsSequence()) Fail(n, fmt::format("{}: '{}' is a list", where, key));
  std::vector<std::string> v;
  for (const auto& x : n) {
    if (!x.IsScalar() || x.Scalar().empty()) Fail(x, fmt::format("{}: '{}' holds non-empty names", where, key));
    v.push_back(x.Scalar());
  }
  return v;
}

Op ParseOpAt(const YAML::Node& entry, Op& op);

// Errors without a position of their own (a setting that is missing) take the op's line.
Op ParseOp(const YAML::Node& entry) {
  Op op;
  op.line = LineOf(entry);
  try {
    return ParseOpAt(entry, op);
  } catch (SpecError& e) {
    if (e.line == 0) e.line = op.line;
    throw;
  }
}

Op ParseOpAt(const YAML::Node& entry, Op& op) {
  YAML::Node params;
  if (entry.IsScalar()) {
    op.name = entry.Scalar();
  } else if (entry.IsMap() && entry.size() == 1) {
    op.name = entry.begin()->first.as<std::string>();
    params = entry.begin()->second;
    op.line = LineOf(entry.begin()->first);
  } else {
    Fail(entry, "each op is a name, or a map with one key (the op) and its settings");
  }
  const std::string where = fmt::format("op '{}'", op.name);
  json& p = op.params;
  p = json::object();
  if (op.name == "decode") {
    op.kind = OpKind::kDecode;
    CheckKeys(params, {"mode"}, where);
    op.mode = Get<std::string>(params, "mode", "rgb", where);
    if (op.mode != "grayscale" && op.mode != "rgb" && op.mode != "any") {
      Fail(params["mode"], fmt::format("{}: mode is grayscale, rgb or any (got '{}')", where, op.mode));
    }
    p["mode"] = op.mode;
  } else if (op.name == "resize") {
    op.kind = OpKind::kResize;
    CheckKeys(params, {"size", "mode", "interpolation"}, where);
    op.mode = Get<std::string>(params, "mode", "exact", where);
    if (op.mode != "exact" && op.mode != "shorter_side") {
      Fail(params["mode"], fmt::format("{}: mode is exact or shorter_side (got '{}')", where, op.mode));
    }
    ParseHW(params, "size", &op, where, true);
    if (op.mode == "shorter_side" && params["size"].IsSequence()) {
      Fail(params["size"], fmt::format("{}: shorter_side takes one size", where));
    }
    std::string interp = Get<std::string>(params, "interpolation", "linear", where);
    op.interpolation = ParseInterpolation(params["interpolation"], interp, where);
    p["mode"] = op.mode;
    p["size"] = op.mode == "exact" ? json::array({op.height, op.width}) : json(op.height);
    p["interpolation"] = interp == "bilinear" ? "linear" : interp == "bicubic" ? "cubic" : interp;
  } else if (op.name == "center_crop" || op.name == "random_crop") {
    op.kind = op.name == "center_crop" ? OpKind::kCenterCrop : OpKind::kRandomCrop;
    if (op.kind == OpKind::kCenterCrop) {
      CheckKeys(params, {"size"}, where);
    } else {
      CheckKeys(params, {"size", "padding"}, where);
      op.padding = Get<int>(params, "padding", 0, where);
      if (op.padding < 0 || op.padding > 4096) Fail(params["padding"], fmt::format("{}: padding is 0..4096", where));
      p["padding"] = op.padding;
    }
    ParseHW(params, "size", &op, where, true);
    p["size"] = json::array({op.height, op.width});
  } else if (op.name == "clahe") {
    op.kind = OpKind::kClahe;
    CheckKeys(params, {"clip_limit", "tile"}, where);
    op.clip_limit = Get<double>(params, "clip_limit", 2.0, where);
    op.tile = Get<int>(params, "tile", 8, where);
    if (!(op.clip_limit > 0) || op.tile < 1 || op.tile > 256) {
      Fail(params, fmt::format("{}: clip_limit must be > 0 and tile 1..256", where));
    }
    p["clip_limit"] = op.clip_limit;
    p["tile"] = op.tile;
  } else if (op.name == "brightness") {
    op.kind = OpKind::kBrightness;
    CheckKeys(params, {"factor", "delta"}, where);
    ParseRange(params, "factor", 1.0, &op.factor_lo, &op.factor_hi, where);
    ParseRange(params, "delta", 0.0, &op.delta_lo, &op.delta_hi, where);
    if (op.factor_lo < 0) Fail(params["factor"], fmt::format("{}: factor must be >= 0", where));
    p["factor"] = RangeJson(op.factor_lo, op.factor_hi);
    p["delta"] = RangeJson(op.delta_lo, op.delta_hi);
  } else if (op.name == "grayscale" || op.name == "rgb") {
    op.kind = op.name == "grayscale" ? OpKind::kGrayscale : OpKind::kRgb;
    CheckKeys(params, {}, where);
  } else if (op.name == "flip") {
    op.kind = OpKind::kFlip;
    CheckKeys(params, {"axis", "probability"}, where);
    op.mode = Get<std::string>(params, "axis", "horizontal", where);
    if (op.mode != "horizontal" && op.mode != "vertical" && op.mode != "both") {
      Fail(params["axis"], fmt::format("{}: axis is horizontal, vertical or both (got '{}')", where, op.mode));
    }
    op.probability = Get<double>(params, "probability", 1.0, where);
    if (!(op.probability >= 0 && op.probability <= 1)) Fail(params["probability"], fmt::format("{}: probability is 0..1", where));
    p["axis"] = op.mode;
    p["probability"] = op.probability;
  } else if (op.name == "rotate") {
    op.kind = OpKind::kRotate;
    CheckKeys(params, {"angle", "degrees", "probability"}, where);
    if (params && params["angle"] && params["degrees"]) Fail(params, fmt::format("{}: give angle or degrees, not both", where));
    if (params && params["degrees"]) {
      ParseRange(params, "degrees", 0, &op.degrees_lo, &op.degrees_hi, where);
      p["degrees"] = RangeJson(op.degrees_lo, op.degrees_hi);
    } else {
      op.angle = Get<int>(params, "angle", 90, where);
      if (op.angle != 90 && op.angle != 180 && op.angle != 270) {
        Fail(params["angle"], fmt::format("{}: angle is 90, 180 or 270 (use degrees: [lo, hi] for others)", where));
      }
      p["angle"] = op.angle;
    }
    op.probability = Get<double>(params, "probability", 1.0, where);
    if (!(op.probability >= 0 && op.probability <= 1)) Fail(params["probability"], fmt::format("{}: probability is 0..1", where));
    p["probability"] = op.probability;
  } else if (op.name == "normalize" || op.name == "normalise") {
    op.kind = OpKind::kNormalize;
    op.name = "normalize";
    CheckKeys(params, {"mean", "std", "scale"}, where);
    YAML::Node m = params ? params["mean"] : YAML::Node(), s = params ? params["std"] : YAML::Node();
    bool mean_fit = !m || (m.IsScalar() && m.Scalar() == "fit");
    bool std_fit = !s || (s.IsScalar() && s.Scalar() == "fit");
    if (mean_fit != std_fit) Fail(params, fmt::format("{}: fit both mean and std, or give both", where));
    op.fit = mean_fit;
    if (!op.fit) {
      op.mean = ParseVector(m, where, "mean");
      op.std = ParseVector(s, where, "std");
      if (op.mean.size() != op.std.size()) Fail(s, fmt::format("{}: mean and std need as many values", where));
      for (double v : op.std) {
        if (!(v > 0)) Fail(s, fmt::format("{}: std values must be > 0", where));
      }
    }
    op.scale = Get<double>(params, "scale", 255.0, where);
    if (!(op.scale > 0)) Fail(params["scale"], fmt::format("{}: scale must be > 0", where));
    p["mean"] = op.fit ? json("fit") : json(op.mean);
    p["std"] = op.fit ? json("fit") : json(op.std);
    p["scale"] = op.scale;
  } else if (op.name == "tensor") {
    op.kind = OpKind::kTensor;
    CheckKeys(params, {"dtype", "layout"}, where);
    std::string dtype = Get<std::string>(params, "dtype", "", where);
    std::string layout = Get<std::string>(params, "layout", "chw", where);
    if (dtype == "float32") op.dtype = shard::DType::kFloat32;
    else if (dtype == "uint8") op.dtype = shard::DType::kUint8;
    else if (dtype == "float64") op.dtype = shard::DType::kFloat64;
    else if (!dtype.empty()) Fail(params["dtype"], fmt::format("{}: dtype is float32, float64 (tables) or uint8 (images) (got '{}')", where, dtype));
    if (layout != "chw" && layout != "hwc") Fail(params["layout"], fmt::format("{}: layout is chw or hwc", where));
    op.chw = layout == "chw";
    op.mode = dtype;  // empty: decided by the pipeline (float32 after normalize, else uint8)
    p["layout"] = layout;
  } else if (op.name == "text") {
    op.kind = OpKind::kText;
    CheckKeys(params, {"column"}, where);
    op.column = Get<std::string>(params, "column", "", where);
    p["column"] = op.column;
  } else if (op.name == "unicode") {
    op.kind = OpKind::kUnicode;
    CheckKeys(params, {"form"}, where);
    op.mode = Get<std::string>(params, "form", "NFC", where);
    if (op.mode != "NFC" && op.mode != "NFD" && op.mode != "NFKC" && op.mode != "NFKD") {
      Fail(params["form"], fmt::format("{}: form is NFC, NFD, NFKC or NFKD (got '{}')", where, op.mode));
    }
    p["form"] = op.mode;
  } else if (op.name == "lowercase" || op.name == "whitespace") {
    op.kind = op.name == "lowercase" ? OpKind::kLowercase : OpKind::kWhitespace;
    CheckKeys(params, {}, where);
  } else if (op.name == "stopwords") {
    op.kind = OpKind::kStopwords;
    CheckKeys(params, {"words"}, where);
    YAML::Node w = params ? params["words"] : YAML::Node();
    std::vector<std::string> words;
    if (!w) Fail(params ? params : entry, fmt::format("{}: 'words' is required (a list, or english)", where));
    if (w.IsScalar()) {
      const auto* builtin = BuiltinStopwords(w.Scalar());
      if (!builtin) Fail(w, fmt::format("{}: no built-in list '{}' (english, or give a list)", where, w.Scalar()));
      words = *builtin;
    } else {
      words = StringList(w, where, "words");
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    op.word_set = std::make_shared<const std::unordered_set<std::string>>(words.begin(), words.end());
    p["words"] = words;
  } else if (op.name == "tokenize") {
    op.kind = OpKind::kTokenize;
    CheckKeys(params, {"model", "vocab_size", "model_type", "character_coverage", "add_bos", "add_eos"}, where);
    op.model = Get<std::string>(params, "model", "train", where);
    op.add_bos = Get<bool>(params, "add_bos", false, where);
    op.add_eos = Get<bool>(params, "add_eos", false, where);
    p["model"] = op.model;
    p["add_bos"] = op.add_bos;
    p["add_eos"] = op.add_eos;
    if (op.model == "train") {
      op.vocab_size = Get<int>(params, "vocab_size", 8000, where);
      op.model_type = Get<std::string>(params, "model_type", "unigram", where);
      op.character_coverage = Get<double>(params, "character_coverage", 0.9995, where);
      if (op.vocab_size < 8 || op.vocab_size > 1'000'000) Fail(params["vocab_size"], fmt::format("{}: vocab_size is 8..1000000", where));
      if (op.model_type != "unigram" && op.model_type != "bpe" && op.model_type != "word" && op.model_type != "char") {
        Fail(params["model_type"], fmt::format("{}: model_type is unigram, bpe, word or char (got '{}')", where, op.model_type));
      }
      if (!(op.character_coverage > 0 && op.character_coverage <= 1)) {
        Fail(params["character_coverage"], fmt::format("{}: character_coverage is in (0, 1]", where));
      }
      p["vocab_size"] = op.vocab_size;
      p["model_type"] = op.model_type;
      p["character_coverage"] = op.character_coverage;
    } else {
      for (const char* k : {"vocab_size", "model_type", "character_coverage"}) {
        if (params[k]) Fail(params[k], fmt::format("{}: '{}' is a training setting; a given model has its own", where, k));
      }
      while (!op.model.empty() && op.model.front() == '/') op.model.erase(op.model.begin());
      if (op.model.empty()) Fail(params["model"], fmt::format("{}: model is train or a path in the input dataset", where));
      p["model"] = op.model;
    }
  } else if (op.name == "pad") {
    op.kind = OpKind::kPad;
    CheckKeys(params, {"length", "pad_id"}, where);
    op.length = Get<int>(params, "length", 0, where);
    if (op.length < 1 || op.length > (1 << 24)) Fail(params ? params : entry, fmt::format("{}: length is 1..16777216", where));
    op.pad_id = Get<int>(params, "pad_id", -1, where);
    if (op.pad_id < -1) Fail(params["pad_id"], fmt::format("{}: pad_id is >= 0", where));
    p["length"] = op.length;
    p["pad_id"] = op.pad_id;
  } else if (op.name == "columns") {
    op.kind = OpKind::kColumns;
    // `columns: [a, b]` or `columns: {names: [a, b]}`
    YAML::Node names = params && params.IsMap() ? params["names"] : params;
    if (params && params.IsMap()) CheckKeys(params, {"names"}, where);
    if (!names || !names.IsSequence() || names.size() == 0) Fail(params ? params : entry, fmt::format("{}: a non-empty list of column names", where));
    op.columns = StringList(names, where, "names");
    std::set<std::string> seen(op.columns.begin(), op.columns.end());
    if (seen.size() != op.columns.size()) Fail(names, fmt::format("{}: a column is listed twice", where));
    p["names"] = op.columns;
  } else if (op.name == "fill_missing" || op.name == "standardize" || op.name == "standardise" ||
             op.name == "min_max" || op.name == "one_hot" || op.name == "bucketize" || op.name == "bucketise") {
    if (op.name == "standardise") op.name = "standardize";
    if (op.name == "bucketise") op.name = "bucketize";
    op.kind = op.name == "fill_missing" ? OpKind::kFillMissing
              : op.name == "standardize" ? OpKind::kStandardize
              : op.name == "min_max"     ? OpKind::kMinMax
              : op.name == "one_hot"     ? OpKind::kOneHot
                                         : OpKind::kBucketize;
    std::vector<std::string> known = {"columns"};
    if (op.kind == OpKind::kFillMissing) known.push_back("with");
    if (op.kind == OpKind::kMinMax) known.push_back("range");
    if (op.kind == OpKind::kOneHot) known.push_back("categories");
    if (op.kind == OpKind::kBucketize) known.push_back("boundaries");
    CheckKeys(params, known, where);
    if (params && params["columns"]) op.columns = StringList(params["columns"], where, "columns");
    if ((op.kind == OpKind::kOneHot || op.kind == OpKind::kBucketize) && op.columns.empty()) {
      Fail(params ? params : entry, fmt::format("{}: 'columns' is required", where));
    }
    p["columns"] = op.columns;
    if (op.kind == OpKind::kFillMissing) {
      YAML::Node with = params ? params["with"] : YAML::Node();
      op.mode = with ? with.Scalar() : "mean";
      if (op.mode != "mean" && op.mode != "median" && op.mode != "most_frequent") {
        try {
          op.fill_value = with.as<double>();
        } catch (const YAML::Exception&) {
          Fail(with, fmt::format("{}: with is mean, median, most_frequent or a number (got '{}')", where, op.mode));
        }
        op.mode = "value";
        p["with"] = op.fill_value;
      } else {
        p["with"] = op.mode;
      }
    } else if (op.kind == OpKind::kMinMax) {
      std::vector<double> r = params && params["range"] ? ParseVector(params["range"], where, "range") : std::vector<double>{0, 1};
      if (r.size() != 2 || !(r[0] < r[1])) Fail(params["range"], fmt::format("{}: range is [low, high] with low < high", where));
      op.range_lo = r[0];
      op.range_hi = r[1];
      p["range"] = r;
    } else if (op.kind == OpKind::kOneHot) {
      if (params["categories"]) {
        if (op.columns.size() != 1) Fail(params["categories"], fmt::format("{}: categories need exactly one column", where));
        op.categories = StringList(params["categories"], where, "categories");
        std::set<std::string> seen(op.categories.begin(), op.categories.end());
        if (seen.size() != op.categories.size()) Fail(params["categories"], fmt::format("{}: a category is listed twice", where));
      }
      p["categories"] = op.categories.empty() ? json("fit") : json(op.categories);
    } else if (op.kind == OpKind::kBucketize) {
      if (!params["boundaries"]) Fail(params, fmt::format("{}: 'boundaries' is required", where));
      try {
        for (const auto& x : params["boundaries"]) op.boundaries.push_back(x.as<double>());
      } catch (const YAML::Exception&) {
        Fail(params["boundaries"], fmt::format("{}: boundaries is a list of numbers", where));
      }
      if (op.boundaries.empty() || !std::is_sorted(op.boundaries.begin(), op.boundaries.end()) ||
          std::adjacent_find(op.boundaries.begin(), op.boundaries.end()) != op.boundaries.end()) {
        Fail(params["boundaries"], fmt::format("{}: boundaries is a non-empty list of increasing numbers", where));
      }
      p["boundaries"] = op.boundaries;
    }
  } else {
    Fail(entry, fmt::format("unknown op '{}' (image: decode, resize, center_crop, random_crop, clahe, brightness, "
                            "grayscale, rgb, flip, rotate, normalize, tensor; text: text, unicode, lowercase, "
                            "whitespace, stopwords, tokenize, pad; tabular: columns, fill_missing, standardize, "
                            "min_max, one_hot, bucketize, tensor)",
                            op.name));
  }
  return op;
}

PipelineKind KindOf(OpKind op) {
  if (op >= OpKind::kText && op <= OpKind::kPad) return PipelineKind::kText;
  if (op >= OpKind::kColumns && op <= OpKind::kBucketize) return PipelineKind::kTabular;
  return PipelineKind::kImage;
}

// "an image", "a text", "a table": for "is an image op", "makes it a table pipeline".
std::string_view KindName(PipelineKind kind) {
  switch (kind) {
    case PipelineKind::kImage: return "an image";
    case PipelineKind::kText: return "a text";
    case PipelineKind::kTabular: return "a table";
  }
  return "?";
}

// Checks the order of ops and works out the output's shape and type.
void CheckOps(const YAML::Node& ops_node, Pipeline* p) {
  const OpKind first = p->ops[0].kind;
  if (first != OpKind::kDecode && first != OpKind::kText && first != OpKind::kColumns) {
    Fail(ops_node, "the first op must be decode (images), text (text) or columns (tables)");
  }
  p->kind = KindOf(first);
  if (p->kind == PipelineKind::kTabular) p->out_dtype = shard::DType::kFloat32;
  for (size_t i = 0; i < p->ops.size(); ++i) {
    Op& op = p->ops[i];
    auto fail = [&](const std::string& msg) { throw SpecError{op.line, fmt::format("op '{}': {}", op.name, msg)}; };
    if (i > 0 && op.kind == first) fail(fmt::format("{} may appear only once, first", op.name));
    if (i > 0 && (op.kind == OpKind::kDecode || op.kind == OpKind::kText || op.kind == OpKind::kColumns)) {
      fail(fmt::format("is the first op of {} pipeline; this one is {} pipeline", KindName(KindOf(op.kind)),
                       KindName(p->kind)));
    }
    bool tensor_ok = op.kind == OpKind::kTensor && p->kind != PipelineKind::kText;
    if (KindOf(op.kind) != p->kind && !tensor_ok) {
      fail(fmt::format("is {} op; this pipeline's first op makes it {} pipeline",
                       op.kind == OpKind::kTensor ? "an image or table" : KindName(KindOf(op.kind)), KindName(p->kind)));
    }
    if (p->kind == PipelineKind::kText) {
      if (op.kind == OpKind::kTokenize) {
        if (p->tokenize_index >= 0) fail("tokenize may appear only once");
        p->tokenize_index = static_cast<int>(i);
      } else if (op.kind == OpKind::kPad) {
        if (p->tokenize_index < 0) fail("pad needs a tokenize op before it");
        if (i + 1 != p->ops.size()) fail("pad must be the last op");
        p->pad_index = static_cast<int>(i);
      } else if (p->tokenize_index >= 0) {
        fail("comes after tokenize: text ops must come before it");
      }
      continue;
    }
    if (p->kind == PipelineKind::kTabular) {
      if (op.kind == OpKind::kTensor) {
        if (i + 1 != p->ops.size()) fail("tensor must be the last op");
        if (op.mode == "uint8") fail("dtype of a table's features is float32 or float64");
        if (op.mode == "float64") p->out_dtype = shard::DType::kFloat64;
        op.params.erase("layout");
        op.params["dtype"] = op.mode == "float64" ? "float64" : "float32";
      }
      continue;
    }
    if (op.kind == OpKind::kTensor && op.mode == "float64") fail("dtype of an image is float32 or uint8");
    if (p->normalize_index >= 0 && op.kind != OpKind::kTensor) {
      fail("comes after normalize: normalize must be the last image op (only tensor may follow)");
    }
    if (op.kind == OpKind::kTensor && i + 1 != p->ops.size()) fail("tensor must be the last op");
    switch (op.kind) {
      case OpKind::kDecode:
        p->channels = op.mode == "grayscale" ? 1 : op.mode == "rgb" ? 3 : 0;
        break;
      case OpKind::kGrayscale: p->channels = 1; break;
      case OpKind::kRgb: p->channels = 3; break;
      case OpKind::kResize:
        if (op.mode == "exact") {
          p->out_height = op.height;
          p->out_width = op.width;
        } else {
          p->out_height = p->out_width = 0;
        }
        break;
      case OpKind::kCenterCrop:
      case OpKind::kRandomCrop:
        p->out_height = op.height;
        p->out_width = op.width;
        break;
      case OpKind::kRotate:
        if ((op.angle == 90 || op.angle == 270) && p->out_height != p->out_width) p->out_height = p->out_width = 0;
        break;
      case OpKind::kNormalize:
        p->normalize_index = static_cast<int>(i);
        if (!op.fit && p->channels != 0 && op.mean.size() != 1 && static_cast<int>(op.mean.size()) != p->channels) {
          fail(fmt::format("{} mean/std values for {} channels", op.mean.size(), p->channels));
        }
        p->out_dtype = shard::DType::kFloat32;
        break;
      case OpKind::kTensor:
        if (!op.mode.empty()) {
          if (p->normalize_index >= 0 && op.dtype == shard::DType::kUint8) fail("uint8 output after normalize");
          p->out_dtype = op.dtype;
        }
        p->out_chw = op.chw;
        op.dtype = p->out_dtype;
        op.params["dtype"] = p->out_dtype == shard::DType::kFloat32 ? "float32" : "uint8";
        break;
      default:
        break;
    }
  }
}

// augment.online: what the loader does to each image sample it reads (a different draw each
// time), on the pipeline's output tensor, so only ops that move or mirror pixels.
void ParseOnline(const YAML::Node& online, Pipeline* p) {
  if (!online.IsSequence()) Fail(online, "augment: online is a list of ops (random_crop, flip, rotate)");
  if (p->kind != PipelineKind::kImage) Fail(online, "augment: online ops are image ops; this is not an image pipeline");
  for (const auto& entry : online) {
    Op op = ParseOp(entry);
    auto fail = [&](const std::string& msg) { throw SpecError{op.line, fmt::format("augment: online op '{}': {}", op.name, msg)}; };
    if (op.kind != OpKind::kRandomCrop && op.kind != OpKind::kFlip && op.kind != OpKind::kRotate) {
      fail("the loader applies random_crop, flip and rotate (by 90, 180 or 270 degrees)");
    }
    if (op.kind == OpKind::kRotate && op.params.contains("degrees")) fail("rotates by 90, 180 or 270 degrees only");
    if (op.kind == OpKind::kRandomCrop && p->out_height > 0 &&
        (op.height > p->out_height + 2 * op.padding || op.width > p->out_width + 2 * op.padding)) {
      fail(fmt::format("{}x{} is larger than the {}x{} output plus padding", op.height, op.width, p->out_height,
                       p->out_width));
    }
    p->online.push_back(std::move(op));
  }
}

void ParseDocument(const YAML::Node& root, Pipeline* p) {
  if (!root.IsMap()) Fail(root, "a pipeline is a map with keys version, name, seed, select, label, augment, ops, output");
  CheckKeys(root, {"version", "name", "seed", "select", "label", "augment", "ops", "output"}, "pipeline");
  int version = Get<int>(root, "version", 1, "pipeline");
  if (version != 1) Fail(root["version"], fmt::format("pipeline version {} is not supported (this build reads 1)", version));
  p->name = Get<std::string>(root, "name", "", "pipeline");
  p->seed = Get<uint64_t>(root, "seed", 0, "pipeline");

  YAML::Node select = root["select"];
  CheckKeys(select, {"prefix", "extensions"}, "select");
  p->prefix = Get<std::string>(select, "prefix", "", "select");
  while (!p->prefix.empty() && p->prefix.front() == '/') p->prefix.erase(p->prefix.begin());
  if (select && select["extensions"]) {
    YAML::Node ext = select["extensions"];
    if (!ext.IsSequence()) Fail(ext, "select: extensions is a list ([.png, .jpg])");
    for (const auto& e : ext) {
      std::string s = e.as<std::string>();
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      if (!s.starts_with(".")) s = "." + s;
      p->extensions.push_back(s);
    }
  }

  YAML::Node label = root["label"];
  if (label && label.IsScalar() && (label.Scalar() == "none" || label.Scalar() == "false")) {
    p->has_label = false;
  } else if (label && !label.IsNull()) {
    CheckKeys(label, {"column", "classes"}, "label");
    p->label_column = Get<std::string>(label, "column", "label", "label");
    if (label["classes"]) {
      YAML::Node c = label["classes"];
      if (!c.IsSequence() || c.size() == 0) Fail(c, "label: classes is a non-empty list of class names");
      std::set<std::string> seen;
      for (const auto& x : c) {
        std::string name = x.as<std::string>();
        if (!seen.insert(name).second) Fail(x, fmt::format("label: class '{}' is listed twice", name));
        p->classes.push_back(name);
      }
    }
  }

  YAML::Node augment = root["augment"];
  CheckKeys(augment, {"variants", "online"}, "augment");
  int variants = Get<int>(augment, "variants", 1, "augment");
  if (variants < 1 || variants > 1024) Fail(augment["variants"], "augment: variants is 1..1024");
  p->variants = static_cast<uint32_t>(variants);

  YAML::Node ops = root["ops"];
  if (!ops || !ops.IsSequence() || ops.size() == 0) Fail(ops ? ops : root, "pipeline: 'ops' is a non-empty list");
  for (const auto& entry : ops) p->ops.push_back(ParseOp(entry));
  CheckOps(ops, p);
  p->reads_rows = p->kind == PipelineKind::kTabular || !p->ops[0].column.empty();
  if (!(select && select["extensions"]) && !p->reads_rows) {
    if (p->kind == PipelineKind::kImage) {
      p->extensions = {".bmp", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"};
    } else {
      p->extensions = {".txt"};
    }
  }
  std::sort(p->extensions.begin(), p->extensions.end());
  p->extensions.erase(std::unique(p->extensions.begin(), p->extensions.end()), p->extensions.end());

  YAML::Node output = root["output"];
  CheckKeys(output, {"field", "keep_path", "shard_size"}, "output");
  const char* field = p->kind == PipelineKind::kImage      ? "image"
                      : p->kind == PipelineKind::kTabular  ? "features"
                      : p->tokenize_index >= 0             ? "tokens"
                                                           : "text";
  p->field = Get<std::string>(output, "field", field, "output");
  if (p->field.empty() || p->field.size() > 255 || p->field == "label" || p->field == "path" ||
      p->field == "variant" || p->field == "length") {
    Fail(output["field"], "output: field is a name of 1..255 bytes other than label, path, variant and length");
  }
  if (p->kind != PipelineKind::kImage && p->variants > 1) {
    Fail(augment["variants"], "augment: variants are made by image ops; a text or table pipeline has one per record");
  }
  if (augment && augment["online"]) ParseOnline(augment["online"], p);
  p->keep_path = Get<bool>(output, "keep_path", true, "output");
  if (output && output["shard_size"]) p->shard_size = ParseSize(output["shard_size"], "output: shard_size");
  if (p->shard_size < (uint64_t{1} << 16)) Fail(output["shard_size"], "output: shard_size is at least 64KiB");
}

}  // namespace

std::string Sha256(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

json OpsJson(const std::vector<Op>& ops) {
  json out = json::array();
  for (const Op& op : ops) out.push_back({{"op", op.name}, {"version", op.version}, {"params", op.params}});
  return out;
}

Result<Pipeline> ParsePipeline(std::string_view yaml, std::string_view source_name) {
  Pipeline p;
  std::string where = source_name.empty() ? std::string("pipeline") : std::string(source_name);
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    ParseDocument(root, &p);
  } catch (const SpecError& e) {
    return Status::InvalidArgument(e.line > 0 ? fmt::format("{} line {}: {}", where, e.line, e.message)
                                              : fmt::format("{}: {}", where, e.message));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{} line {}: {}", where, e.mark.line + 1, e.msg));
  }
  json ops = OpsJson(p.ops);
  json label = p.has_label ? json{{"column", p.label_column}, {"classes", p.classes}} : json(nullptr);
  p.canonical = {{"format", "strata.transform.pipeline"},
                 {"version", 1},
                 {"seed", p.seed},
                 {"select", {{"prefix", p.prefix}, {"extensions", p.extensions}}},
                 {"label", label},
                 {"variants", p.variants},
                 {"ops", ops},
                 {"output", {{"field", p.field}, {"keep_path", p.keep_path}, {"shard_size", p.shard_size}}}};
  if (!p.online.empty()) p.canonical["online"] = OpsJson(p.online);
  std::string digest = Sha256(p.canonical.dump());
  p.hash = ToHex(reinterpret_cast<const uint8_t*>(digest.data()), digest.size());
  return p;
}

}  // namespace strata::transform
