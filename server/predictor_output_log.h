#ifndef COG_SERVER_PREDICTOR_OUTPUT_LOG_H_
#define COG_SERVER_PREDICTOR_OUTPUT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cog {

// PredictorOutputLog
//
// What the predictor wrote that belongs to no prediction (a background thread
// printing between predictions, a subprocess that outlived its prediction, a
// C extension of an async predictor running several predictions at once)
// goes into the server's own log: one record per line, saying where it came
// from, so the server's log stays JSON lines whatever the predictor writes.
//
// Bounded, because a model can flood it: at most `bytes_per_second` of such
// output is logged per second, a line at most kMaxLineBytes; what is over is
// counted and reported in one warning with the first output of a later
// second. Zero bytes a second: none of it is logged, and nothing is reported.
// Thread-safe.
class PredictorOutputLog {
 public:
  static constexpr size_t kMaxLineBytes = 16 * 1024;

  using Clock = std::function<absl::Time()>;
  // Receives each record's message; `warning` for the dropped-bytes report.
  using Sink = std::function<void(bool warning, const std::string& message)>;

  // The default sink is spdlog (info, warn); the default clock absl::Now.
  explicit PredictorOutputLog(size_t bytes_per_second, Clock clock = nullptr, Sink sink = nullptr);

  // `text`: one or more lines (a last one may lack its "\n"). `source`:
  // "stdout", "stderr" or "runner". `prediction_id`: empty for output outside
  // any prediction, else a prediction that has already ended.
  void Write(absl::string_view source, absl::string_view prediction_id, absl::string_view text);

 private:
  // Reports what was dropped in the window that ended, and starts a new one.
  void RollWindow(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t bytes_per_second_;
  const Clock clock_;
  const Sink sink_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  size_t window_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_lines_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cog

#endif  // COG_SERVER_PREDICTOR_OUTPUT_LOG_H_
