// Serving weights: the writer, the memory-mapped loader and the pull of a model version into a
// directory (docs/FORMAT.md, "Serving weights").
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "checkpoint/manifest.h"
#include "crypto/aead.h"
#include "checkpoint/runs_impl.h"
#include "registry/serving_format.h"
#include "store/object_store.h"
#include "store/tree.h"
#include "strata/registry.h"

namespace strata {
namespace registry {

using nlohmann::json;

namespace {

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string HashHex(const std::array<uint8_t, 32>& h) { return ToHex(h.data(), h.size()); }

}  // namespace

TensorHasher::TensorHasher(std::string_view key) {
  if (key.empty()) {
    auto* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    md_ = ctx;
    return;
  }
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  auto* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  mac_ = ctx;
}

TensorHasher::~TensorHasher() {
  if (md_) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(md_));
  if (mac_) EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(mac_));
}

void TensorHasher::Update(std::span<const uint8_t> data) {
  if (md_) EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(md_), data.data(), data.size());
  else EVP_MAC_update(static_cast<EVP_MAC_CTX*>(mac_), data.data(), data.size());
}

std::array<uint8_t, 32> TensorHasher::Final() {
  std::array<uint8_t, 32> out{};
  if (md_) {
    unsigned n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(md_), out.data(), &n);
  } else {
    size_t n = 0;
    EVP_MAC_final(static_cast<EVP_MAC_CTX*>(mac_), out.data(), &n, out.size());
  }
  return out;
}

Result<ServingHeader> ParseServingFile(std::span<const uint8_t> file) {
  auto bad = [](std::string why) { return Status::Corruption("serving weights file: " + why); };
  if (file.size() < kServingPrefixBytes) return bad("shorter than its 64-byte prefix");
  if (std::memcmp(file.data(), kServingMagic, 8) != 0) return bad("not a strata weights file (bad magic)");
  uint32_t version = GetU32(file.data() + 8);
  if (version != kServingVersion) {
    return Status::Unsupported(fmt::format("serving weights file: format version {} (this strata reads {})", version,
                                           kServingVersion));
  }
  ServingHeader h;
  h.alignment = GetU32(file.data() + 12);
  if (h.alignment != 64 && h.alignment != 4096) return bad(fmt::format("alignment {} is not 64 or 4096", h.alignment));
  uint64_t hlen = GetU64(file.data() + 16);
  h.data_offset = GetU64(file.data() + 24);
  if (hlen > kMaxServingHeader || hlen > file.size() - kServingPrefixBytes) return bad("header length outside the file");
  if (h.data_offset % h.alignment != 0 || h.data_offset < kServingPrefixBytes + hlen || h.data_offset > file.size()) {
    return bad("data offset is misaligned or outside the file");
  }
  std::span<const uint8_t> htext = file.subspan(kServingPrefixBytes, hlen);
  std::array<uint8_t, 32> sum = crypto::Sha256(htext);
  // SHA-256 via OpenSSL; the header checksum catches damage, the per-tensor hashes cover data.
  if (std::memcmp(sum.data(), file.data() + 32, 32) != 0) return bad("header checksum mismatch (damaged header)");
  json j = json::parse(htext.begin(), htext.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != "strata.weights") {
    return bad("header is not a strata.weights JSON object");
  }
  if (!j.contains("hash") || !j["hash"].is_string()) return bad("header names no hash");
  std::string hash = j["hash"].get<std::string>();
  if (hash == "hmac-sha256") h.keyed = true;
  else if (hash != "sha256") return bad(fmt::format("unknown hash '{}'", hash));
  if (j.contains("metadata")) {
    if (!j["metadata"].is_object()) return bad("metadata is not an object");
    for (auto it = j["metadata"].begin(); it != j["metadata"].end(); ++it) {
      if (!it.value().is_string()) return bad("metadata values must be strings");
      h.metadata[it.key()] = it.value().get<std::string>();
    }
  }
  if (!j.contains("tensors") || !j["tensors"].is_array()) return bad("header has no tensor list");
  std::set<std::string> names;
  uint64_t end_prev = h.data_offset;
  for (const auto& t : j["tensors"]) {
    if (!t.is_object()) return bad("a tensor entry is not an object");
    ServingTensor st;
    if (!t.contains("name") || !t["name"].is_string()) return bad("a tensor has no name");
    st.name = t["name"].get<std::string>();
    if (st.name.empty() || st.name.size() > 4096 || !names.insert(st.name).second) {
      return bad(fmt::format("tensor name '{}' is empty, too long or repeated", st.name.substr(0, 64)));
    }
    if (!t.contains("dtype") || !t["dtype"].is_string()) return bad(fmt::format("tensor '{}' has no dtype", st.name));
    auto dt = ParseDType(t["dtype"].get<std::string>());
    if (!dt.ok()) return bad(fmt::format("tensor '{}': {}", st.name, dt.status().message()));
    st.dtype = *dt;
    if (!t.contains("shape") || !t["shape"].is_array() || t["shape"].size() > 64) {
      return bad(fmt::format("tensor '{}' has no shape", st.name));
    }
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned()) return bad(fmt::format("tensor '{}': shape holds a non-size", st.name));
      st.shape.push_back(d.get<uint64_t>());
    }
    for (const char* k : {"offset", "bytes"}) {
      if (!t.contains(k) || !t[k].is_number_unsigned()) return bad(fmt::format("tensor '{}' has no {}", st.name, k));
    }
    st.offset = t["offset"].get<uint64_t>();
    st.bytes = t["bytes"].get<uint64_t>();
    uint64_t want = 0;
    if (!checkpoint::Volume(st.shape, DTypeSize(st.dtype), &want) || want != st.bytes) {
      return bad(fmt::format("tensor '{}': {} bytes do not match its shape", st.name, st.bytes));
    }
    if (st.offset % h.alignment != 0 || st.offset < end_prev || st.offset > file.size() ||
        st.bytes > file.size() - st.offset) {
      return bad(fmt::format("tensor '{}' is misaligned, overlaps another or lies outside the file", st.name));
    }
    end_prev = st.offset + st.bytes;
    if (!t.contains("hash") || !t["hash"].is_string()) return bad(fmt::format("tensor '{}' has no hash", st.name));
    auto raw = FromHex(t["hash"].get<std::string>());
    if (!raw.ok() || raw->size() != 32) return bad(fmt::format("tensor '{}': hash is not 64 hex digits", st.name));
    std::memcpy(st.hash.data(), raw->data(), 32);
    h.tensors.push_back(std::move(st));
  }
  return h;
}

