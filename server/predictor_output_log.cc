#include "server/predictor_output_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace cog {

PredictorOutputLog::PredictorOutputLog(size_t bytes_per_second, Clock clock, Sink sink)
    : bytes_per_second_(bytes_per_second),
      clock_(clock ? std::move(clock) : Clock([] { return absl::Now(); })),
      sink_(sink ? std::move(sink) : Sink([](bool warning, const std::string& message) {
        if (warning) {
          spdlog::warn("{}", message);
        } else {
          spdlog::info("{}", message);
        }
      })) {}

void PredictorOutputLog::RollWindow(absl::Time now) {
  if (dropped_bytes_ > 0 && bytes_per_second_ > 0) {  // 0: none is logged, as asked
    sink_(true, absl::StrCat("dropped ", dropped_lines_, " lines (", dropped_bytes_,
                             " bytes) of predictor output outside any prediction: more than ",
                             bytes_per_second_, " bytes a second"));
  }
  window_start_ = now;
  window_bytes_ = 0;
  dropped_bytes_ = 0;
  dropped_lines_ = 0;
}

void PredictorOutputLog::Write(absl::string_view source, absl::string_view prediction_id,
                               absl::string_view text) {
  const std::string where =
      prediction_id.empty()
          ? absl::StrCat("predictor ", source, " outside any prediction: ")
          : absl::StrCat("predictor ", source, " of prediction ", prediction_id,
                         " after it ended: ");
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_();
  if (now - window_start_ >= absl::Seconds(1)) RollWindow(now);
  while (!text.empty()) {
    size_t end = text.find('\n');
    absl::string_view line = text.substr(0, end);
    text.remove_prefix(end == absl::string_view::npos ? text.size() : end + 1);
    if (window_bytes_ + line.size() > bytes_per_second_) {
      dropped_bytes_ += line.size() + 1;
      ++dropped_lines_;
      continue;
    }
    window_bytes_ += line.size() + 1;
    if (line.size() > kMaxLineBytes) {
      size_t cut = kMaxLineBytes;
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
      sink_(false, absl::StrCat(where, line.substr(0, cut), " [", line.size() - cut,
                                " more bytes of this line not logged]"));
    } else {
      sink_(false, absl::StrCat(where, line));
    }
  }
}

}  // namespace cog
