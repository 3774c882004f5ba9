#include "server/keyed_executor.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(KeyedExecutorTest, TasksOfOneKeyRunInOrderAndOneAtATime) {
  absl::Mutex mu;
  std::vector<int> order;
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  {
    KeyedExecutor executor(4);
    for (int i = 0; i < 200; ++i) {
      executor.Run("a", [&, i] {
        if (running.fetch_add(1) != 0) overlapped = true;
        {
          absl::MutexLock lock(&mu);
          order.push_back(i);
        }
        running.fetch_sub(1);
      });
    }
  }  // the destructor runs everything queued
  EXPECT_FALSE(overlapped);
  ASSERT_EQ(order.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(order[i], i);
}

TEST(KeyedExecutorTest, ABlockedKeyDoesNotHoldUpAnother) {
  KeyedExecutor executor(2);
  absl::Notification release_a;
  absl::Notification b_ran;
  executor.Run("a", [&] { release_a.WaitForNotification(); });
  executor.Run("a", [&] {});
  executor.Run("b", [&] { b_ran.Notify(); });
  b_ran.WaitForNotification();  // hangs (and the test times out) if "b" waits for "a"
  release_a.Notify();
}

TEST(KeyedExecutorTest, ATaskMayQueueMoreForItsOwnKey) {
  absl::Notification second_ran;
  KeyedExecutor executor(1);
  executor.Run("a", [&] { executor.Run("a", [&] { second_ran.Notify(); }); });
  second_ran.WaitForNotification();
}

}  // namespace
}  // namespace cog
