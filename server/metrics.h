// PredictionMetrics: counters for GET /metrics, in the Prometheus text
// exposition format (version 0.0.4). Debian packages no Prometheus client for
// C++; the format is a few lines of text, written here.
//
// Thread-safe. The core reports each prediction's end; Render adds the current
// health from a HealthReport.
#ifndef COG_SERVER_METRICS_H_
#define COG_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/prediction.h"

namespace cog {

struct BusyPollCounts;
struct HealthReport;

// Webhooks the sender dropped (--webhook-backlog-bytes), for GET /metrics.
struct WebhookCounts {
  std::atomic<uint64_t> dropped{0};
};

class PredictionMetrics {
 public:
  // Counts a prediction that ended (status terminal, times set).
  void Observe(const Prediction& prediction);
  std::string Render(const HealthReport& health) const;
  // Renders these counts too (not owned; they outlive this).
  void ReportBusyPolling(const BusyPollCounts* counts) { busy_poll_ = counts; }
  void ReportWebhooks(const WebhookCounts* counts) { webhooks_ = counts; }

 private:
  static constexpr std::array<double, 15> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                      2.5,   5,    10,    30,    60,   120, 300};
  mutable absl::Mutex mu_;
  // [kind][status]: kind predict/train; status succeeded/failed/canceled.
  uint64_t ended_[2][3] ABSL_GUARDED_BY(mu_) = {};
  uint64_t buckets_[kBuckets.size()] ABSL_GUARDED_BY(mu_) = {};
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  double sum_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  const BusyPollCounts* busy_poll_ = nullptr;
  const WebhookCounts* webhooks_ = nullptr;
};

}  // namespace cog

#endif  // COG_SERVER_METRICS_H_