Status WriteServingFile(const std::string& path, std::vector<ServingSource> sources, uint32_t alignment,
                        std::string_view key, const std::map<std::string, std::string>& metadata, Env* env) {
  if (alignment != 64 && alignment != 4096) return Status::InvalidArgument("alignment must be 64 or 4096");
  constexpr size_t kBlock = 8u << 20;
  std::vector<uint8_t> buf;
  // Pass 1: hashes not known yet (the header, which holds them, comes first).
  for (auto& s : sources) {
    if (s.hash) continue;
    TensorHasher h(key);
    for (uint64_t off = 0; off < s.bytes; off += kBlock) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, s.bytes - off));
      buf.resize(n);
      STRATA_RETURN_IF_ERROR(s.read(off, n, buf.data()).WithContext(fmt::format("tensor '{}'", s.name)));
      h.Update(buf);
    }
    s.hash = h.Final();
  }
  // Layout: offsets depend on the header's length, which depends on the offsets' digits; a
  // fixed point is reached in a few rounds (lengths only grow).
  uint64_t data_offset = AlignUp(kServingPrefixBytes, alignment);
  std::string header;
  for (int round = 0; round < 8; ++round) {
    json tensors = json::array();
    uint64_t off = data_offset;
    for (const auto& s : sources) {
      off = AlignUp(off, alignment);
      tensors.push_back({{"name", s.name}, {"dtype", DTypeName(s.dtype)}, {"shape", s.shape}, {"offset", off},
                         {"bytes", s.bytes}, {"hash", HashHex(*s.hash)}});
      off += s.bytes;
    }
    header = json{{"format", "strata.weights"},
                  {"hash", key.empty() ? "sha256" : "hmac-sha256"},
                  {"metadata", metadata},
                  {"tensors", tensors}}
                 .dump();
    uint64_t need = AlignUp(kServingPrefixBytes + header.size(), alignment);
    if (need == data_offset) break;
    data_offset = need;
  }
  std::string prefix(kServingMagic, 8);
  PutU32(&prefix, kServingVersion);
  PutU32(&prefix, alignment);
  PutU64(&prefix, header.size());
  PutU64(&prefix, data_offset);
  auto sum = crypto::Sha256({reinterpret_cast<const uint8_t*>(header.data()), header.size()});
  prefix.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  prefix += header;
  prefix.resize(data_offset, '\0');

  std::string tmp = path + ".tmp";
  STRATA_ASSIGN_OR_RETURN(auto f, env->NewWritableFile(tmp));
  auto fail = [&](Status s) {
    (void)f->Close();
    (void)env->DeleteFile(tmp);
    return s;
  };
  Status s = f->Append({reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size()});
  uint64_t pos = data_offset;
  for (auto& src : sources) {
    if (!s.ok()) break;
    uint64_t at = AlignUp(pos, alignment);
    if (at > pos) {
      std::vector<uint8_t> zeros(at - pos, 0);
      s = f->Append(zeros);
      pos = at;
    }
    // Pass 2: the bytes, checked against the hash of pass 1 (a source that changed between
    // the passes must not produce a file whose hashes lie).
    TensorHasher h(key);
    for (uint64_t off = 0; off < src.bytes && s.ok(); off += kBlock) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, src.bytes - off));
      buf.resize(n);
      s = src.read(off, n, buf.data());
      if (!s.ok()) s = s.WithContext(fmt::format("tensor '{}'", src.name));
      if (s.ok()) {
        h.Update(buf);
        s = f->Append(buf);
      }
    }
    if (s.ok() && h.Final() != *src.hash) s = Status::Corruption(fmt::format("tensor '{}' changed while it was written", src.name));
    pos += src.bytes;
  }
  if (s.ok()) s = f->Sync();
  if (s.ok()) s = f->Close();
  if (!s.ok()) return fail(s.WithContext(fmt::format("writing {}", path)));
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  std::string dir(path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/')));
  return env->SyncDir(dir.empty() ? "." : dir);
}

