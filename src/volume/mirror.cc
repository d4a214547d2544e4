// Metadata mirrors: the repository directory's small files (config, key slots, index files,
// roots, records, placement records) kept on every volume too, so that the disk of the
// repository directory is not a single point of failure (docs/DURABILITY.md, "Metadata").
#include <algorithm>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "volume/redundant_backend.h"

namespace strata::volume {

namespace {

bool IsTemporary(std::string_view name) { return name.starts_with(".tmp-"); }

// The files of `dir` (not temporaries); none when it does not exist.
Result<std::vector<std::string>> FilesIn(Env* env, const std::string& dir) {
  if (!env->FileExists(dir)) return std::vector<std::string>();
  STRATA_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  names.erase(std::remove_if(names.begin(), names.end(), [](const std::string& n) { return IsTemporary(n); }),
              names.end());
  std::sort(names.begin(), names.end());
  return names;
}

// Creates `dir` and the directories above it up to `top` (which exists), each durable.
Status MakeDirs(Env* env, const std::string& top, const std::string& dir) {
  if (dir == top || env->FileExists(dir)) return Status::OK();
  std::string parent(Dirname(dir));
  STRATA_RETURN_IF_ERROR(MakeDirs(env, top, parent));
  STRATA_RETURN_IF_ERROR(env->CreateDir(dir));
  return env->SyncDir(parent);
}

}  // namespace

// Appends go to the repository directory's writer and into a buffer; at Commit the object is
// made durable there first, then copied to every volume's mirror.
class RedundantBackend::MirroringWriter : public ObjectWriter {
 public:
  MirroringWriter(RedundantBackend* backend, std::unique_ptr<ObjectWriter> primary, std::string relpath)
      : backend_(backend), primary_(std::move(primary)), relpath_(std::move(relpath)) {}
  Status Append(std::span<const uint8_t> data) override {
    bytes_.append(reinterpret_cast<const char*>(data.data()), data.size());
    return primary_->Append(data);
  }
  Status Commit(Durability durability) override {
    STRATA_RETURN_IF_ERROR(primary_->Commit(durability));
    backend_->Mirror(relpath_, std::make_shared<const std::string>(std::move(bytes_)));
    return Status::OK();
  }
  uint64_t size() const override { return primary_->size(); }

 private:
  RedundantBackend* backend_;
  std::unique_ptr<ObjectWriter> primary_;
  std::string relpath_;
  std::string bytes_;
};

Result<std::unique_ptr<ObjectWriter>> RedundantBackend::CreateMirrored(ObjectType type, const std::string& name) {
  STRATA_ASSIGN_OR_RETURN(auto writer, primary_->Create(type, name));
  if (!Mirrored(type) || layout().volumes.empty()) return writer;
  return std::unique_ptr<ObjectWriter>(new MirroringWriter(this, std::move(writer), ObjectPath(type, name)));
}

void RedundantBackend::OnEveryMirror(const std::function<Status(const VolumeConfig&)>& op) {
  VolumeLayout layout = this->layout();
  std::set<std::string> failed = FailedWrites();
  std::vector<const VolumeConfig*> targets;
  for (const auto& v : layout.volumes) {
    if (!failed.count(v.id)) targets.push_back(&v);
  }
  if (targets.empty()) return;
  // Side by side: the volumes are separate disks, each write waits for its own syncs.
  std::vector<Status> results(targets.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < targets.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = op(*targets[i]); });
  }
  results[0] = op(*targets[0]);
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!results[i].ok()) NoteWriteError(targets[i]->id, results[i]);
  }
}

void RedundantBackend::Mirror(const std::string& relpath, std::shared_ptr<const std::string> content) {
  OnEveryMirror([&](const VolumeConfig& v) { return MirrorOn(v, relpath, content); });
}

void RedundantBackend::MirrorRemoveAll(std::vector<std::string> relpaths) {
  if (relpaths.empty()) return;
  OnEveryMirror([&](const VolumeConfig& v) { return RemoveOn(v, relpaths); });
}

Status RedundantBackend::RemoveOn(const VolumeConfig& v, std::vector<std::string> relpaths) {
  // One sync per directory, not per file (compactions remove dozens of records at once).
  const std::string top = JoinPath(v.path, kMirrorDir);
  Status s = RunVolumeWrite(v, [top, relpaths = std::move(relpaths)](Env* env) -> Status {
    std::set<std::string> dirs;
    for (const auto& rel : relpaths) {
      std::string path = JoinPath(top, rel);
      Status removed = env->DeleteFile(path);
      if (removed.ok()) dirs.insert(std::string(Dirname(path)));
      else if (!removed.IsNotFound()) return removed;
    }
    for (const auto& dir : dirs) STRATA_RETURN_IF_ERROR(env->SyncDir(dir));
    return Status::OK();
  });
  return s.ok() ? s : s.WithContext(fmt::format("metadata mirror on volume {}", v.id));
}

Status RedundantBackend::MirrorOn(const VolumeConfig& v, const std::string& relpath,
                                  std::shared_ptr<const std::string> content) {
  Status s = RunVolumeWrite(v, [volume = v.path, path = JoinPath(JoinPath(v.path, kMirrorDir), relpath),
                                content = std::move(content)](Env* env) -> Status {
    STRATA_RETURN_IF_ERROR(MakeDirs(env, volume, std::string(Dirname(path))));
    return WriteFileAtomic(env, path, *content);
  });
  if (!s.ok()) return s.WithContext(fmt::format("metadata mirror of {} on volume {}", relpath, v.id));
  return Status::OK();
}

