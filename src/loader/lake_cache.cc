// The lake cache (include/strata/lake_cache.h): a dataset version's files as shards in a local
// directory. Entries are flat directories (shards + lake-cache.json), named by what they hold.
#include "strata/lake_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/crc32c.h"
#include "base/progress.h"

namespace strata::loader {
namespace {

using json = nlohmann::json;

constexpr std::string_view kManifestName = "lake-cache.json";
constexpr std::string_view kFormat = "strata-lake-cache/1";

std::span<const uint8_t> Bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// DATASET-COMMIT16-HASH8: the hash covers PATH, the columns and whether records are sealed.
std::string EntryName(const Resolved& r, const LakeCacheOptions& o) {
  std::string what = r.spec.path + '\0' + (o.key ? "sealed" : "plain");
  for (const std::string& c : o.columns) what += '\0' + c;
  return fmt::format("{}-{}-{:08x}", r.spec.dataset, r.commit.id.ToHex().substr(0, 16), Crc32c(Bytes(what)));
}

// Removes a flat directory (files only) and the directory itself; what is already gone is fine.
Status RemoveFlatDir(Env* env, const std::string& dir) {
  auto gone = [](const Status& st) { return st.ok() || st.IsNotFound() ? Status::OK() : st; };
  auto names = env->ListDir(dir);
  if (!names.ok()) return gone(names.status());
  for (const std::string& n : *names) STRATA_RETURN_IF_ERROR(gone(env->DeleteFile(JoinPath(dir, n))));
  return gone(env->DeleteDir(dir));
}

// An exclusive flock held for the life of the object.
class FileLock {
 public:
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  Status Acquire(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::FromErrno(errno, "cannot open lock file " + path);
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) return Status::FromErrno(errno, "cannot lock " + path);
    }
    return Status::OK();
  }

 private:
  int fd_ = -1;
};

struct Manifest {
  json doc;
  uint64_t bytes = 0;  // of the shard files
};

