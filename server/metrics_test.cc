#include "server/metrics.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/busy_poller.h"
#include "server/prediction_service.h"

namespace cog {
namespace {

Prediction Ended(PredictionStatus status, absl::Duration took) {
  Prediction prediction;
  prediction.status = status;
  prediction.started_at = absl::Now();
  prediction.completed_at = *prediction.started_at + took;
  return prediction;
}

TEST(PredictionMetricsTest, CountsByStatusAndBucketsDurations) {
  PredictionMetrics metrics;
  metrics.Observe(Ended(PredictionStatus::kSucceeded, absl::Milliseconds(3)));
  metrics.Observe(Ended(PredictionStatus::kSucceeded, absl::Seconds(2)));
  metrics.Observe(Ended(PredictionStatus::kFailed, absl::Milliseconds(40)));
  metrics.Observe(Ended(PredictionStatus::kProcessing, absl::Seconds(1)));  // not ended: ignored
  HealthReport health;
  health.status = HealthStatus::kBusy;
  health.concurrency_current = 1;
  const std::string text = metrics.Render(health);
  EXPECT_NE(text.find("cog_predictions_total{kind=\"predict\",status=\"succeeded\"} 2\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("cog_predictions_total{kind=\"predict\",status=\"failed\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("cog_prediction_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("cog_prediction_duration_seconds_bucket{le=\"0.05\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("cog_prediction_duration_seconds_bucket{le=\"2.5\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("cog_prediction_duration_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("cog_health_status{status=\"BUSY\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("cog_health_status{status=\"READY\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("cog_predictions_running 1\n"), std::string::npos);
  EXPECT_EQ(text.find("cog_runner_frame_polls_total"), std::string::npos) << "not polling";
}

TEST(PredictionMetricsTest, RendersBusyPollingCountsWhenPolling) {
  PredictionMetrics metrics;
  BusyPollCounts counts;
  metrics.ReportBusyPolling(&counts);
  counts.caught = 7;
  counts.missed = 2;
  const std::string text = metrics.Render(HealthReport());
  EXPECT_NE(text.find("# TYPE cog_runner_frame_polls_total counter\n"
                      "cog_runner_frame_polls_total{result=\"caught\"} 7\n"
                      "cog_runner_frame_polls_total{result=\"missed\"} 2\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cog
