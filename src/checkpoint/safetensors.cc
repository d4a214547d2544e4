// safetensors files: an 8-byte little-endian header length, a JSON header
// {"NAME": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// data. Imported files are untrusted (docs/SECURITY.md): every number is checked before use.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/endian.h"
#include "checkpoint/manifest.h"
#include "strata/checkpoint.h"

namespace strata {

using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's limit
Status Bad(std::string_view what) { return Status::Corruption(fmt::format("safetensors: {}", what)); }
}  // namespace

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix, uint64_t file_size) {
  if (prefix.size() < 8 || file_size < 8) return Bad("file shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];
  if (n < 2 || n > kMaxHeader) return Bad(fmt::format("header length {} out of range", n));
  if (n > file_size - 8 || n > prefix.size() - 8) return Bad("header extends past the end of the file");
  std::string_view text(reinterpret_cast<const char*>(prefix.data() + 8), n);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("header is not a JSON object");
  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const uint64_t data_size = file_size - h.data_offset;
  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) return Bad("__metadata__ is not an object");
      for (auto& [k, mv] : v.items()) {
        if (!mv.is_string()) return Bad("__metadata__ values must be strings");
        h.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    if (name.empty() || name.size() > 1024) return Bad("tensor name empty or too long");
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") ||
        !v["shape"].is_array() || !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2) {
      return Bad(fmt::format("tensor '{}': needs dtype, shape and data_offsets", name.substr(0, 64)));
    }
    SafetensorsTensor t;
    t.name = name;
    auto dtype = ParseDType(v["dtype"].get<std::string>());
    if (!dtype.ok()) return Bad(fmt::format("tensor '{}': {}", name.substr(0, 64), dtype.status().message()));
    t.dtype = *dtype;
    if (v["shape"].size() > 16) return Bad(fmt::format("tensor '{}': too many dims", name.substr(0, 64)));
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) return Bad(fmt::format("tensor '{}': bad shape", name.substr(0, 64)));
      t.shape.push_back(d.get<uint64_t>());
    }
    for (const auto& o : v["data_offsets"]) {
      if (!o.is_number_unsigned()) return Bad(fmt::format("tensor '{}': bad data_offsets", name.substr(0, 64)));
    }
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    uint64_t bytes = 0;
    if (!checkpoint::Volume(t.shape, DTypeSize(t.dtype), &bytes)) return Bad(fmt::format("tensor '{}': shape overflows", name.substr(0, 64)));
    if (t.begin > t.end || t.end > data_size || t.end - t.begin != bytes) {
      return Bad(fmt::format("tensor '{}': data_offsets [{}, {}) do not fit its {} bytes in {} bytes of data",
                             name.substr(0, 64), t.begin, t.end, bytes, data_size));
    }
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // As the reference reader demands: the tensors tile the data exactly, without gaps or overlap.
  uint64_t at = 0;
  for (const auto& t : h.tensors) {
    if (t.begin != at) return Bad(fmt::format("tensor '{}' does not start where the previous one ends", t.name.substr(0, 64)));
    at = t.end;
  }
  if (at != data_size) return Bad("the data section is larger than its tensors");
  return h;
}

Status ExportSafetensors(CheckpointReader* reader, const std::string& path, Env* env) {
  const CheckpointInfo& info = reader->info();
  json header = json::object();
  uint64_t at = 0;
  for (const auto& t : info.tensors) {  // sorted by name
    header[t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape}, {"data_offsets", {at, at + t.bytes}}};
    at += t.bytes;
  }
  json meta = {{"strata.run", info.run}, {"strata.step", std::to_string(info.step)}};
  for (const auto& [k, v] : info.meta) meta[k] = v;
  header["__metadata__"] = meta;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data 8-byte aligned
  std::string tmp = path + ".strata-tmp";
  STRATA_ASSIGN_OR_RETURN(auto out, env->NewWritableFile(tmp));
  auto fail = [&](Status s) {
    (void)out->Close();
    (void)env->DeleteFile(tmp);
    return s.WithContext(fmt::format("exporting to {}", path));
  };
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  Status s = out->Append({len, 8});
  if (s.ok()) s = out->Append({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  std::vector<uint8_t> buf;
  for (const auto& t : info.tensors) {
    if (!s.ok()) break;
    if (t.shape.empty() || t.bytes == 0) {
      buf.resize(t.bytes);
      s = reader->ReadTensor(t.name, buf);
      if (s.ok()) s = out->Append(buf);
      continue;
    }
    // Bounded memory: a block of rows at a time.
    uint64_t row = t.bytes / t.shape[0];
    uint64_t rows = row ? std::max<uint64_t>(1, (64ull << 20) / row) : t.shape[0];
    for (uint64_t r = 0; r < t.shape[0] && s.ok(); r += rows) {
      uint64_t e = std::min(t.shape[0], r + rows);
      buf.resize((e - r) * row);
      s = reader->ReadRows(t.name, r, e, buf);
      if (s.ok()) s = out->Append(buf);
    }
  }
  if (s.ok()) s = out->Sync();
  if (s.ok()) s = out->Close();
  if (!s.ok()) return fail(s);
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  size_t slash = path.rfind('/');
  return env->SyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

Status ImportSafetensors(Checkpointer* checkpointer, const std::string& path, int64_t step, Env* env) {
  STRATA_ASSIGN_OR_RETURN(auto file, env->MapFile(path));
  std::span<const uint8_t> data = file->data();
  auto h = ParseSafetensorsHeader(data, data.size());
  if (!h.ok()) return h.status().WithContext(path);
  SaveRequest req;
  req.step = step;
  for (const auto& t : h->tensors) {
    TensorView v;
    v.name = t.name;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.data = data.data() + h->data_offset + t.begin;
    v.bytes = t.end - t.begin;
    req.tensors.push_back(std::move(v));
  }
  for (const auto& [k, v] : h->metadata) {
    if (!k.starts_with("strata.")) req.meta[k] = v;
  }
  req.meta["imported_from"] = path.substr(path.rfind('/') + 1);
  STRATA_RETURN_IF_ERROR(checkpointer->Save(req));
  return checkpointer->Wait();
}

}  // namespace strata
