#include "server/slot_pool.h"

#include <utility>

#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(SlotPoolTest, HandsOutUpToCapacityThenRefuses) {
  SlotPool pool(2);
  std::optional<Slot> a = pool.TryAcquire();
  std::optional<Slot> b = pool.TryAcquire();
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(pool.TryAcquire().has_value());
  EXPECT_EQ(pool.in_use(), 2);
}

TEST(SlotPoolTest, ANewCapacityCountsTheSlotsAlreadyInUse) {
  SlotPool pool(1);
  std::optional<Slot> a = pool.TryAcquire();
  pool.SetCapacity(3);
  EXPECT_EQ(pool.capacity(), 3);
  std::optional<Slot> b = pool.TryAcquire();
  std::optional<Slot> c = pool.TryAcquire();
  EXPECT_TRUE(b.has_value() && c.has_value());
  EXPECT_FALSE(pool.TryAcquire().has_value());
  pool.SetCapacity(0);
  EXPECT_EQ(pool.capacity(), 1) << "at least one";
}

TEST(SlotPoolTest, DestroyedSlotReturnsItself) {
  SlotPool pool(1);
  {
    std::optional<Slot> slot = pool.TryAcquire();
    ASSERT_TRUE(slot.has_value());
    EXPECT_FALSE(pool.TryAcquire().has_value());
  }
  EXPECT_EQ(pool.in_use(), 0);
  EXPECT_TRUE(pool.TryAcquire().has_value());
}

TEST(SlotPoolTest, MovedSlotIsReturnedOnce) {
  SlotPool pool(1);
  std::optional<Slot> first = pool.TryAcquire();
  ASSERT_TRUE(first.has_value());
  Slot moved = std::move(*first);
  first.reset();  // the moved-from slot must not return anything
  EXPECT_EQ(pool.in_use(), 1);
  { Slot gone = std::move(moved); }
  EXPECT_EQ(pool.in_use(), 0);
}

TEST(SlotPoolTest, CapacityBelowOneMeansOne) {
  SlotPool pool(0);
  EXPECT_EQ(pool.capacity(), 1);
  EXPECT_TRUE(pool.TryAcquire().has_value());
}

}  // namespace
}  // namespace cog
