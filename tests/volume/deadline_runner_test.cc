// DeadlineRunner: answers in time, gives up on a call that hangs, and keeps serving others.
#include "volume/deadline_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace strata::volume {
namespace {

using std::chrono::milliseconds;

// A gate a call can wait at until the test opens it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return open; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(DeadlineRunnerTest, AnsweredCallsReturnTrueAndHungOnesFalseWithoutBlockingOthers) {
  auto gate = std::make_shared<Gate>();
  auto ran = std::make_shared<std::atomic<int>>(0);
  {
    DeadlineRunner runner(1);  // one thread: the hung call must not take the only one
    EXPECT_TRUE(runner.Run([ran] { ++*ran; }, milliseconds(5000)));
    auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(runner.Run([gate, ran] { gate->Wait(); ++*ran; }, milliseconds(100)));
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(runner.Run([ran] { ++*ran; }, milliseconds(5000)));
    EXPECT_EQ(ran->load(), 6);
    gate->Open();  // the abandoned call finishes on its own
  }
  EXPECT_EQ(ran->load(), 7);  // the destructor waited for it (it ended within the grace period)
}

TEST(DeadlineRunnerTest, DestroyingARunnerWithACallThatNeverReturnsDoesNotWaitForIt) {
  auto gate = std::make_shared<Gate>();
  auto start = std::chrono::steady_clock::now();
  {
    DeadlineRunner runner(2);
    EXPECT_FALSE(runner.Run([gate] { gate->Wait(); }, milliseconds(50)));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
  gate->Open();  // the detached thread ends; it holds the runner's state, not the runner
}

}  // namespace
}  // namespace strata::volume
