#include "store/lock.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/logging.h"
#include "base/sysinfo.h"
#include "store/pack.h"

namespace strata::store {

namespace {
int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string Serialize(const LockInfo& l) {
  nlohmann::json j = {{"host", l.host}, {"pid", l.pid}, {"exclusive", l.exclusive},
                      {"created", l.created_unix}, {"expires", l.expires_unix}};
  return j.dump();
}
}  // namespace

Result<LockInfo> RepositoryLock::ParseLock(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j["host"].is_string() || !j["pid"].is_number_integer() ||
      !j["exclusive"].is_boolean() || !j["expires"].is_number_integer()) {
    return Status::Corruption("malformed lock file");
  }
  LockInfo l;
  l.host = j["host"].get<std::string>();
  l.pid = j["pid"].get<int64_t>();
  l.exclusive = j["exclusive"].get<bool>();
  // Optional, and only informative; j.value() would throw (or convert a float unchecked) on a
  // value of another type.
  l.created_unix = j.contains("created") && j["created"].is_number_integer() ? j["created"].get<int64_t>() : 0;
  l.expires_unix = j["expires"].get<int64_t>();
  return l;
}

bool RepositoryLock::IsStale(const LockInfo& lock, int64_t now_unix) {
  if (lock.expires_unix < now_unix) return true;
  if (lock.host == HostName() && lock.pid > 0) {
    return kill(static_cast<pid_t>(lock.pid), 0) != 0 && errno == ESRCH;
  }
  return false;
}

Result<std::unique_ptr<RepositoryLock>> RepositoryLock::Acquire(volume::Backend* backend, bool exclusive) {
  LockInfo mine;
  mine.name = NewRandomName();
  mine.host = HostName();
  mine.pid = getpid();
  mine.exclusive = exclusive;
  mine.created_unix = NowUnix();
  mine.expires_unix = mine.created_unix + kLeaseSeconds;
  // Publish first, then look: of two racing lockers at least one sees the other and backs off.
  STRATA_RETURN_IF_ERROR(backend->Put(volume::ObjectType::kLock, mine.name, Serialize(mine)));
  auto names = backend->List(volume::ObjectType::kLock);
  if (!names.ok()) {
    (void)backend->Delete(volume::ObjectType::kLock, mine.name);
    return names.status();
  }
  for (const auto& name : *names) {
    if (name == mine.name) continue;
    auto bytes = backend->Get(volume::ObjectType::kLock, name);
    if (!bytes.ok()) continue;  // released meanwhile
    auto other = ParseLock(*bytes);
    if (!other.ok() || IsStale(*other, NowUnix())) {
      LogWarning(fmt::format("removing stale lock {} (host {}, pid {})", name,
                             other.ok() ? other->host : "?", other.ok() ? other->pid : 0));
      (void)backend->Delete(volume::ObjectType::kLock, name);
      continue;
    }
    if (exclusive || other->exclusive) {
      (void)backend->Delete(volume::ObjectType::kLock, mine.name);
      return Status::FailedPrecondition(fmt::format(
          "repository is locked{} by pid {} on host {} since {}; try again when it finishes",
          other->exclusive ? " exclusively" : "", other->pid, other->host, other->created_unix));
    }
  }
  return std::unique_ptr<RepositoryLock>(new RepositoryLock(backend, std::move(mine)));
}

RepositoryLock::RepositoryLock(volume::Backend* backend, LockInfo info)
    : backend_(backend), info_(std::move(info)) {
  refresher_ = std::thread([this] { RefreshLoop(); });
}

RepositoryLock::~RepositoryLock() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  refresher_.join();
  (void)backend_->Delete(volume::ObjectType::kLock, info_.name);
}

void RepositoryLock::RefreshLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, std::chrono::seconds(kLeaseSeconds / 3), [this] { return stop_; })) {
    info_.expires_unix = NowUnix() + kLeaseSeconds;
    Status s = backend_->Put(volume::ObjectType::kLock, info_.name, Serialize(info_));
    if (!s.ok()) LogWarning("could not refresh repository lock: " + s.ToString());
  }
}

}  // namespace strata::store
