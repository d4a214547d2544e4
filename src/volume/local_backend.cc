// A repository in a local directory:
//   config            keys/<id>          packs/<2 hex>/<name>
//   index/<name>      roots/<name>       locks/<name>        records/<name>
//   tmp/  (writes in progress)
#include <unistd.h>

#include <atomic>
#include <list>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "volume/backend.h"

namespace strata::volume {

std::string_view ObjectTypeName(ObjectType type) {
  switch (type) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKeySlot: return "key slot";
    case ObjectType::kPack: return "pack";
    case ObjectType::kIndex: return "index";
    case ObjectType::kRoot: return "root";
    case ObjectType::kLock: return "lock";
    case ObjectType::kRecord: return "record";
  }
  return "object";
}

Status Backend::Put(ObjectType type, const std::string& name, std::span<const uint8_t> data,
                    Durability durability) {
  STRATA_ASSIGN_OR_RETURN(auto writer, Create(type, name));
  STRATA_RETURN_IF_ERROR(writer->Append(data));
  return writer->Commit(durability);
}

std::string ObjectPath(ObjectType type, const std::string& name) {
  switch (type) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKeySlot: return "keys/" + name;
    case ObjectType::kPack: return fmt::format("packs/{}/{}", name.substr(0, 2), name);
    case ObjectType::kIndex: return "index/" + name;
    case ObjectType::kRoot: return "roots/" + name;
    case ObjectType::kLock: return "locks/" + name;
    case ObjectType::kRecord: return "records/" + name;
  }
  return "";
}

Status Backend::DeleteAll(ObjectType type, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    Status s = Delete(type, name);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  return Status::OK();
}

Status Backend::Put(ObjectType type, const std::string& name, std::string_view data, Durability durability) {
  return Put(type, name, std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()), durability);
}

namespace {

constexpr const char* kDirs[] = {"keys", "packs", "index", "roots", "locks", "records", "tmp"};

// Object names come from our own code, but a hostile name must never escape the directory.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

class LocalBackend;

class LocalWriter : public ObjectWriter {
 public:
  LocalWriter(LocalBackend* backend, std::string tmp, std::string final_path,
              std::unique_ptr<WritableFile> file)
      : backend_(backend), tmp_(std::move(tmp)), final_(std::move(final_path)), file_(std::move(file)) {}
  ~LocalWriter() override;
  Status Append(std::span<const uint8_t> data) override {
    size_ += data.size();
    return file_->Append(data);
  }
  Status Commit(Durability durability) override;
  uint64_t size() const override { return size_; }

 private:
  LocalBackend* backend_;
  std::string tmp_, final_;
  std::unique_ptr<WritableFile> file_;
  uint64_t size_ = 0;
  bool committed_ = false;
};

class LocalBackend : public Backend {
 public:
  LocalBackend(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}

  std::string url() const override { return dir_; }
  Env* env() const { return env_; }
  const std::string& dir() const { return dir_; }

  Result<std::string> PathOf(ObjectType type, const std::string& name) {
    if (type != ObjectType::kConfig && !ValidName(name)) {
      return Status::InvalidArgument(fmt::format("invalid {} name '{}'", ObjectTypeName(type), name));
    }
    return JoinPath(dir_, ObjectPath(type, name));
  }

  std::string TempPath(const std::string& name) {
    static std::atomic<uint64_t> counter{0};
    return JoinPath(dir_, fmt::format("tmp/{}-{}-{}", name, getpid(), counter.fetch_add(1)));
  }

  // Pack directories are created on first use; the new entry in packs/ is made durable once.
  Status EnsureParent(const std::string& path) {
    std::string parent(Dirname(path));
    {
      std::lock_guard<std::mutex> l(mu_);
      if (known_dirs_.count(parent)) return Status::OK();
    }
    if (!env_->FileExists(parent)) {
      STRATA_RETURN_IF_ERROR(env_->CreateDir(parent));
      STRATA_RETURN_IF_ERROR(env_->SyncDir(std::string(Dirname(parent))));
    }
    std::lock_guard<std::mutex> l(mu_);
    known_dirs_.insert({parent, true});
    return Status::OK();
  }

