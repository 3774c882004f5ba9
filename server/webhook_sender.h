// WebhookSender: delivers a prediction's webhooks (Cog's `webhook` URL) with
// libcurl, on its own threads, so that sending never blocks a prediction or a
// request thread.
//
// * One prediction's webhooks go out in order, one at a time; different
//   predictions' in parallel (Options::workers).
// * `logs` updates are coalesced: at most one per Options::logs_interval, and
//   the one sent carries the latest state; a `completed` behind queued `logs`
//   supersedes them. `start`, `output` and `completed` are never dropped.
// * A `completed` webhook is retried with exponential backoff on connection
//   errors, 429 and 5xx; the others are tried once.
//
// Thread-safe. Destroying it abandons what is still queued; call Drain first.
#ifndef COG_SERVER_WEBHOOK_SENDER_H_
#define COG_SERVER_WEBHOOK_SENDER_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/prediction.h"
#include "server/prediction_service.h"

namespace cog {

class WebhookSender {
 public:
  struct Options {
    int workers = 4;
    absl::Duration logs_interval = absl::Milliseconds(500);  // COG_THROTTLE_RESPONSE_INTERVAL
    int terminal_attempts = 12;
    absl::Duration first_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(10);
    absl::Duration request_timeout = absl::Seconds(10);
    std::string user_agent;  // "cog-server/<version>"
    std::string auth_token;  // WEBHOOK_AUTH_TOKEN: "Authorization: Bearer <token>"
  };

  struct Webhook {
    std::string url;
    WebhookEvent event = WebhookEvent::kStart;
    std::string body;                  // the prediction as JSON
    std::vector<std::string> headers;  // extra "Name: value" lines (traceparent, ...)
  };

  explicit WebhookSender(Options options);
  ~WebhookSender();
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void Send(const std::string& prediction_id, Webhook webhook);

  // Waits until everything queued has gone out (or given up), at most `timeout`.
  bool Drain(absl::Duration timeout);

  // The observer that turns a request's prediction events into its webhooks,
  // filtered by webhook_events_filter. `sender` must outlive it.
  static std::unique_ptr<PredictionObserver> ObserverFor(WebhookSender* sender,
                                                         const PredictionRequest& request);

 private:
  struct Queue {
    std::deque<Webhook> pending;
    bool busy = false;  // a worker is delivering this prediction's front webhook
    absl::Time next_logs = absl::InfinitePast();
  };

  void Work();
  // Delivers once; true when the receiver accepted it or retrying cannot help.
  bool Deliver(const Webhook& webhook, bool* retryable);

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Queue> queues_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);  // predictions with work and no worker
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace cog

#endif  // COG_SERVER_WEBHOOK_SENDER_H_
