#include "server/heap_trimmer.h"

#include <malloc.h>

namespace cog {

HeapTrimmer::HeapTrimmer() : thread_([this] { Run(); }) {}

HeapTrimmer::~HeapTrimmer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void HeapTrimmer::Released(uint64_t bytes) {
  if (bytes < kLargeBytes) return;
  absl::MutexLock lock(&mu_);
  last_large_ = absl::Now();
}

void HeapTrimmer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (!last_large_.has_value()) {
      auto wanted = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stop_ || last_large_.has_value(); };
      mu_.Await(absl::Condition(&wanted));
      continue;
    }
    const absl::Time due = *last_large_ + kDelay;
    if (absl::Now() < due) {
      mu_.AwaitWithDeadline(absl::Condition(&stop_), due);
      continue;  // a later large release may have moved it
    }
    last_large_.reset();
    mu_.Unlock();
    malloc_trim(0);
    mu_.Lock();
  }
}

}  // namespace cog
