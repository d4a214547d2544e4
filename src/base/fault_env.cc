#include "base/fault_env.h"

#include <cerrno>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

namespace strata {
namespace {

// The key a path is tracked under: "./a//b/" and "a/b" are the same file.
std::string Key(std::string_view path) {
  std::string k = std::filesystem::path(path).lexically_normal().string();
  while (k.size() > 1 && k.back() == '/') k.pop_back();
  return k;
}

bool Matches(const std::string& filter, const std::string& path) {
  return filter.empty() || path.find(filter) != std::string::npos;
}

Status Injected(int err, const std::string& path) {
  return Status::FromErrno(err, fmt::format("{} (injected fault)", path));
}

Status StaleHandle(const std::string& path) {
  return Status::IOError(fmt::format("{}: file handle opened before a simulated crash", path));
}

}  // namespace

class FaultEnv::TrackedWritableFile final : public WritableFile {
 public:
  TrackedWritableFile(FaultEnv* env, std::unique_ptr<WritableFile> base, std::string path,
                      std::shared_ptr<FileState> state, uint64_t generation)
      : env_(env), base_(std::move(base)), path_(std::move(path)), state_(std::move(state)),
        generation_(generation) {}

  Status Append(std::span<const uint8_t> data) override {
    // Holding the env's lock across the write keeps space accounting, torn writes and
    // SimulateCrash consistent with each other; a test env can afford the serialisation.
    std::lock_guard<std::mutex> lock(env_->mu_);
    if (generation_ != env_->generation_) return StaleHandle(path_);
    Status fault = env_->MaybeFailWriteLocked(path_);
    size_t room = data.size();
    if (fault.ok() && env_->space_left_ >= 0 && data.size() > static_cast<uint64_t>(env_->space_left_)) {
      ++env_->faults_;
      room = static_cast<size_t>(env_->space_left_);
      fault = Injected(ENOSPC, path_);
    }
    size_t n = data.size();
    if (!fault.ok()) {
      if (!env_->torn_ || n == 0) return fault;
      // A strict prefix of the data, no longer than the space left.
      n = static_cast<size_t>(env_->RandomBelowLocked(std::min(n - 1, room) + 1));
    }
    Status s = base_->Append(data.first(n));
    if (s.ok()) {
      state_->size += n;
      if (env_->space_left_ >= 0) env_->space_left_ -= static_cast<int64_t>(n);
    }
    return fault.ok() ? s : fault;
  }

  Status Sync() override {
    std::lock_guard<std::mutex> lock(env_->mu_);
    if (generation_ != env_->generation_) return StaleHandle(path_);
    STRATA_RETURN_IF_ERROR(env_->MaybeFailWriteLocked(path_));
    STRATA_RETURN_IF_ERROR(base_->Sync());
    state_->synced_size = state_->size;
    return Status::OK();
  }

