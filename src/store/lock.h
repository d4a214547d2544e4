// Repository locks. Writers that add data (put) hold shared locks and run side by side;
// operations that rewrite or delete (repair index, cleanup, gc) hold an exclusive lock. Readers
// take no lock and never wait.
//
// A lock is a small object in locks/ naming its owner (host, pid) and a lease expiry that the
// owner refreshes in the background. A lock is stale when its lease expired, or when it was
// taken on this host by a process that no longer exists; stale locks are removed on sight.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "strata/status.h"
#include "volume/backend.h"

namespace strata::store {

struct LockInfo {
  std::string name;
  std::string host;
  int64_t pid = 0;
  bool exclusive = false;
  int64_t created_unix = 0;
  int64_t expires_unix = 0;
};

class RepositoryLock {
 public:
  // Lease length; the owner refreshes it every third of it.
  static constexpr int64_t kLeaseSeconds = 300;

  // Fails with kFailedPrecondition naming the conflicting owner.
  static Result<std::unique_ptr<RepositoryLock>> Acquire(volume::Backend* backend, bool exclusive);
  ~RepositoryLock();  // releases

  static Result<LockInfo> ParseLock(std::string_view bytes);
  static bool IsStale(const LockInfo& lock, int64_t now_unix);

 private:
  RepositoryLock(volume::Backend* backend, LockInfo info);
  void RefreshLoop();
  volume::Backend* backend_;
  LockInfo info_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread refresher_;
};

}  // namespace strata::store
