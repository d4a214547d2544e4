#include "base/thread_pool.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(ThreadPoolTest, RunsEveryTask) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4u);
  std::atomic<int> sum{0};
  for (int i = 1; i <= 1000; ++i) pool.Submit([&sum, i] { sum += i; });
  pool.Wait();
  EXPECT_EQ(sum.load(), 500500);
  // Reusable after Wait.
  pool.Submit([&sum] { sum += 1; });
  pool.Wait();
  EXPECT_EQ(sum.load(), 500501);
}

TEST(ThreadPoolTest, DefaultSizeIsAtLeastOne) {
  ThreadPool pool;
  EXPECT_GE(pool.size(), 1u);
  pool.Wait();  // nothing submitted: returns at once
}

TEST(ThreadPoolTest, SubmitBlocksWhenQueueIsFull) {
  ThreadPool pool(1, 2);
  std::atomic<bool> release{false};
  std::atomic<int> done{0};
  auto blocker = [&] {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++done;
  };
  // Whatever the timing, once the worker holds one blocker the other two fill the queue
  // (a third Submit here would wait for the worker to take the first).
  pool.Submit(blocker);
  pool.Submit(blocker);
  pool.Submit(blocker);
  std::atomic<bool> submitted{false};
  std::thread producer([&] {
    pool.Submit([&] { ++done; });
    submitted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(submitted.load()) << "Submit did not block on a full queue";
  release = true;
  producer.join();
  pool.Wait();
  EXPECT_TRUE(submitted.load());
  EXPECT_EQ(done.load(), 4);
}

TEST(ThreadPoolTest, DestructorFinishesQueuedWork) {
  std::atomic<int> done{0};
  {
    ThreadPool pool(2, 100);
    for (int i = 0; i < 50; ++i) {
      pool.Submit([&done] {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        ++done;
      });
    }
  }
  EXPECT_EQ(done.load(), 50);
}

TEST(ThreadPoolTest, WaitSeesAllSideEffects) {
  ThreadPool pool(3, 8);
  std::vector<int> out(200, 0);
  for (int i = 0; i < 200; ++i) pool.Submit([&out, i] { out[i] = i * i; });
  pool.Wait();
  for (int i = 0; i < 200; ++i) ASSERT_EQ(out[i], i * i);
}

}  // namespace
}  // namespace strata
