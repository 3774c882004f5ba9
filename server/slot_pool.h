// SlotPool: how many predictions may run at once (cog.yaml concurrency.max).
//
// TryAcquire() hands out a Slot, a move-only permit that returns itself to the
// pool when destroyed, so no error path can leak one. Thread-safe. The pool
// must outlive its slots.
#ifndef COG_SERVER_SLOT_POOL_H_
#define COG_SERVER_SLOT_POOL_H_

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cog {

class SlotPool;

class Slot {
 public:
  Slot(Slot&& other) noexcept : pool_(other.pool_) { other.pool_ = nullptr; }
  Slot& operator=(Slot&& other) noexcept;
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot() { Release(); }

 private:
  friend class SlotPool;
  explicit Slot(SlotPool* pool) : pool_(pool) {}
  void Release();

  SlotPool* pool_;
};

class SlotPool {
 public:
  explicit SlotPool(int capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // A slot, or nothing when all are in use.
  std::optional<Slot> TryAcquire();

  int capacity() const;
  // A new capacity (at least 1); slots in use beyond it stay until returned.
  void SetCapacity(int capacity);
  int in_use() const;

 private:
  friend class Slot;
  void Return();

  mutable absl::Mutex mu_;
  int capacity_ ABSL_GUARDED_BY(mu_);
  int in_use_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cog

#endif  // COG_SERVER_SLOT_POOL_H_
