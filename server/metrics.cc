#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/busy_poller.h"
#include "server/prediction_service.h"

namespace cog {

void PredictionMetrics::Observe(const Prediction& prediction) {
  int status;
  switch (prediction.status) {
    case PredictionStatus::kSucceeded:
      status = 0;
      break;
    case PredictionStatus::kFailed:
      status = 1;
      break;
    case PredictionStatus::kCanceled:
      status = 2;
      break;
    default:
      return;
  }
  const int kind = prediction.kind == PredictionKind::kTrain ? 1 : 0;
  double seconds = 0;
  if (prediction.started_at.has_value() && prediction.completed_at.has_value()) {
    seconds = absl::ToDoubleSeconds(*prediction.completed_at - *prediction.started_at);
  }
  absl::MutexLock lock(&mu_);
  ++ended_[kind][status];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++buckets_[i];
  }
  ++count_;
  sum_seconds_ += seconds;
}

std::string PredictionMetrics::Render(const HealthReport& health) const {
  std::string out;
  static constexpr const char* kKinds[] = {"predict", "train"};
  static constexpr const char* kStatuses[] = {"succeeded", "failed", "canceled"};
  absl::MutexLock lock(&mu_);
  absl::StrAppend(&out,
                  "# HELP cog_predictions_total Predictions and trainings that ended, by kind "
                  "and status.\n# TYPE cog_predictions_total counter\n");
  for (int kind = 0; kind < 2; ++kind) {
    for (int status = 0; status < 3; ++status) {
      absl::StrAppend(&out, "cog_predictions_total{kind=\"", kKinds[kind], "\",status=\"",
                      kStatuses[status], "\"} ", ended_[kind][status], "\n");
    }
  }
  absl::StrAppend(&out,
                  "# HELP cog_prediction_duration_seconds Time from start to end of the "
                  "predictions that ended.\n# TYPE cog_prediction_duration_seconds histogram\n");
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    absl::StrAppend(&out, "cog_prediction_duration_seconds_bucket{le=\"",
                    absl::StrFormat("%g", kBuckets[i]), "\"} ", buckets_[i], "\n");
  }
  absl::StrAppend(&out, "cog_prediction_duration_seconds_bucket{le=\"+Inf\"} ", count_, "\n",
                  "cog_prediction_duration_seconds_sum ", absl::StrFormat("%.6f", sum_seconds_),
                  "\n", "cog_prediction_duration_seconds_count ", count_, "\n");
  absl::StrAppend(&out,
                  "# HELP cog_predictions_running Predictions running now.\n"
                  "# TYPE cog_predictions_running gauge\ncog_predictions_running ",
                  health.concurrency_current, "\n",
                  "# HELP cog_concurrency_max Predictions that may run at once.\n"
                  "# TYPE cog_concurrency_max gauge\ncog_concurrency_max ",
                  health.concurrency_max, "\n");
  absl::StrAppend(&out,
                  "# HELP cog_health_status The health /health-check reports: 1 for the "
                  "current status.\n# TYPE cog_health_status gauge\n");
  for (HealthStatus status : {HealthStatus::kStarting, HealthStatus::kReady, HealthStatus::kBusy,
                              HealthStatus::kSetupFailed, HealthStatus::kDefunct,
                              HealthStatus::kUnhealthy}) {
    absl::StrAppend(&out, "cog_health_status{status=\"", HealthStatusName(status), "\"} ",
                    status == health.status ? 1 : 0, "\n");
  }
  if (health.setup.started_at.has_value() && health.setup.completed_at.has_value()) {
    absl::StrAppend(&out,
                    "# HELP cog_setup_duration_seconds How long setup() took.\n"
                    "# TYPE cog_setup_duration_seconds gauge\ncog_setup_duration_seconds ",
                    absl::StrFormat("%.6f", absl::ToDoubleSeconds(*health.setup.completed_at -
                                                                 *health.setup.started_at)),
                    "\n");
  }
  if (busy_poll_ != nullptr) {
    absl::StrAppend(&out,
                    "# HELP cog_runner_frame_polls_total Waits for the runner's next frame that "
                    "polled its socket (--busy-poll-us): caught, the frame came while polling; "
                    "missed, the reader slept after all.\n"
                    "# TYPE cog_runner_frame_polls_total counter\n"
                    "cog_runner_frame_polls_total{result=\"caught\"} ",
                    busy_poll_->caught.load(std::memory_order_relaxed), "\n",
                    "cog_runner_frame_polls_total{result=\"missed\"} ",
                    busy_poll_->missed.load(std::memory_order_relaxed), "\n");
  }
  if (webhooks_ != nullptr) {
    absl::StrAppend(&out,
                    "# HELP cog_webhooks_dropped_total Webhooks not sent because the bodies of "
                    "those waiting for their receivers passed --webhook-backlog-bytes.\n"
                    "# TYPE cog_webhooks_dropped_total counter\ncog_webhooks_dropped_total ",
                    webhooks_->dropped.load(std::memory_order_relaxed), "\n");
  }
  return out;
}

}  // namespace cog