  Result<std::unique_ptr<ObjectWriter>> Create(ObjectType type, const std::string& name) override {
    STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
    STRATA_RETURN_IF_ERROR(EnsureParent(path));
    std::string tmp = TempPath(type == ObjectType::kConfig ? "config" : name);
    // Packs are large and written once, start to end: they bypass the page cache.
    STRATA_ASSIGN_OR_RETURN(auto file, type == ObjectType::kPack ? env_->NewStreamingFile(tmp) : env_->NewExclusiveFile(tmp));
    return std::unique_ptr<ObjectWriter>(new LocalWriter(this, tmp, path, std::move(file)));
  }

  Result<std::shared_ptr<RandomAccessFile>> OpenForRead(const std::string& path) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = open_files_.find(path);
      if (it != open_files_.end()) return it->second;
    }
    STRATA_ASSIGN_OR_RETURN(auto file, env_->NewRandomAccessFile(path));
    std::shared_ptr<RandomAccessFile> shared(std::move(file));
    std::lock_guard<std::mutex> l(mu_);
    if (open_files_.size() >= kMaxOpenFiles) {
      open_files_.erase(open_order_.front());
      open_order_.pop_front();
    }
    if (open_files_.emplace(path, shared).second) open_order_.push_back(path);
    return shared;
  }

  void ForgetOpen(const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    if (open_files_.erase(path)) open_order_.remove(path);
  }

  Status ReadAt(ObjectType type, const std::string& name, uint64_t offset, size_t n,
                uint8_t* dst) override {
    STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
    STRATA_ASSIGN_OR_RETURN(auto file, OpenForRead(path));
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(file->Read(offset, n, dst, &got));
    if (got != n) {
      return Status::Corruption(fmt::format("{} {} is truncated: wanted {} bytes at offset {}, found {}",
                                            ObjectTypeName(type), name, n, offset, got));
    }
    return Status::OK();
  }

  Result<std::string> Get(ObjectType type, const std::string& name) override {
    STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
    return ReadFileToString(env_, path);
  }

  Result<ObjectInfo> Stat(ObjectType type, const std::string& name) override {
    STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
    STRATA_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(path));
    return ObjectInfo{info.size, info.mtime_ns};
  }

  Result<std::vector<std::string>> List(ObjectType type) override {
    std::vector<std::string> names;
    if (type == ObjectType::kConfig) {
      if (env_->FileExists(JoinPath(dir_, "config"))) names.push_back("config");
      return names;
    }
    std::string sub = type == ObjectType::kKeySlot ? "keys"
                      : type == ObjectType::kPack  ? "packs"
                      : type == ObjectType::kIndex ? "index"
                      : type == ObjectType::kRoot  ? "roots"
                      : type == ObjectType::kRecord ? "records"
                                                   : "locks";
    std::string base = JoinPath(dir_, sub);
    STRATA_ASSIGN_OR_RETURN(auto entries, env_->ListDir(base));
    if (type != ObjectType::kPack) {
      for (auto& e : entries) {
        if (ValidName(e)) names.push_back(std::move(e));
      }
      return names;
    }
    for (const auto& d : entries) {
      auto files = env_->ListDir(JoinPath(base, d));
      if (!files.ok()) continue;  // a stray file in packs/
      for (auto& f : *files) {
        if (ValidName(f) && f.compare(0, 2, d) == 0) names.push_back(std::move(f));
      }
    }
    return names;
  }

  Status Delete(ObjectType type, const std::string& name) override {
    STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
    ForgetOpen(path);
    STRATA_RETURN_IF_ERROR(env_->DeleteFile(path));
    return env_->SyncDir(std::string(Dirname(path)));
  }

  Status DeleteAll(ObjectType type, const std::vector<std::string>& names) override {
    std::set<std::string> dirs;
    for (const auto& name : names) {
      STRATA_ASSIGN_OR_RETURN(std::string path, PathOf(type, name));
      ForgetOpen(path);
      Status s = env_->DeleteFile(path);
      if (s.IsNotFound()) continue;
      STRATA_RETURN_IF_ERROR(s);
      dirs.emplace(Dirname(path));
    }
    for (const auto& dir : dirs) STRATA_RETURN_IF_ERROR(env_->SyncDir(dir));
    return Status::OK();
  }

  Result<size_t> CleanTemporaries(int64_t min_age_seconds) override {
    std::string tmp = JoinPath(dir_, "tmp");
    STRATA_ASSIGN_OR_RETURN(auto entries, env_->ListDir(tmp));
    int64_t now_ns = env_->NowMicros() * 1000;
    size_t removed = 0;
    for (const auto& e : entries) {
      auto info = env_->Stat(JoinPath(tmp, e));
      if (!info.ok()) continue;
      if (now_ns - info->mtime_ns < min_age_seconds * 1'000'000'000LL) continue;
      if (env_->DeleteFile(JoinPath(tmp, e)).ok()) ++removed;
    }
    if (removed) STRATA_RETURN_IF_ERROR(env_->SyncDir(tmp));
    return removed;
  }

 private:
  static constexpr size_t kMaxOpenFiles = 64;
  Env* env_;
  std::string dir_;
  std::mutex mu_;
  std::unordered_map<std::string, bool> known_dirs_;
  std::unordered_map<std::string, std::shared_ptr<RandomAccessFile>> open_files_;
  std::list<std::string> open_order_;
};