// The entry's manifest when the entry is whole: the version, PATH and columns it was built for,
// and every shard listed there with its size. nullopt otherwise (rebuilt).
std::optional<Manifest> ReadEntry(Env* env, const std::string& dir, const Resolved& r, const LakeCacheOptions& o) {
  auto text = ReadFileToString(env, JoinPath(dir, kManifestName));
  if (!text.ok()) return std::nullopt;
  Manifest m;
  try {
    m.doc = json::parse(*text);
    if (m.doc.at("format") != kFormat || m.doc.at("commit") != r.commit.id.ToHex() || m.doc.at("path") != r.spec.path ||
        m.doc.at("columns") != json(o.columns) || m.doc.at("encrypted") != o.key.has_value()) {
      return std::nullopt;
    }
    for (const json& s : m.doc.at("shards")) {
      const std::string name = s.at("name");
      if (name.find('/') != std::string::npos || name.starts_with(".")) return std::nullopt;
      auto info = env->Stat(JoinPath(dir, name));
      if (!info.ok() || info->size != s.at("bytes").get<uint64_t>()) return std::nullopt;
      m.bytes += info->size;
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return m;
}

LakeCacheEntry EntryOf(const std::string& dir, const Resolved& r, const Manifest& m, const shard::Schema& schema) {
  LakeCacheEntry e;
  e.dir = dir;
  for (const json& s : m.doc.at("shards")) e.shards.push_back(JoinPath(dir, s.at("name").get<std::string>()));
  e.schema = schema;
  e.commit = r.commit.id;
  e.path = r.spec.path;
  e.records = m.doc.at("records");
  e.file_bytes = m.doc.at("file_bytes");
  return e;
}

// A column's field type from a value (bool is stored as int).
std::optional<shard::FieldType> TypeOf(const MetaValue& v) {
  if (std::holds_alternative<int64_t>(v) || std::holds_alternative<bool>(v)) return shard::FieldType::kInt;
  if (std::holds_alternative<double>(v)) return shard::FieldType::kFloat;
  if (std::holds_alternative<std::string>(v)) return shard::FieldType::kString;
  return std::nullopt;
}

shard::Value ValueOf(const MetaValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* b = std::get_if<bool>(&v)) return int64_t{*b};
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::get<std::string>(v);
}

// The files of the version (records with content, outside .strata/ and .quarantine/) and the
// schema that carries them with the columns.
Status PlanRecords(Lake* lake, const Resolved& r, const LakeCacheOptions& o, std::vector<RecordMeta>* files,
                   shard::Schema* schema) {
  const std::string exact = fmt::format("{}@{}{}{}", r.spec.dataset, r.commit.id.ToHex(), r.spec.path.empty() ? "" : ":",
                                        r.spec.path);
  STRATA_ASSIGN_OR_RETURN(auto rows, lake->Records(exact));
  for (RecordMeta& row : rows) {
    if (!row.contains("content")) continue;  // a metadata row, or a symlink
    const std::string& path = std::get<std::string>(row.at("path"));
    if (path.starts_with(kQuarantineDir)) continue;
    files->push_back(std::move(row));
  }
  schema->fields = {shard::Field{.name = "path", .type = shard::FieldType::kString},
                    shard::Field{.name = "data", .type = shard::FieldType::kBytes}};
  for (const std::string& c : o.columns) {
    if (c == "path" || c == "data") return Status::InvalidArgument(fmt::format("lake cache: column '{}' is always there", c));
    std::optional<shard::FieldType> type;
    for (const RecordMeta& f : *files) {
      auto it = f.find(c);
      if (it == f.end() || !TypeOf(it->second)) {
        return Status::InvalidArgument(fmt::format("lake cache: {} has no value for column '{}'",
                                                   std::get<std::string>(f.at("path")), c));
      }
      if (type && *type != *TypeOf(it->second)) {
        return Status::InvalidArgument(fmt::format("lake cache: column '{}' of {} holds another type than in the files before it",
                                                   c, std::get<std::string>(f.at("path"))));
      }
      type = TypeOf(it->second);
    }
    schema->fields.push_back(shard::Field{.name = c, .type = type.value_or(shard::FieldType::kInt)});
  }
  return Status::OK();
}

// Reads every file into shards in `tmp`; returns the manifest to write beside them.
Result<json> Build(Lake* lake, const Resolved& r, const LakeCacheOptions& o, const std::vector<RecordMeta>& files,
                   const shard::Schema& schema, const std::string& tmp) {
  shard::ShardSetOptions so;
  so.dir = tmp;
  so.schema = schema;
  so.target_size = o.shard_size;
  so.writer.env = o.env;
  so.writer.key = o.key;
  STRATA_ASSIGN_OR_RETURN(auto writer, shard::ShardSetWriter::Create(so));
  uint64_t total = 0;
  for (const RecordMeta& f : files) total += static_cast<uint64_t>(std::get<int64_t>(f.at("size")));
  Progress progress("caching " + r.spec.ToString(), total, o.progress);
  shard::Record record(schema.fields.size());
  std::string data;
  for (const RecordMeta& f : files) {
    const std::string& path = std::get<std::string>(f.at("path"));
    STRATA_ASSIGN_OR_RETURN(auto reader, lake->OpenFile(r, path));
    data.resize(reader->size());
    size_t done = 0;
    while (done < data.size()) {
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(reader->ReadAt(done, data.size() - done, reinterpret_cast<uint8_t*>(data.data()) + done, &got));
      if (got == 0) return Status::Corruption(fmt::format("lake cache: {} ended after {} of {} bytes", path, done, data.size()));
      done += got;
    }
    record[0] = path;
    record[1] = shard::Bytes{std::move(data)};
    for (size_t c = 0; c < o.columns.size(); ++c) record[2 + c] = ValueOf(f.at(o.columns[c]));
    STRATA_RETURN_IF_ERROR(writer->Add(record));
    data = std::move(std::get<shard::Bytes>(record[1]).data);
    progress.Add(data.size(), 1);
  }
  STRATA_ASSIGN_OR_RETURN(auto shards, writer->Finish());
  json list = json::array();
  for (const shard::ShardInfo& s : shards) list.push_back({{"name", std::string(Basename(s.path))}, {"bytes", s.bytes}, {"records", s.record_count}});
  return json{{"format", kFormat},          {"source", r.spec.ToString()},   {"dataset", r.spec.dataset},
              {"commit", r.commit.id.ToHex()}, {"path", r.spec.path},       {"columns", o.columns},
              {"encrypted", o.key.has_value()}, {"records", files.size()},  {"file_bytes", total},
              {"built_unix", o.env->NowMicros() / 1000000},                  {"shards", std::move(list)}};
}

// Removes least recently used entries other than `keep` until the cache holds at most max_bytes.
Result<uint64_t> Evict(Env* env, const std::string& cache, const std::string& keep, uint64_t max_bytes) {
  struct Held {
    int64_t used_ns;
    uint64_t bytes;
    std::string name;
  };
  FileLock lock;  // one eviction at a time
  STRATA_RETURN_IF_ERROR(lock.Acquire(JoinPath(cache, ".evict.lock")));
  std::vector<Held> held;
  uint64_t total = 0;
  STRATA_ASSIGN_OR_RETURN(auto names, env->ListDir(cache));
  for (const std::string& n : names) {
    if (n.find(".evicted-") != std::string::npos) STRATA_RETURN_IF_ERROR(RemoveFlatDir(env, JoinPath(cache, n)));
    if (n.starts_with(".")) continue;
    auto manifest = env->Stat(JoinPath(JoinPath(cache, n), kManifestName));
    if (!manifest.ok()) continue;  // not an entry
    auto files = env->ListDirInfo(JoinPath(cache, n));
    if (!files.ok()) continue;
    uint64_t bytes = 0;
    for (const auto& [f, info] : *files) bytes += info.size;
    total += bytes;
    if (n != keep) held.push_back({manifest->mtime_ns, bytes, n});
  }
  std::sort(held.begin(), held.end(), [](const Held& a, const Held& b) { return a.used_ns < b.used_ns; });
  uint64_t evicted = 0;
  for (const Held& h : held) {
    if (total <= max_bytes) break;
    // Renamed first, so no reader finds a half-removed entry under its name.
    const std::string gone = JoinPath(cache, fmt::format(".{}.evicted-{}", h.name, ::getpid()));
    STRATA_RETURN_IF_ERROR(env->RenameFile(JoinPath(cache, h.name), gone));
    STRATA_RETURN_IF_ERROR(RemoveFlatDir(env, gone));
    total -= h.bytes;
    ++evicted;
  }
  return evicted;
}

}  // namespace