  // Closing persists nothing, so it is never a fault point.
  Status Close() override { return base_->Close(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<WritableFile> base_;
  std::string path_;
  std::shared_ptr<FileState> state_;
  uint64_t generation_;
};

class FaultEnv::FlippingRandomAccessFile final : public RandomAccessFile {
 public:
  FlippingRandomAccessFile(FaultEnv* env, std::unique_ptr<RandomAccessFile> base, std::string path)
      : env_(env), base_(std::move(base)), path_(std::move(path)) {}

  Status Read(uint64_t offset, size_t n, uint8_t* dst, size_t* got) const override {
    STRATA_RETURN_IF_ERROR(base_->Read(offset, n, dst, got));
    env_->MaybeFlip(path_, dst, *got);
    return Status::OK();
  }
  Result<uint64_t> Size() const override { return base_->Size(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<RandomAccessFile> base_;
  std::string path_;
};

class FaultEnv::FlippingSequentialFile final : public SequentialFile {
 public:
  FlippingSequentialFile(FaultEnv* env, std::unique_ptr<SequentialFile> base, std::string path)
      : env_(env), base_(std::move(base)), path_(std::move(path)) {}

  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    STRATA_RETURN_IF_ERROR(base_->Read(n, dst, got));
    env_->MaybeFlip(path_, dst, *got);
    return Status::OK();
  }

 private:
  FaultEnv* env_;
  std::unique_ptr<SequentialFile> base_;
  std::string path_;
};

FaultEnv::FaultEnv(Env* target, uint64_t seed) : EnvWrapper(target), rng_(seed) {}

void FaultEnv::FailWritesAfter(int64_t n, std::string path_filter) {
  std::lock_guard<std::mutex> lock(mu_);
  writes_left_ = n;
  write_filter_ = std::move(path_filter);
}

void FaultEnv::SetSpaceLimit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  space_left_ = bytes;
}

void FaultEnv::SetTornWrites(bool torn) {
  std::lock_guard<std::mutex> lock(mu_);
  torn_ = torn;
}

void FaultEnv::SetReadBitFlips(uint32_t one_in, std::string path_filter) {
  std::lock_guard<std::mutex> lock(mu_);
  flip_one_in_ = one_in;
  flip_filter_ = std::move(path_filter);
}

uint64_t FaultEnv::faults_injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return faults_;
}

Status FaultEnv::MaybeFailWriteLocked(const std::string& path, const std::string& other) {
  if (writes_left_ < 0) return Status::OK();
  if (!Matches(write_filter_, path) && (other.empty() || !Matches(write_filter_, other))) {
    return Status::OK();
  }
  if (writes_left_ > 0) {
    --writes_left_;
    return Status::OK();
  }
  ++faults_;
  return Injected(EIO, path);
}

uint64_t FaultEnv::RandomBelowLocked(uint64_t n) {
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
}

void FaultEnv::MaybeFlip(const std::string& path, uint8_t* data, size_t n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (flip_one_in_ == 0 || !Matches(flip_filter_, path)) return;
  if (RandomBelowLocked(flip_one_in_) != 0) return;
  uint64_t bit = RandomBelowLocked(uint64_t{n} * 8);
  data[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  ++faults_;
}

Result<std::unique_ptr<WritableFile>> FaultEnv::OpenTracked(const std::string& path, bool exclusive) {
  std::lock_guard<std::mutex> lock(mu_);
  STRATA_RETURN_IF_ERROR(MaybeFailWriteLocked(path));
  bool existed = target()->FileExists(path);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> base,
                          exclusive ? target()->NewExclusiveFile(path) : target()->NewWritableFile(path));
  std::string key = Key(path);
  auto state = std::make_shared<FileState>();
  files_[key] = state;
  if (!existed) unsynced_entries_.insert(key);
  return std::unique_ptr<WritableFile>(
      new TrackedWritableFile(this, std::move(base), path, std::move(state), generation_));
}

Result<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(const std::string& path) {
  return OpenTracked(path, false);
}

Result<std::unique_ptr<WritableFile>> FaultEnv::NewExclusiveFile(const std::string& path) {
  return OpenTracked(path, true);
}

Result<std::unique_ptr<RandomAccessFile>> FaultEnv::NewRandomAccessFile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> base, target()->NewRandomAccessFile(path));
  return std::unique_ptr<RandomAccessFile>(new FlippingRandomAccessFile(this, std::move(base), path));
}

Result<std::unique_ptr<SequentialFile>> FaultEnv::NewSequentialFile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> base, target()->NewSequentialFile(path));
  return std::unique_ptr<SequentialFile>(new FlippingSequentialFile(this, std::move(base), path));
}

void FaultEnv::MovePathLocked(const std::string& from, const std::string& to) {
  // Re-key `from` and, when it is a directory, everything tracked below it.
  const std::string prefix = from + "/";
  auto moved = [&](const std::string& p) -> std::string {
    if (p == from) return to;
    if (p.compare(0, prefix.size(), prefix) == 0) return to + p.substr(from.size());
    return {};
  };
  std::map<std::string, std::shared_ptr<FileState>> files;
  for (auto& [p, st] : files_) {
    std::string m = moved(p);
    files[m.empty() ? p : m] = std::move(st);
  }
  files_.swap(files);
  std::set<std::string> entries;
  for (const std::string& p : unsynced_entries_) {
    std::string m = moved(p);
    entries.insert(m.empty() ? p : m);
  }
  unsynced_entries_.swap(entries);
}

