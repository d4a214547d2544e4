// Helpers built on any Env: whole-file reads, crash-safe whole-file writes, path arithmetic.
#include <atomic>
#include <random>
#include <string>

#include <fmt/format.h>

#include "strata/env.h"

#include "base/temp_name.h"

namespace strata {

Result<std::string> ReadFileToString(Env* env, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> file, env->NewSequentialFile(path));
  std::string out;
  constexpr size_t kBlock = 64 * 1024;
  for (;;) {
    size_t old = out.size();
    out.resize(old + kBlock);
    size_t got = 0;
    Status s = file->Read(kBlock, reinterpret_cast<uint8_t*>(out.data() + old), &got);
    if (!s.ok()) return s;
    out.resize(old + got);
    if (got == 0) break;
  }
  return out;
}

namespace {
class BufferMappedFile final : public MappedFile {
 public:
  explicit BufferMappedFile(std::string bytes) : bytes_(std::move(bytes)) {}
  std::span<const uint8_t> data() const override {
    return {reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()};
  }

 private:
  std::string bytes_;
};
}  // namespace

Result<std::unique_ptr<MappedFile>> Env::MapFile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, NewRandomAccessFile(path));
  STRATA_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  std::string bytes(size, '\0');
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(file->Read(0, bytes.size(), reinterpret_cast<uint8_t*>(bytes.data()), &got));
  bytes.resize(got);
  return std::unique_ptr<MappedFile>(new BufferMappedFile(std::move(bytes)));
}

std::string TempNameFor(std::string_view path) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t r = rng() ^ counter.fetch_add(1, std::memory_order_relaxed);
  return JoinPath(Dirname(path), fmt::format(".tmp-{:016x}-{}", r, Basename(path)));
}

namespace {

// The portable PendingFile: a temporary name beside the path, renamed into place.
class RenamedPendingFile final : public PendingFile {
 public:
  RenamedPendingFile(Env* env, std::string path, std::string tmp, std::unique_ptr<WritableFile> file)
      : env_(env), path_(std::move(path)), tmp_(std::move(tmp)), file_(std::move(file)) {}
  ~RenamedPendingFile() override {
    if (file_ != nullptr) {
      (void)file_->Close();
      (void)env_->DeleteFile(tmp_);
    }
  }

  Status Append(std::span<const uint8_t> data) override {
    if (file_ == nullptr) return Status::FailedPrecondition(fmt::format("{} is already published", path_));
    return file_->Append(data);
  }

  Status Publish(uint32_t mode, int64_t mtime_ns) override {
    if (file_ == nullptr) return Status::FailedPrecondition(fmt::format("{} is already published", path_));
    Status s = file_->Close();
    if (s.ok()) s = env_->SetMode(tmp_, mode);
    if (s.ok()) s = env_->SetMtime(tmp_, mtime_ns);
    if (s.ok()) s = env_->RenameFile(tmp_, path_);
    if (!s.ok()) (void)env_->DeleteFile(tmp_);
    file_.reset();
    return s;
  }

 private:
  Env* env_;
  std::string path_, tmp_;
  std::unique_ptr<WritableFile> file_;  // null once published (or failed to)
};

}  // namespace

Result<std::vector<std::pair<std::string, FileInfo>>> Env::ListDirInfo(const std::string& dir) {
  STRATA_ASSIGN_OR_RETURN(auto names, ListDir(dir));
  std::vector<std::pair<std::string, FileInfo>> out;
  out.reserve(names.size());
  for (auto& name : names) {
    STRATA_ASSIGN_OR_RETURN(FileInfo info, Stat(JoinPath(dir, name)));
    out.emplace_back(std::move(name), info);
  }
  return out;
}

Result<std::unique_ptr<PendingFile>> Env::NewPendingFile(const std::string& path) {
  std::string tmp = TempNameFor(path);
  STRATA_ASSIGN_OR_RETURN(auto file, NewExclusiveFile(tmp));
  return std::unique_ptr<PendingFile>(new RenamedPendingFile(this, path, std::move(tmp), std::move(file)));
}

Status WriteFileAtomic(Env* env, const std::string& path, std::span<const uint8_t> data) {
  std::string tmp = TempNameFor(path);
  Status s = [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env->NewExclusiveFile(tmp));
    STRATA_RETURN_IF_ERROR(file->Append(data));
    STRATA_RETURN_IF_ERROR(file->Sync());
    STRATA_RETURN_IF_ERROR(file->Close());
    return env->RenameFile(tmp, path);
  }();
  if (!s.ok()) {
    // Best effort: the temp file may not exist (creation failed) or may already be renamed.
    (void)env->DeleteFile(tmp);
    return s.WithContext(fmt::format("cannot write {}", path));
  }
  // The rename is durable only once the directory entry is; without this a crash could bring
  // back the old content after the caller was told the new one is safe.
  return env->SyncDir(std::string(Dirname(path)));
}

Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data) {
  return WriteFileAtomic(env, path,
                         std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

std::string JoinPath(std::string_view a, std::string_view b) {
  // `b` is always taken as relative to `a`: joining a stored name that starts with '/' must
  // not escape the directory it belongs to.
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  std::string out(a);
  if (out.back() != '/') out.push_back('/');
  out.append(b);
  return out;
}

std::string_view Dirname(std::string_view path) {
  // POSIX dirname(3) without modifying its argument: "a/b" -> "a", "a" -> ".", "/a" -> "/",
  // "a/b/" -> "a".
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  while (slash > 0 && path[slash - 1] == '/') --slash;
  if (slash == 0) return path.substr(0, 1);
  return path.substr(0, slash);
}

std::string_view Basename(std::string_view path) {
  // "a/b" -> "b", "a/b/" -> "b", "/" -> "/", "" -> "".
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/") return path;
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace strata