namespace {

class WeightsImpl : public Weights {
 public:
  WeightsImpl(std::unique_ptr<MappedFile> map, ServingHeader h, LoadOptions o)
      : map_(std::move(map)), h_(std::move(h)), o_(std::move(o)), checked_(h_.tensors.size()) {
    for (size_t i = 0; i < h_.tensors.size(); ++i) {
      names_.push_back(h_.tensors[i].name);
      index_.emplace(h_.tensors[i].name, i);
      checked_[i].store(o_.verify == VerifyMode::kNone);
    }
  }

  const std::vector<std::string>& names() const override { return names_; }
  const std::map<std::string, std::string>& metadata() const override { return h_.metadata; }

  Result<WeightView> Tensor(std::string_view name) override {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) return Status::NotFound(fmt::format("the weights have no tensor '{}'", name));
    STRATA_RETURN_IF_ERROR(Check(it->second));
    const ServingTensor& t = h_.tensors[it->second];
    return WeightView{t.name, t.dtype, t.shape, map_->data().subspan(t.offset, t.bytes)};
  }

  Status VerifyAll() override {
    std::vector<size_t> all(h_.tensors.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    return VerifyIndices(std::move(all));
  }

  Status Verify(const std::vector<std::string>& names) override {
    std::vector<size_t> some;
    for (const auto& n : names) {
      auto it = index_.find(n);
      if (it == index_.end()) return Status::NotFound(fmt::format("the weights have no tensor '{}'", n));
      some.push_back(it->second);
    }
    return VerifyIndices(std::move(some));
  }

  // Hashes the tensors of `todo` not yet checked on up to one thread per core (at most 8),
  // largest first, so that a full check runs at the speed of the disk rather than of one
  // core's SHA-256. The first mismatch in the file's order is the one reported.
  Status VerifyIndices(std::vector<size_t> todo) {
    std::erase_if(todo, [&](size_t i) { return checked_[i].load(std::memory_order_acquire); });
    std::sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return h_.tensors[a].bytes > h_.tensors[b].bytes; });
    const size_t threads = std::min<size_t>({todo.size(), std::max(1u, std::thread::hardware_concurrency()), 8});
    std::vector<Status> results(h_.tensors.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t k; (k = next.fetch_add(1)) < todo.size();) results[todo[k]] = Check(todo[k]);
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (const auto& r : results) STRATA_RETURN_IF_ERROR(r);
    return Status::OK();
  }

  Status Check(size_t i) {
    if (checked_[i].load(std::memory_order_acquire)) return Status::OK();
    const ServingTensor& t = h_.tensors[i];
    TensorHasher h(o_.hash_key);
    h.Update(map_->data().subspan(t.offset, t.bytes));
    if (h.Final() != t.hash) {
      return Status::Corruption(fmt::format("serving weights: tensor '{}' does not match its hash (damaged file{})",
                                            t.name, h_.keyed ? ", or the wrong key" : ""));
    }
    checked_[i].store(true, std::memory_order_release);
    return Status::OK();
  }

  const ServingHeader& header() const { return h_; }
  std::span<const uint8_t> bytes() const { return map_->data(); }

 private:
  std::unique_ptr<MappedFile> map_;
  ServingHeader h_;
  LoadOptions o_;
  std::vector<std::atomic<bool>> checked_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> index_;
};