Status FaultEnv::RenameFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  STRATA_RETURN_IF_ERROR(MaybeFailWriteLocked(from, to));
  const std::string from_key = Key(from), to_key = Key(to);
  PendingRename rec;
  rec.from = from_key;
  rec.to = to_key;
  // Keep the old destination's durable bytes aside, so an undone rename can restore them.
  auto info = target()->Stat(to);
  if (info.ok() && info->type == FileType::kRegular) {
    STRATA_ASSIGN_OR_RETURN(rec.old_to_data, ReadFileToString(target(), to));
    auto it = files_.find(to_key);
    if (it != files_.end() && rec.old_to_data.size() > it->second->synced_size) {
      rec.old_to_data.resize(it->second->synced_size);
    }
    rec.had_old_to = true;
  }
  STRATA_RETURN_IF_ERROR(target()->RenameFile(from, to));
  files_.erase(to_key);
  rec.to_was_new = unsynced_entries_.erase(to_key) > 0;
  rec.from_was_new = unsynced_entries_.erase(from_key) > 0;
  MovePathLocked(from_key, to_key);
  pending_renames_.push_back(std::move(rec));
  return Status::OK();
}

Status FaultEnv::DeleteFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  STRATA_RETURN_IF_ERROR(MaybeFailWriteLocked(path));
  STRATA_RETURN_IF_ERROR(target()->DeleteFile(path));
  const std::string key = Key(path);
  files_.erase(key);
  unsynced_entries_.erase(key);
  return Status::OK();
}

Status FaultEnv::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  STRATA_RETURN_IF_ERROR(MaybeFailWriteLocked(dir));
  STRATA_RETURN_IF_ERROR(target()->SyncDir(dir));
  const std::string d = Key(dir);
  auto in_dir = [&](const std::string& p) { return Key(Dirname(p)) == d; };
  std::erase_if(unsynced_entries_, in_dir);
  std::erase_if(pending_renames_, [&](const PendingRename& r) { return in_dir(r.to); });
  return Status::OK();
}

Status FaultEnv::RewriteLocked(const std::string& path, std::string_view data) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, target()->NewWritableFile(path));
  STRATA_RETURN_IF_ERROR(f->Append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size())));
  STRATA_RETURN_IF_ERROR(f->Sync());
  return f->Close();
}

Status FaultEnv::SimulateCrash() {
  std::lock_guard<std::mutex> lock(mu_);
  // Stale handles must not write into the files rebuilt below.
  ++generation_;
  writes_left_ = -1;

  // 1. Undo unsynced renames, newest first, so chains (a->b, b->c) unwind in order.
  for (auto it = pending_renames_.rbegin(); it != pending_renames_.rend(); ++it) {
    const PendingRename& r = *it;
    // The destination may be gone (deleted, or renamed on by a committed rename); then there
    // is nothing to move back.
    if (target()->FileExists(r.to)) {
      STRATA_RETURN_IF_ERROR(target()->RenameFile(r.to, r.from).WithContext("simulated crash"));
      // Whatever was created at `from` since is replaced by the file moving back.
      files_.erase(r.from);
      unsynced_entries_.erase(r.from);
      MovePathLocked(r.to, r.from);
    }
    if (r.from_was_new) unsynced_entries_.insert(r.from);
    if (r.had_old_to) {
      STRATA_RETURN_IF_ERROR(RewriteLocked(r.to, r.old_to_data).WithContext("simulated crash"));
      files_.erase(r.to);  // its content is now exactly what was durable
      if (r.to_was_new) unsynced_entries_.insert(r.to);
    }
  }

  // 2. Drop unsynced bytes of files that survive.
  for (const auto& [path, st] : files_) {
    if (st->size == st->synced_size || unsynced_entries_.count(path) > 0) continue;
    if (!target()->FileExists(path)) continue;
    STRATA_ASSIGN_OR_RETURN(std::string data, ReadFileToString(target(), path));
    if (data.size() <= st->synced_size) continue;
    data.resize(st->synced_size);
    STRATA_RETURN_IF_ERROR(RewriteLocked(path, data).WithContext("simulated crash"));
  }

  // 3. Remove files whose directory entry never became durable.
  for (const std::string& path : unsynced_entries_) {
    if (!target()->FileExists(path)) continue;
    STRATA_RETURN_IF_ERROR(target()->DeleteFile(path).WithContext("simulated crash"));
  }

  files_.clear();
  unsynced_entries_.clear();
  pending_renames_.clear();
  return Status::OK();
}

}  // namespace strata
