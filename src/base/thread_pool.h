// A fixed-size thread pool with a bounded queue, so producers block instead of buffering
// without limit (the memory bound of a put depends on it).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

// `threads`, or one per hardware core when it is 0 (the meaning of 0 in every threads option).
size_t ThreadsOrCores(size_t threads);

class ThreadPool {
 public:
  // `threads` == 0 means one per hardware core. `max_queued` bounds tasks waiting to run.
  explicit ThreadPool(size_t threads = 0, size_t max_queued = 64);
  // Waits for all submitted tasks to finish.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`; blocks while max_queued tasks are already waiting. Tasks must not throw.
  void Submit(std::function<void()> task);
  // Blocks until every task submitted so far has finished.
  void Wait();
  size_t size() const { return workers_.size(); }

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_, idle_;
  std::deque<std::function<void()>> queue_;
  size_t max_queued_;
  size_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace strata