Result<LakeCacheEntry> CacheLakeVersion(Lake* lake, std::string_view spec, const LakeCacheOptions& o) {
  if (o.dir.empty()) return Status::InvalidArgument("lake cache: no cache directory given");
  Env* env = o.env;
  STRATA_ASSIGN_OR_RETURN(Resolved r, lake->Resolve(spec));
  STRATA_RETURN_IF_ERROR(env->CreateDirs(o.dir));
  const std::string name = EntryName(r, o);
  const std::string dir = JoinPath(o.dir, name);
  FileLock lock;
  STRATA_RETURN_IF_ERROR(lock.Acquire(JoinPath(o.dir, "." + name + ".lock")));

  LakeCacheEntry entry;
  std::unique_ptr<shard::ShardReader> first;
  std::optional<Manifest> found = ReadEntry(env, dir, r, o);
  if (found) {
    // The columns' types are in the shards' schema; an entry sealed with another key fails here
    // and is rebuilt with this one.
    auto opened = shard::ShardReader::Open(JoinPath(dir, found->doc.at("shards").at(0).at("name").get<std::string>()),
                                           shard::ReaderOptions{.key = o.key, .direct_io = false});
    if (opened.ok()) first = std::move(*opened);
  }
  if (first) {
    entry = EntryOf(dir, r, *found, first->schema());
    (void)env->SetMtime(JoinPath(dir, kManifestName), env->NowMicros() * 1000);  // recently used
  } else {
    std::vector<RecordMeta> files;
    shard::Schema schema;
    STRATA_RETURN_IF_ERROR(PlanRecords(lake, r, o, &files, &schema));
    if (files.empty()) return Status::NotFound(fmt::format("lake cache: {} holds no files", r.spec.ToString()));
    // What a crashed build or eviction left, and a stale or damaged entry of this name.
    STRATA_ASSIGN_OR_RETURN(auto names, env->ListDir(o.dir));
    for (const std::string& n : names) {
      if (n == name || n.starts_with("." + name + ".tmp-")) {
        STRATA_RETURN_IF_ERROR(RemoveFlatDir(env, JoinPath(o.dir, n)));
      }
    }
    const std::string tmp = JoinPath(o.dir, fmt::format(".{}.tmp-{}", name, ::getpid()));
    auto manifest = Build(lake, r, o, files, schema, tmp);
    if (manifest.ok()) {
      Status st = WriteFileAtomic(env, JoinPath(tmp, kManifestName), manifest->dump(1) + "\n");
      if (st.ok()) st = env->RenameFile(tmp, dir);
      if (st.ok()) st = env->SyncDir(o.dir);
      if (!st.ok()) manifest = st;
    }
    if (!manifest.ok()) {
      if (env->FileExists(tmp)) (void)RemoveFlatDir(env, tmp);
      return manifest.status();
    }
    entry = EntryOf(dir, r, Manifest{*manifest, 0}, schema);
    entry.built = true;
  }
  if (o.max_bytes > 0) {
    STRATA_ASSIGN_OR_RETURN(entry.evicted, Evict(env, o.dir, name, o.max_bytes));
  }
  return entry;
}

}  // namespace strata::loader
