#include "server/slot_pool.h"

namespace cog {

Slot& Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = other.pool_;
    other.pool_ = nullptr;
  }
  return *this;
}

void Slot::Release() {
  if (pool_ != nullptr) pool_->Return();
  pool_ = nullptr;
}

std::optional<Slot> SlotPool::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (in_use_ >= capacity_) return std::nullopt;
  ++in_use_;
  return Slot(this);
}

int SlotPool::capacity() const {
  absl::MutexLock lock(&mu_);
  return capacity_;
}

void SlotPool::SetCapacity(int capacity) {
  absl::MutexLock lock(&mu_);
  capacity_ = capacity < 1 ? 1 : capacity;
}

int SlotPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

void SlotPool::Return() {
  absl::MutexLock lock(&mu_);
  --in_use_;
}

}  // namespace cog