Result<std::unique_ptr<WeightsImpl>> Load(const std::string& path, const LoadOptions& options, Env* env) {
  STRATA_ASSIGN_OR_RETURN(auto map, env->MapFile(path));
  auto h = ParseServingFile(map->data());
  if (!h.ok()) return h.status().WithContext(path);
  if (h->keyed && options.hash_key.empty() && options.verify != VerifyMode::kNone) {
    return Status::InvalidArgument(fmt::format("{} is hashed under a key: give the key to verify it", path));
  }
  auto w = std::make_unique<WeightsImpl>(std::move(map), std::move(*h), options);
  if (options.verify == VerifyMode::kFull) STRATA_RETURN_IF_ERROR(w->VerifyAll().WithContext(path));
  return w;
}

// A tensor's identity in the repository: dtype, shape and the chunk ids of its pieces (keyed
// hashes of their plaintext), so equal ids mean equal bytes without reading them.
Result<std::map<std::string, std::string>> ContentIds(Repository* repo, const ObjectId& ckpt_tree) {
  STRATA_ASSIGN_OR_RETURN(std::string text, checkpoint::ReadTreeFile(repo, ckpt_tree, checkpoint::kManifestFile));
  STRATA_ASSIGN_OR_RETURN(auto m, checkpoint::ParseManifest(text, true));
  STRATA_ASSIGN_OR_RETURN(store::Tree root, repo->objects()->ReadTree(ckpt_tree));
  std::map<std::string, std::map<std::string, const store::TreeEntry*>> dirs;
  std::map<std::string, store::Tree> trees;
  for (const auto& e : root.entries) {
    if (e.type == store::EntryType::kDirectory) {
      STRATA_ASSIGN_OR_RETURN(trees[e.name], repo->objects()->ReadTree(e.subtree));
    }
  }
  for (auto& [d, t] : trees) {
    for (const auto& e : t.entries) dirs[d][e.name] = &e;
  }
  std::map<std::string, std::string> out;
  for (const auto& t : m.tensors) {
    std::string id = fmt::format("{}|{}|", DTypeName(t.dtype), fmt::join(t.shape, ","));
    for (const auto& p : t.pieces) {
      size_t slash = p.file.find('/');
      const store::TreeEntry* e = nullptr;
      if (slash != std::string::npos) {
        auto d = dirs.find(p.file.substr(0, slash));
        if (d != dirs.end()) {
          auto f = d->second.find(p.file.substr(slash + 1));
          if (f != d->second.end()) e = f->second;
        }
      }
      if (!e) return Status::Corruption(fmt::format("checkpoint tree lacks {}", p.file));
      id += fmt::format("{}@{};", p.file, fmt::join(p.offsets, ","));
      for (const auto& c : e->chunks) id += c.id.ToHex();
    }
    auto h = crypto::Sha256({reinterpret_cast<const uint8_t*>(id.data()), id.size()});
    out[t.name] = HashHex(h);
  }
  return out;
}

