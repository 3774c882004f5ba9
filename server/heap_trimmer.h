// HeapTrimmer: hands free heap pages back to the system (malloc_trim) a
// moment after something large was let go of: a request or an answer of many
// MiB (the HTTP front door), a generator's outputs (the core). Their buffers
// stay free in glibc's arena, which keeps them (a 10 MiB data URI: ~300 MB of
// RSS kept). Not after each: back-to-back large requests would pay page faults
// for every buffer, so the trim comes kDelay after the last large release.
//
// One per process, made before and gone after everything that reports to it.
// Thread-safe.
#ifndef COG_SERVER_HEAP_TRIMMER_H_
#define COG_SERVER_HEAP_TRIMMER_H_

#include <cstdint>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cog {

class HeapTrimmer {
 public:
  // What counts as large.
  static constexpr uint64_t kLargeBytes = 8 << 20;
  static constexpr absl::Duration kDelay = absl::Seconds(1);

  HeapTrimmer();
  ~HeapTrimmer();
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

  // `bytes` were moved or held and are let go of now: if that is kLargeBytes
  // or more, the heap is trimmed kDelay from now (unless something large
  // comes again before).
  void Released(uint64_t bytes);

 private:
  void Run();

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Time> last_large_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last, so it starts after the rest
};

}  // namespace cog

#endif  // COG_SERVER_HEAP_TRIMMER_H_
