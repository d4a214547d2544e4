#include "checkpoint/manifest.h"

#include <algorithm>
#include <array>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"

namespace strata {

namespace {
struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeEntry, 15> kDTypes = {{
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kI64, "I64", 8},
    {DType::kI32, "I32", 4}, {DType::kI16, "I16", 2}, {DType::kI8, "I8", 1}, {DType::kU64, "U64", 8},
    {DType::kU32, "U32", 4}, {DType::kU16, "U16", 2}, {DType::kU8, "U8", 1}, {DType::kBool, "BOOL", 1},
}};
}  // namespace

std::string_view DTypeName(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

Result<DType> ParseDType(std::string_view name) {
  for (const auto& e : kDTypes) {
    if (e.name == name) return e.dtype;
  }
  return Status::InvalidArgument(fmt::format("unknown dtype '{}'", name.substr(0, 32)));
}

size_t DTypeSize(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

namespace checkpoint {

using nlohmann::json;

bool Volume(const std::vector<uint64_t>& shape, uint64_t elem, uint64_t* out) {
  uint64_t v = elem;
  for (uint64_t d : shape) {
    if (d != 0 && v > UINT64_MAX / d) return false;
    v *= d;
  }
  *out = v;
  return true;
}

std::string RunDataset(std::string_view run) { return std::string(kRunPrefix) + std::string(run); }
std::string CheckpointTag(int64_t step) { return fmt::format("{}{:012}", kCheckpointTagPrefix, step); }
std::string PendingPrefix(int64_t step) { return fmt::format("{}{:012}/", kPendingTagPrefix, step); }
std::string PendingTag(int64_t step, int rank) { return fmt::format("{}{:05}", PendingPrefix(step), rank); }

int64_t StepOfTag(std::string_view tag) {
  if (!tag.starts_with(kCheckpointTagPrefix)) return -1;
  std::string_view digits = tag.substr(kCheckpointTagPrefix.size());
  if (digits.empty() || digits.size() > 18) return -1;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

Status ValidateRunName(std::string_view run) {
  if (run.empty() || run.size() > 120) return Status::InvalidArgument("a run name has 1 to 120 characters");
  Status s = catalog::ValidateDatasetName(RunDataset(run));
  if (!s.ok()) return Status::InvalidArgument(fmt::format("bad run name '{}': use letters, digits, '.', '_' and '-'", run));
  return Status::OK();
}

namespace {

json Dims(const std::vector<uint64_t>& v) {
  json a = json::array();
  for (uint64_t d : v) a.push_back(d);
  return a;
}

Status Bad(std::string_view what) { return Status::Corruption(fmt::format("checkpoint manifest: {}", what)); }

Result<std::vector<uint64_t>> ParseDims(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() > 16) return Bad(fmt::format("bad '{}'", key));
  std::vector<uint64_t> out;
  for (const auto& d : j[key]) {
    if (!d.is_number_unsigned()) return Bad(fmt::format("bad '{}'", key));
    out.push_back(d.get<uint64_t>());
  }
  return out;
}

Result<std::string> ParseString(const json& j, const char* key, size_t max = 1024) {
  if (!j.contains(key) || !j[key].is_string()) return Bad(fmt::format("missing '{}'", key));
  std::string s = j[key].get<std::string>();
  if (s.size() > max) return Bad(fmt::format("'{}' too long", key));
  return s;
}

Result<uint64_t> ParseU64(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_unsigned()) return Bad(fmt::format("missing '{}'", key));
  return j[key].get<uint64_t>();
}

bool ValidFile(std::string_view f, char dir) {
  if (f.size() < 3 || f.size() > 64 || f[0] != dir || f[1] != '/') return false;
  for (char c : f.substr(2)) {
    if (!((c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace

std::string EncodeManifest(const Manifest& m) {
  json tensors = json::array();
  for (const auto& t : m.tensors) {
    json pieces = json::array();
    for (const auto& p : t.pieces) {
      pieces.push_back({{"file", p.file}, {"offsets", Dims(p.offsets)}, {"shape", Dims(p.shape)}, {"bytes", p.bytes}});
    }
    tensors.push_back({{"name", t.name}, {"dtype", DTypeName(t.dtype)}, {"shape", Dims(t.shape)}, {"pieces", pieces}});
  }
  json states = json::array();
  for (const auto& s : m.states) states.push_back({{"name", s.name}, {"file", s.file}, {"bytes", s.bytes}});
  json j = {{"format", kManifestFormat},
            {"version", kManifestVersion},
            {"run", m.run},
            {"step", m.step},
            {"world_size", m.world_size},
            {"chunk_bytes", m.chunk_bytes},
            {"time_ns", m.time_ns},
            {"meta", m.meta},
            {"metrics", m.metrics},
            {"tensors", tensors},
            {"states", states}};
  if (m.rank >= 0) j["rank"] = m.rank;
  return j.dump();
}

Status CheckCoverage(const TensorRecord& t) {
  uint64_t total = 0, covered = 0;
  if (!Volume(t.shape, 1, &total)) return Bad(fmt::format("tensor '{}': shape overflows", t.name));
  for (size_t i = 0; i < t.pieces.size(); ++i) {
    uint64_t v = 0;
    (void)Volume(t.pieces[i].shape, 1, &v);  // bounded by the checks in ParseManifest
    covered += v;
    for (size_t k = 0; k < i; ++k) {
      bool overlap = true;
      for (size_t d = 0; d < t.shape.size(); ++d) {
        const auto& a = t.pieces[i];
        const auto& b = t.pieces[k];
        if (a.offsets[d] >= b.offsets[d] + b.shape[d] || b.offsets[d] >= a.offsets[d] + a.shape[d]) overlap = false;
      }
      if (overlap && total > 0) return Bad(fmt::format("tensor '{}': pieces {} and {} overlap", t.name, k, i));
    }
  }
  if (covered != total) {
    return Bad(fmt::format("tensor '{}': its pieces cover {} of {} elements (a rank's part is missing?)", t.name,
                           covered, total));
  }
  return Status::OK();
}

Result<Manifest> ParseManifest(std::string_view text, bool complete) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("not a JSON object");
  STRATA_ASSIGN_OR_RETURN(std::string format, ParseString(j, "format"));
  if (format != kManifestFormat) return Bad("not a checkpoint manifest");
  if (!j.contains("version") || !j["version"].is_number_integer()) return Bad("no version");
  if (j["version"].get<int64_t>() != kManifestVersion) {
    return Status::Unsupported("checkpoint manifest of an unsupported version (written by a newer strata?)");
  }
  Manifest m;
  STRATA_ASSIGN_OR_RETURN(m.run, ParseString(j, "run", 128));
  STRATA_ASSIGN_OR_RETURN(uint64_t step, ParseU64(j, "step"));
  STRATA_ASSIGN_OR_RETURN(uint64_t world, ParseU64(j, "world_size"));
  STRATA_ASSIGN_OR_RETURN(uint64_t chunk, ParseU64(j, "chunk_bytes"));
  if (step > uint64_t(INT64_MAX) || world == 0 || world > 1'000'000 || chunk > (64u << 20)) return Bad("bad step, world_size or chunk_bytes");
  m.step = int64_t(step);
  m.world_size = int(world);
  m.chunk_bytes = uint32_t(chunk);
  if (j.contains("time_ns") && j["time_ns"].is_number_integer()) m.time_ns = j["time_ns"].get<int64_t>();
  if (j.contains("rank")) {
    if (!j["rank"].is_number_unsigned() || j["rank"].get<uint64_t>() >= world) return Bad("bad rank");
    m.rank = int(j["rank"].get<uint64_t>());
  }
  if (j.contains("meta")) {
    if (!j["meta"].is_object()) return Bad("bad meta");
    for (auto& [k, v] : j["meta"].items()) {
      if (!v.is_string()) return Bad("bad meta value");
      m.meta[k] = v.get<std::string>();
    }
  }
  if (j.contains("metrics")) {
    if (!j["metrics"].is_object()) return Bad("bad metrics");
    for (auto& [k, v] : j["metrics"].items()) {
      if (!v.is_number()) return Bad("bad metric value");
      m.metrics[k] = v.get<double>();
    }
  }
  std::set<std::string> names, files;
  if (!j.contains("tensors") || !j["tensors"].is_array()) return Bad("no tensors");
  for (const auto& jt : j["tensors"]) {
    if (!jt.is_object()) return Bad("bad tensor");
    TensorRecord t;
    STRATA_ASSIGN_OR_RETURN(t.name, ParseString(jt, "name"));
    if (t.name.empty() || !names.insert(t.name).second) return Bad(fmt::format("tensor name '{}' empty or repeated", t.name));
    STRATA_ASSIGN_OR_RETURN(std::string dt, ParseString(jt, "dtype", 16));
    auto dtype = ParseDType(dt);
    if (!dtype.ok()) return Bad(fmt::format("tensor '{}': {}", t.name, dtype.status().message()));
    t.dtype = *dtype;
    STRATA_ASSIGN_OR_RETURN(t.shape, ParseDims(jt, "shape"));
    uint64_t total = 0;
    if (!Volume(t.shape, DTypeSize(t.dtype), &total)) return Bad(fmt::format("tensor '{}': shape overflows", t.name));
    if (!jt.contains("pieces") || !jt["pieces"].is_array() || jt["pieces"].empty()) return Bad(fmt::format("tensor '{}': no pieces", t.name));
    for (const auto& jp : jt["pieces"]) {
      if (!jp.is_object()) return Bad("bad piece");
      PieceRecord p;
      STRATA_ASSIGN_OR_RETURN(p.file, ParseString(jp, "file", 64));
      if (!ValidFile(p.file, 't') || !files.insert(p.file).second) return Bad(fmt::format("tensor '{}': bad piece file", t.name));
      STRATA_ASSIGN_OR_RETURN(p.offsets, ParseDims(jp, "offsets"));
      STRATA_ASSIGN_OR_RETURN(p.shape, ParseDims(jp, "shape"));
      STRATA_ASSIGN_OR_RETURN(p.bytes, ParseU64(jp, "bytes"));
      if (p.offsets.size() != t.shape.size() || p.shape.size() != t.shape.size()) {
        return Bad(fmt::format("tensor '{}': a piece's rank differs from the tensor's", t.name));
      }
      for (size_t d = 0; d < t.shape.size(); ++d) {
        if (p.offsets[d] > t.shape[d] || p.shape[d] > t.shape[d] - p.offsets[d]) {
          return Bad(fmt::format("tensor '{}': a piece lies outside the tensor", t.name));
        }
      }
      uint64_t v = 0;
      if (!Volume(p.shape, DTypeSize(t.dtype), &v) || v != p.bytes) return Bad(fmt::format("tensor '{}': piece size disagrees with its shape", t.name));
      t.pieces.push_back(std::move(p));
    }
    if (complete) STRATA_RETURN_IF_ERROR(CheckCoverage(t));
    m.tensors.push_back(std::move(t));
  }
  if (!j.contains("states") || !j["states"].is_array()) return Bad("no states");
  std::set<std::string> state_names;
  for (const auto& js : j["states"]) {
    if (!js.is_object()) return Bad("bad state");
    StateRecord s;
    STRATA_ASSIGN_OR_RETURN(s.name, ParseString(js, "name"));
    STRATA_ASSIGN_OR_RETURN(s.file, ParseString(js, "file", 64));
    STRATA_ASSIGN_OR_RETURN(s.bytes, ParseU64(js, "bytes"));
    if (s.name.empty() || !state_names.insert(s.name).second) return Bad(fmt::format("state name '{}' empty or repeated", s.name));
    if (!ValidFile(s.file, 's') || !files.insert(s.file).second) return Bad(fmt::format("state '{}': bad file", s.name));
    m.states.push_back(std::move(s));
  }
  return m;
}

}  // namespace checkpoint
}  // namespace strata