std::vector<ServingSource> SourcesOf(CheckpointReader* reader) {
  std::vector<ServingSource> out;
  for (const auto& t : reader->info().tensors) {
    ServingSource s;
    s.name = t.name;
    s.dtype = t.dtype;
    s.shape = t.shape;
    s.bytes = t.bytes;
    uint64_t row = t.shape.empty() || t.shape[0] == 0 ? t.bytes : t.bytes / t.shape[0];
    s.read = [reader, name = t.name, shape = t.shape, row, total = t.bytes](uint64_t off, size_t n, uint8_t* dst) -> Status {
      if (shape.empty()) {
        if (off != 0 || n != total) return Status::Internal("a scalar is read whole");
        return reader->ReadTensor(name, {dst, n});
      }
      // Whole rows only: block boundaries are rounded inside the read.
      uint64_t first = off / row, last = (off + n + row - 1) / row;
      std::vector<uint8_t> tmp;
      if (off % row == 0 && n % row == 0) return reader->ReadRows(name, first, last, {dst, n});
      tmp.resize((last - first) * row);
      STRATA_RETURN_IF_ERROR(reader->ReadRows(name, first, last, tmp));
      std::memcpy(dst, tmp.data() + (off - first * row), n);
      return Status::OK();
    };
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace
}  // namespace registry

Status ExportServing(CheckpointReader* reader, const std::string& path, const ServingExportOptions& options, Env* env) {
  auto meta = options.metadata;
  meta.emplace("run", reader->info().run);
  meta.emplace("step", std::to_string(reader->info().step));
  return registry::WriteServingFile(path, registry::SourcesOf(reader), options.alignment, options.hash_key, meta, env);
}

Result<std::unique_ptr<Weights>> LoadWeights(const std::string& path, const LoadOptions& options, Env* env) {
  STRATA_ASSIGN_OR_RETURN(auto w, registry::Load(path, options, env));
  return std::unique_ptr<Weights>(std::move(w));
}

Result<PullReport> PullModel(ModelRegistry* reg, std::string_view spec, const std::string& dir, Env* env) {
  using nlohmann::json;
  using registry::ServingSource;
  STRATA_ASSIGN_OR_RETURN(ModelVersion v, reg->Get(spec));
  STRATA_ASSIGN_OR_RETURN(auto reader, reg->OpenWeights(v));
  // The registry's repository is the one the lake borrows; content ids come from its trees.
  STRATA_RETURN_IF_ERROR(env->CreateDirs(dir));
  const std::string file = dir + "/model.strata", info_path = dir + "/model.json";
  PullReport rep;
  rep.model = v.model;
  rep.version = v.version;

  // What an earlier pull left: its content ids and the file they describe.
  std::map<std::string, std::string> old_ids;
  std::unique_ptr<registry::WeightsImpl> old;
  if (env->FileExists(info_path) && env->FileExists(file)) {
    auto map = env->MapFile(info_path);
    if (map.ok()) {
      auto d = (*map)->data();
      json j = json::parse(d.begin(), d.end(), nullptr, false);
      if (j.is_object() && j.contains("content") && j["content"].is_object()) {
        for (auto it = j["content"].begin(); it != j["content"].end(); ++it) {
          if (it.value().is_string()) old_ids[it.key()] = it.value().get<std::string>();
        }
      }
    }
    auto w = registry::Load(file, LoadOptions{VerifyMode::kOnDemand, ""}, env);
    if (w.ok()) old = std::move(*w);
    else old_ids.clear();  // a damaged earlier copy is simply not reused
  }
  std::map<std::string, std::string> ids;
  auto content = registry::ContentIds(reg->repository(), v.checkpoint_tree);
  if (content.ok()) ids = std::move(*content);

  std::vector<ServingSource> sources = registry::SourcesOf(reader.get());
  for (auto& s : sources) {
    ++rep.tensors;
    rep.bytes += s.bytes;
    auto id = ids.find(s.name);
    auto was = old_ids.find(s.name);
    if (old && id != ids.end() && was != old_ids.end() && id->second == was->second) {
      auto view = old->Tensor(s.name);  // checked against the old file's hash
      if (view.ok() && view->bytes.size() == s.bytes) {
        std::span<const uint8_t> bytes = view->bytes;
        s.read = [bytes](uint64_t off, size_t n, uint8_t* dst) -> Status {
          std::memcpy(dst, bytes.data() + off, n);
          return Status::OK();
        };
        ++rep.tensors_reused;
        continue;
      }
    }
    rep.bytes_read += s.bytes;
  }
  std::map<std::string, std::string> meta = {{"model", v.model}, {"version", std::to_string(v.version)},
                                             {"run", v.run}, {"step", std::to_string(v.step)}};
  // The old content ids go before the file they describe is replaced: a crash from here until
  // the new model.json is in place leaves no ids, so the next pull reuses nothing.
  if (env->FileExists(info_path)) {
    STRATA_RETURN_IF_ERROR(env->DeleteFile(info_path));
    STRATA_RETURN_IF_ERROR(env->SyncDir(dir));
  }
  STRATA_RETURN_IF_ERROR(registry::WriteServingFile(file, std::move(sources), 4096, "", meta, env));
  old.reset();
  STRATA_RETURN_IF_ERROR(LoadWeights(file, LoadOptions{VerifyMode::kFull, ""}, env).status());
  json info = {{"model", v.model}, {"version", v.version}, {"commit", v.commit.ToHex()}, {"content", ids},
               {"signature", json::parse(SignatureJson(v.signature))}, {"metrics", v.metrics}};
  std::string text = info.dump(2) + "\n";
  std::string tmp = info_path + ".tmp";
  STRATA_ASSIGN_OR_RETURN(auto f, env->NewWritableFile(tmp));
  STRATA_RETURN_IF_ERROR(f->Append({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  STRATA_RETURN_IF_ERROR(f->Sync());
  STRATA_RETURN_IF_ERROR(f->Close());
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp, info_path));
  STRATA_RETURN_IF_ERROR(env->SyncDir(dir));
  return rep;
}

}  // namespace strata
