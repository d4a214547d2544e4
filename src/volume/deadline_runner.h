// Runs calls on threads of its own and waits for each no longer than a deadline. A disk that
// hangs (a dying drive, a hard-mounted network volume) blocks the thread that reads it, maybe
// for ever; the caller gets an answer in time either way and can read elsewhere. A call that
// misses its deadline keeps its thread and a new thread takes its place, so it must own all it
// touches (shared_ptr state, no pointers into the caller's frame).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace strata::volume {

class DeadlineRunner {
 public:
  explicit DeadlineRunner(size_t threads);
  // Idle threads stop and are joined; a thread still inside a call after a short grace period
  // is detached and ends when its call returns.
  ~DeadlineRunner();
  DeadlineRunner(const DeadlineRunner&) = delete;
  DeadlineRunner& operator=(const DeadlineRunner&) = delete;

  // Runs `fn` on a runner thread; true when it returned within `deadline`, false when it did
  // not (it goes on running, and its result is the caller's to ignore).
  bool Run(std::function<void()> fn, std::chrono::milliseconds deadline);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace strata::volume