LocalWriter::~LocalWriter() {
  if (!committed_) {
    (void)file_->Close();
    (void)backend_->env()->DeleteFile(tmp_);
  }
}

// The content is synced before the rename in both modes, so a name never points at a torn
// object; only the directory sync that makes the name itself durable is optional.
Status LocalWriter::Commit(Durability durability) {
  Env* env = backend_->env();
  STRATA_RETURN_IF_ERROR(file_->Sync());
  STRATA_RETURN_IF_ERROR(file_->Close());
  STRATA_RETURN_IF_ERROR(env->RenameFile(tmp_, final_));
  committed_ = true;
  backend_->ForgetOpen(final_);
  if (durability == Durability::kNameMayBeLost) return Status::OK();
  return env->SyncDir(std::string(Dirname(final_)));
}

}  // namespace

Result<std::unique_ptr<Backend>> CreateLocalBackend(Env* env, const std::string& dir) {
  if (env->FileExists(dir)) {
    STRATA_ASSIGN_OR_RETURN(auto entries, env->ListDir(dir));
    if (!entries.empty()) {
      return Status::AlreadyExists(fmt::format("'{}' exists and is not empty; a new repository needs an empty or new directory", dir));
    }
  } else {
    STRATA_RETURN_IF_ERROR(env->CreateDirs(dir));
    STRATA_RETURN_IF_ERROR(env->SyncDir(std::string(Dirname(dir))));
  }
  for (const char* sub : kDirs) STRATA_RETURN_IF_ERROR(env->CreateDir(JoinPath(dir, sub)));
  STRATA_RETURN_IF_ERROR(env->SyncDir(dir));
  return std::unique_ptr<Backend>(new LocalBackend(env, dir));
}

Result<std::unique_ptr<Backend>> OpenLocalBackend(Env* env, const std::string& dir) {
  auto info = env->Stat(dir);
  if (!info.ok() || info->type != FileType::kDirectory) {
    return Status::NotFound(fmt::format("no repository at '{}': the directory does not exist", dir));
  }
  if (!env->FileExists(JoinPath(dir, "config"))) {
    return Status::NotFound(fmt::format("'{}' is not a strata repository (no config file)", dir));
  }
  for (const char* sub : kDirs) {
    if (!env->FileExists(JoinPath(dir, sub))) {
      // Re-create missing empty directories (e.g. tmp/ removed by hand); data dirs like packs/
      // missing is reported by verify as missing packs, not here.
      STRATA_RETURN_IF_ERROR(env->CreateDir(JoinPath(dir, sub)));
    }
  }
  return std::unique_ptr<Backend>(new LocalBackend(env, dir));
}

}  // namespace strata::volume
