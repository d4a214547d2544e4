#include "volume/deadline_runner.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::volume {
namespace {

struct Call {
  std::function<void()> fn;
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
};

}  // namespace

struct DeadlineRunner::State {
  std::mutex mu;
  std::condition_variable work_cv, idle_cv;
  std::deque<std::shared_ptr<Call>> queue;
  std::vector<std::thread> threads;
  size_t busy = 0;
  bool stop = false;

  // Each thread holds the state, so one that outlives the runner (stuck in a call) is safe.
  static void Loop(std::shared_ptr<State> s) {
    std::unique_lock<std::mutex> l(s->mu);
    for (;;) {
      s->work_cv.wait(l, [&] { return s->stop || !s->queue.empty(); });
      if (s->queue.empty()) return;  // stopping
      std::shared_ptr<Call> call = std::move(s->queue.front());
      s->queue.pop_front();
      ++s->busy;
      l.unlock();
      call->fn();
      {
        std::lock_guard<std::mutex> cl(call->mu);
        call->done = true;
      }
      call->done_cv.notify_all();
      l.lock();
      --s->busy;
      s->idle_cv.notify_all();
    }
  }

  // Called with mu held.
  static void AddThread(const std::shared_ptr<State>& s) { s->threads.emplace_back(&State::Loop, s); }
};

DeadlineRunner::DeadlineRunner(size_t threads) : state_(std::make_shared<State>()) {
  std::lock_guard<std::mutex> l(state_->mu);
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) State::AddThread(state_);
}

DeadlineRunner::~DeadlineRunner() {
  std::vector<std::thread> threads;
  bool idle = false;
  {
    std::unique_lock<std::mutex> l(state_->mu);
    state_->stop = true;
    state_->work_cv.notify_all();
    idle = state_->idle_cv.wait_for(l, std::chrono::seconds(1), [&] { return state_->busy == 0; });
    threads.swap(state_->threads);
  }
  for (auto& t : threads) {
    if (idle) t.join();
    else t.detach();
  }
}

bool DeadlineRunner::Run(std::function<void()> fn, std::chrono::milliseconds deadline) {
  auto call = std::make_shared<Call>();
  call->fn = std::move(fn);
  {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->queue.push_back(call);
    state_->work_cv.notify_one();
  }
  std::unique_lock<std::mutex> cl(call->mu);
  if (call->done_cv.wait_for(cl, deadline, [&] { return call->done; })) return true;
  cl.unlock();
  // Its thread may never come back: another one takes its place.
  std::lock_guard<std::mutex> l(state_->mu);
  State::AddThread(state_);
  return false;
}

}  // namespace strata::volume
