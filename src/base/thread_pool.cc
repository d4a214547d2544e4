#include "base/thread_pool.h"

#include <algorithm>

namespace strata {

size_t ThreadsOrCores(size_t threads) {
  return threads ? threads : std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(size_t threads, size_t max_queued) : max_queued_(std::max<size_t>(max_queued, 1)) {
  threads = ThreadsOrCores(threads);
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    // Drain first: destroying a pool must not drop work a caller already handed over.
    idle_.wait(lock, [this] { return queue_.empty() && running_ == 0; });
    stop_ = true;
  }
  not_empty_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Submit(std::function<void()> task) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [this] { return queue_.size() < max_queued_; });
    queue_.push_back(std::move(task));
  }
  not_empty_.notify_one();
}

void ThreadPool::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return queue_.empty() && running_ == 0; });
}

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      not_empty_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    not_full_.notify_one();
    task();
    // Destroy the task's captures before reporting idle, so a waiter sees their effects.
    task = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      if (!queue_.empty() || running_ != 0) continue;
    }
    idle_.notify_all();
  }
}

}  // namespace strata