Result<std::vector<std::string>> MetadataFiles(Env* env, const std::string& top) {
  std::vector<std::string> files;
  if (env->FileExists(JoinPath(top, "config"))) files.push_back("config");
  for (const char* dir : kMirroredDirs) {
    STRATA_ASSIGN_OR_RETURN(auto names, FilesIn(env, JoinPath(top, dir)));
    for (auto& n : names) files.push_back(JoinPath(dir, n));
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<uint64_t> RedundantBackend::SyncMirrors() {
  VolumeLayout layout = this->layout();
  const std::string repo = primary_->url();
  // What the repository directory holds, by path relative to it.
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> want, MetadataFiles(env_, repo));
  // Rewritten in place (a new passphrase, a pack moved): compared by content. The others are
  // immutable once written, so their names say enough.
  auto rewritable = [](const std::string& rel) {
    return rel == "config" || rel.starts_with("keys/") || rel.starts_with("placement/");
  };
  uint64_t changed = 0;
  std::vector<std::string> errors;
  for (const auto& v : layout.volumes) {
    if (!VolumeOnline(v)) continue;
    const std::string top = JoinPath(v.path, kMirrorDir);
    // Temporaries of writes a kill interrupted (the caller holds the exclusive lock: no write
    // is in progress).
    std::vector<std::string> dirs = {top};
    for (const char* d : kMirroredDirs) dirs.push_back(JoinPath(top, d));
    for (const auto& dir : dirs) {
      auto names = env_->ListDir(dir);
      if (!names.ok()) continue;
      for (const auto& n : *names) {
        if (IsTemporary(n)) (void)env_->DeleteFile(JoinPath(dir, n));
      }
    }
    STRATA_ASSIGN_OR_RETURN(auto listed, MetadataFiles(env_, top));
    std::set<std::string> have(listed.begin(), listed.end());
    Status failed;
    for (const auto& rel : want) {
      bool present = have.erase(rel) > 0;
      if (present && !rewritable(rel)) continue;
      auto bytes = ReadFileToString(env_, JoinPath(repo, rel));
      if (!bytes.ok()) {
        if (bytes.status().IsNotFound()) continue;  // deleted since it was listed
        return bytes.status();
      }
      if (present) {
        auto theirs = ReadFileToString(env_, JoinPath(top, rel));
        if (theirs.ok() && *theirs == *bytes) continue;
      }
      failed = MirrorOn(v, rel, std::make_shared<const std::string>(std::move(*bytes)));
      if (!failed.ok()) break;
      ++changed;
    }
    if (failed.ok() && !have.empty()) {  // gone from the repository directory
      failed = RemoveOn(v, std::vector<std::string>(have.begin(), have.end()));
      if (failed.ok()) changed += have.size();
    }
    if (!failed.ok()) {
      NoteWriteError(v.id, failed);
      errors.push_back(failed.ToString());
    }
  }
  if (!errors.empty()) return Status::IOError(fmt::format("{}", fmt::join(errors, "; ")));
  return changed;
}

Result<RecoveryReport> RecoverFromVolume(Env* env, const std::string& volume_dir, const std::string& repo_dir) {
  const std::string top = JoinPath(volume_dir, kMirrorDir);
  if (!env->FileExists(JoinPath(volume_dir, kVolumeMarker))) {
    return Status::NotFound(fmt::format("'{}' is not a strata volume (no {} file)", volume_dir, kVolumeMarker));
  }
  if (!env->FileExists(JoinPath(top, "config"))) {
    return Status::NotFound(fmt::format(
        "volume '{}' holds no copy of the repository's metadata ({}/config); run `strata repair` on the "
        "repository while it is there to make one",
        volume_dir, kMirrorDir));
  }
  STRATA_ASSIGN_OR_RETURN(auto source, MetadataFiles(env, top));
  RecoveryReport report;
  // The other volumes' copies, by the directories the copied config lists (a copy is compared
  // by its names: a file another copy has and this one lacks was written while this volume
  // missed it, or deleted later, when this copy is the newer).
  STRATA_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(env, JoinPath(top, "config")));
  auto config = nlohmann::json::parse(config_text, nullptr, false);
  if (config.is_object() && config.contains("volumes") && config["volumes"].is_array()) {
    const std::set<std::string> mine(source.begin(), source.end());
    for (const auto& v : config["volumes"]) {
      std::string dir = v.is_object() ? v.value("path", "") : "";
      if (dir.empty() || dir == volume_dir || !env->FileExists(JoinPath(JoinPath(dir, kMirrorDir), "config"))) continue;
      auto theirs = MetadataFiles(env, JoinPath(dir, kMirrorDir));
      if (!theirs.ok()) continue;
      size_t extra = std::count_if(theirs->begin(), theirs->end(), [&](const std::string& f) { return !mine.count(f); });
      if (extra > 0) report.fuller[dir] = extra;
    }
  }
  STRATA_RETURN_IF_ERROR(CreateLocalBackend(env, repo_dir).status());
  size_t& copied = report.files;
  auto copy = [&](const std::string& rel) -> Status {
    STRATA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(env, JoinPath(top, rel)));
    STRATA_RETURN_IF_ERROR(WriteFileAtomic(env, JoinPath(repo_dir, rel), bytes));
    ++copied;
    return Status::OK();
  };
  for (const auto& rel : source) {
    if (rel == "config") continue;
    STRATA_RETURN_IF_ERROR(MakeDirs(env, repo_dir, JoinPath(repo_dir, std::string(Dirname(rel)))));
    STRATA_RETURN_IF_ERROR(copy(rel));
  }
  // Last: a directory with a config looks like a repository.
  STRATA_RETURN_IF_ERROR(copy("config"));
  return report;
}

}  // namespace strata::volume
