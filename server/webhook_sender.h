// WebhookSender: delivers a prediction's webhooks (Cog's `webhook` URL) with
// libcurl, on a thread of its own, so that sending never blocks a prediction or
// a request thread.
//
// * One thread drives every transfer at once (curl's multi interface), each
//   with its own timeout: a destination that accepts and never answers holds
//   only its own prediction's webhooks, never another's.
// * One prediction's webhooks go out in order, one at a time.
// * `logs` updates are coalesced: at most one per Options::logs_interval. They
//   are queued as markers and rendered when sent, from the prediction as it is
//   then (Webhook::render), so a burst of log lines costs one rendering, not
//   one per line; a logs update with any webhook queued behind it is dropped,
//   as that one, made later, carries the same lines. `start`, `output` and
//   `completed` are never dropped.
// * A `completed` webhook is retried with exponential backoff on connection
//   errors, 429 and 5xx; the others are tried once. A connection the outbound
//   policy refuses is not retried.
// * Every request goes through OutboundGuard: http and https only, and only to
//   addresses Options::outbound allows.
//
// Thread-safe. Stop (or destruction) abandons what is still queued; call Drain
// first.
#ifndef COG_SERVER_WEBHOOK_SENDER_H_
#define COG_SERVER_WEBHOOK_SENDER_H_

#include <curl/curl.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "server/outbound_policy.h"
#include "server/prediction.h"
#include "server/prediction_service.h"

namespace cog {

class WebhookSender {
 public:
  struct Options {
    absl::Duration logs_interval = absl::Milliseconds(500);  // COG_THROTTLE_RESPONSE_INTERVAL
    int terminal_attempts = 12;
    absl::Duration first_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(10);
    // For each attempt, from the first byte sent (connecting included) to the
    // answer's end.
    absl::Duration request_timeout = absl::Seconds(10);
    std::string user_agent;  // "cog-server/<version>"
    std::string auth_token;  // WEBHOOK_AUTH_TOKEN: "Authorization: Bearer <token>"
    OutboundPolicy outbound;  // --outbound-deny-cidrs
    // Bodies of webhooks queued or on their way, in all, at most
    // (--webhook-backlog-bytes): receivers that do not answer (each
    // completed webhook is retried for minutes) must not take the server's
    // memory. Past it a new webhook is dropped, said in the server's log;
    // the prediction is still there for GET while the store keeps it. The
    // last quarter is for completed webhooks only.
    uint64_t max_backlog_bytes = 128 << 20;
    // Transfers on their way at once, at most (each holds a connection and
    // a descriptor); the others wait in their queues.
    size_t max_transfers = 512;
    // Counts what is dropped, for GET /metrics; may be null, else outlives the sender.
    WebhookCounts* counts = nullptr;
  };

  struct Webhook {
    std::string url;
    WebhookEvent event = WebhookEvent::kStart;
    // The prediction as JSON; when `render` is set, it is made by render()
    // (on the sender's thread, without its lock) when the webhook is sent. A
    // render() that fails means there is nothing to send any more: the
    // prediction has ended, and its completed webhook follows.
    std::string body;
    std::function<absl::StatusOr<std::string>()> render;
    std::vector<std::string> headers;  // extra "Name: value" lines (traceparent, ...)
    uint64_t counted_bytes = 0;  // what Send counted of it in the backlog
  };

  // The state of a running prediction now (PredictionService::Get); NotFound
  // once it has ended.
  using SnapshotSource = std::function<absl::StatusOr<Prediction>(const std::string& id)>;

  explicit WebhookSender(Options options);
  ~WebhookSender();  // Stop()
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void Send(const std::string& prediction_id, Webhook webhook);

  // Waits until everything queued has gone out (or given up), at most `timeout`.
  bool Drain(absl::Duration timeout);

  // At shutdown, before Drain: from now on the `output` and `logs` webhooks
  // queued ahead of their prediction's `completed` one are dropped, so that
  // it, which says all they say, goes out within the drain instead of
  // waiting behind them (200 outputs to a receiver taking 0.1 s each lost
  // the completed webhook of a prediction that had succeeded).
  void PreferCompleted();

  // Bytes of the bodies queued or on their way now (Options::max_backlog_bytes).
  uint64_t backlog_bytes();

  // Abandons what is still queued or being sent; once it returns, nothing is
  // sent and no render() is called any more (so what they use may go).
  void Stop();

  // The observer that turns a request's prediction events into its webhooks,
  // filtered by webhook_events_filter. `start`, `output` and `completed`
  // bodies are rendered at the event; `logs` ones when sent, from
  // `snapshot`. `sender` must outlive the observer; `snapshot` must stay
  // callable until sender->Stop().
  static std::unique_ptr<PredictionObserver> ObserverFor(WebhookSender* sender,
                                                         const PredictionRequest& request,
                                                         SnapshotSource snapshot);

 private:
  struct Queue {
    std::deque<Webhook> pending;
    bool in_flight = false;  // its front webhook was taken by the sending thread
    absl::Time next_logs = absl::InfinitePast();
  };
  struct Transfer;  // one webhook on its way, with its attempts (webhook_sender.cc)

  // The sending thread: starts what may start, drives curl, finishes what
  // ended, sleeps until a socket, a timer or Send wakes it.
  void Loop();
  // Takes every queue's front webhook that may go now; `wake` becomes the
  // earliest time a throttled one may.
  // `room` more may start at most (Options::max_transfers).
  std::vector<std::unique_ptr<Transfer>> TakeStartable(absl::Time now, absl::Time* wake, size_t room)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts `webhook`'s body into the backlog, or drops it (counted, said in
  // the log at most every 10 s) when it does not fit (Options::max_backlog_bytes).
  bool Admit(Webhook& webhook, const std::string& prediction_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A queued webhook leaves the queue without being sent.
  void Dropped(const Webhook& webhook) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts an attempt of `transfer` on multi_; false when there is nothing
  // to send (render() failed) or curl could not take it.
  bool StartAttempt(Transfer* transfer);
  // An attempt ended with `code` and HTTP `status`: true when it is over
  // (delivered, or retrying cannot help or is spent), else the next attempt
  // is scheduled.
  bool AttemptEnded(Transfer* transfer, CURLcode code, long status);
  // The prediction's next webhook may go.
  void Finished(const Transfer& transfer) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  // Made by the sending thread when the first webhook comes: libcurl's global
  // set-up (OpenSSL's, ~2.3 MiB of RSS) waits until a server sends one. Set
  // under mu_ by that thread and driven by it only; curl_multi_wakeup from
  // any thread under mu_.
  CURLM* multi_ = nullptr;
  absl::Mutex mu_;
  // A queue stays after its last webhook while its logs throttle runs.
  absl::flat_hash_map<std::string, Queue> queues_ ABSL_GUARDED_BY(mu_);
  // Webhooks queued or on their way (what Drain waits for).
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t backlog_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their bodies (Options::max_backlog_bytes)
  int64_t last_backlog_warning_ ABSL_GUARDED_BY(mu_) = 0;  // Unix seconds
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool prefer_completed_ ABSL_GUARDED_BY(mu_) = false;  // PreferCompleted
  std::thread thread_;
};

}  // namespace cog

#endif  // COG_SERVER_WEBHOOK_SENDER_H_
