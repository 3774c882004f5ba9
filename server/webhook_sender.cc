#include "server/webhook_sender.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/http_transfer.h"
#include "server/json.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

size_t DiscardBody(char*, size_t size, size_t count, void*) { return size * count; }

// How long the sending thread sleeps at most when nothing wakes it: a bound
// on what a missed wake-up could cost, not a poll interval anything relies on.
constexpr absl::Duration kMaxSleep = absl::Seconds(1);

class WebhookObserver final : public PredictionObserver {
 public:
  WebhookObserver(WebhookSender* sender, const PredictionRequest& request,
                  WebhookSender::SnapshotSource snapshot)
      : sender_(sender), url_(request.webhook), snapshot_(std::move(snapshot)) {
    for (WebhookEvent event : request.webhook_events_filter) wanted_[static_cast<int>(event)] = true;
    if (request.webhook_events_filter.empty()) std::fill(std::begin(wanted_), std::end(wanted_), true);
    AddHeader("traceparent", request.traceparent);
    AddHeader("tracestate", request.tracestate);
  }

  void OnStarted(const Prediction& prediction) override { EmitNow(WebhookEvent::kStart, prediction); }
  void OnOutput(const Prediction& prediction, const Json&) override {
    EmitNow(WebhookEvent::kOutput, prediction);
  }
  void OnLog(const Prediction& prediction, absl::string_view) override {
    if (!wanted_[static_cast<int>(WebhookEvent::kLogs)]) return;
    if (!snapshot_) {
      EmitNow(WebhookEvent::kLogs, prediction);
      return;
    }
    // Most of these are coalesced away before they are sent: render only the
    // one that goes, from the prediction as it is then.
    WebhookSender::Webhook webhook{url_, WebhookEvent::kLogs, "", nullptr, headers_};
    webhook.render = [snapshot = snapshot_, id = prediction.id]() -> absl::StatusOr<std::string> {
      absl::StatusOr<Prediction> now = snapshot(id);
      if (!now.ok()) return now.status();
      return PredictionJsonText(*now);
    };
    sender_->Send(prediction.id, std::move(webhook));
  }
  void OnCompleted(const Prediction& prediction) override {
    EmitNow(WebhookEvent::kCompleted, prediction);
  }
  bool WantsEachOutput() const override { return wanted_[static_cast<int>(WebhookEvent::kOutput)]; }

 private:
  // The prediction as it is at this event (it is valid only during the call).
  void EmitNow(WebhookEvent event, const Prediction& prediction) {
    if (!wanted_[static_cast<int>(event)]) return;
    sender_->Send(prediction.id,
                  {url_, event, PredictionJsonText(prediction), nullptr, headers_});
  }

  void AddHeader(absl::string_view name, const std::string& value) {
    if (value.empty()) return;
    std::string line = absl::StrCat(name, ": ", value);
    if (absl::Status safe = CheckHeaderLine(line); !safe.ok()) {
      spdlog::warn("webhook {}: {}", RedactUrl(url_), std::string(safe.message()));
      return;
    }
    headers_.push_back(std::move(line));
  }

  WebhookSender* const sender_;
  const std::string url_;
  const WebhookSender::SnapshotSource snapshot_;
  bool wanted_[4] = {false, false, false, false};
  std::vector<std::string> headers_;
};

}  // namespace

// One webhook on its way: its attempts, and the curl handle of the current one.
struct WebhookSender::Transfer {
  Transfer(std::string id, Webhook hook, absl::Duration first_backoff)
      : prediction_id(std::move(id)), webhook(std::move(hook)), backoff(first_backoff) {}
  ~Transfer() { curl_slist_free_all(headers); }  // after ReleaseHandle

  // Takes the handle off `multi` and frees it.
  void ReleaseHandle(CURLM* multi) {
    if (easy == nullptr) return;
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    easy = nullptr;
  }

  const std::string prediction_id;
  Webhook webhook;
  int attempt = 0;  // attempts started
  absl::Duration backoff;
  absl::Time retry_at = absl::InfinitePast();
  std::unique_ptr<OutboundGuard> guard;  // one per attempt: its refusal is that attempt's
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = "";
};

std::unique_ptr<PredictionObserver> WebhookSender::ObserverFor(WebhookSender* sender,
                                                               const PredictionRequest& request,
                                                               SnapshotSource snapshot) {
  return std::make_unique<WebhookObserver>(sender, request, std::move(snapshot));
}

WebhookSender::WebhookSender(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

WebhookSender::~WebhookSender() {
  Stop();
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
}

void WebhookSender::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
  }
  if (thread_.joinable()) thread_.join();
}

bool WebhookSender::Admit(Webhook& webhook, const std::string& prediction_id) {
  // A quarter is kept for completed webhooks: a prediction's earlier ones
  // must not take the room of the one that says how it ended.
  const uint64_t bound = webhook.event == WebhookEvent::kCompleted
                             ? options_.max_backlog_bytes
                             : options_.max_backlog_bytes - options_.max_backlog_bytes / 4;
  if (backlog_bytes_ > 0 && backlog_bytes_ + webhook.body.size() > bound) {
    if (options_.counts != nullptr) options_.counts->dropped.fetch_add(1, std::memory_order_relaxed);
    if (const int64_t now = absl::ToUnixSeconds(absl::Now()); now - last_backlog_warning_ >= 10) {
      last_backlog_warning_ = now;
      spdlog::error("{} webhook {} for prediction {} dropped ({} bytes): {} bytes of webhooks are "
                    "waiting for receivers that have not taken them (--webhook-backlog-bytes); "
                    "the prediction is still there for GET /predictions/{} while the server keeps "
                    "it (this message: at most every 10 s)",
                    std::string(WebhookEventName(webhook.event)), RedactUrl(webhook.url), prediction_id, webhook.body.size(),
                    backlog_bytes_, prediction_id);
    }
    return false;
  }
  webhook.counted_bytes += webhook.body.size();
  backlog_bytes_ += webhook.body.size();
  return true;
}

void WebhookSender::Send(const std::string& prediction_id, Webhook webhook) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || !Admit(webhook, prediction_id)) return;
  Queue& queue = queues_[prediction_id];
  if (webhook.event == WebhookEvent::kLogs && !queue.pending.empty() &&
      queue.pending.back().event == WebhookEvent::kLogs) {
    Dropped(queue.pending.back());
    ++outstanding_;  // Dropped counted it out; the new one takes its place
    queue.pending.back() = std::move(webhook);  // the latest state replaces the queued one
    return;
  }
  if (webhook.event == WebhookEvent::kCompleted) {
    // It carries every log line: queued logs updates have nothing more to say.
    while (!queue.pending.empty() && queue.pending.back().event == WebhookEvent::kLogs) {
      Dropped(queue.pending.back());
      queue.pending.pop_back();
    }
  }
  queue.pending.push_back(std::move(webhook));
  ++outstanding_;
  // A queue with a webhook in flight moves on when that one is finished.
  if (!queue.in_flight && multi_ != nullptr) curl_multi_wakeup(multi_);
}

uint64_t WebhookSender::backlog_bytes() {
  absl::MutexLock lock(&mu_);
  return backlog_bytes_;
}

bool WebhookSender::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto sent = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&sent), timeout);
}

void WebhookSender::PreferCompleted() {
  absl::MutexLock lock(&mu_);
  prefer_completed_ = true;
  if (multi_ != nullptr) curl_multi_wakeup(multi_);
}

void WebhookSender::Dropped(const Webhook& webhook) {
  backlog_bytes_ -= std::min(backlog_bytes_, webhook.counted_bytes);
  --outstanding_;
}

std::vector<std::unique_ptr<WebhookSender::Transfer>> WebhookSender::TakeStartable(absl::Time now,
                                                                                  absl::Time* wake,
                                                                                  size_t room) {
  std::vector<std::unique_ptr<Transfer>> startable;
  for (auto it = queues_.begin(); it != queues_.end();) {
    Queue& queue = it->second;
    if (queue.in_flight) {
      ++it;
      continue;
    }
    // A logs update with a webhook behind it: that one was made later and
    // carries the same lines (and rendering now could show a later state
    // than the one it shows, out of order).
    while (queue.pending.size() > 1 && queue.pending.front().event == WebhookEvent::kLogs) {
      Dropped(queue.pending.front());
      queue.pending.pop_front();
    }
    if (prefer_completed_ && !queue.pending.empty() &&
        queue.pending.back().event == WebhookEvent::kCompleted) {
      // Every one, not only those at the front (a start may still wait there).
      size_t dropped = 0;
      std::deque<Webhook> kept;
      for (Webhook& webhook : queue.pending) {
        if (webhook.event == WebhookEvent::kOutput || webhook.event == WebhookEvent::kLogs) {
          Dropped(webhook);
          ++dropped;
        } else {
          kept.push_back(std::move(webhook));
        }
      }
      queue.pending.swap(kept);
      if (dropped > 0) {
        spdlog::info("shutting down: {} output or logs webhooks of prediction {} left out, so that its "
                     "completed webhook goes out first",
                     dropped, it->first);
      }
    }
    if (queue.pending.empty()) {
      // Kept only to remember its logs throttle.
      if (queue.next_logs <= now) {
        queues_.erase(it++);
      } else {
        *wake = std::min(*wake, queue.next_logs);
        ++it;
      }
      continue;
    }
    if (startable.size() >= room) {  // the rest wait for transfers to end
      ++it;
      continue;
    }
    Webhook& front = queue.pending.front();
    if (front.event == WebhookEvent::kLogs) {
      if (now < queue.next_logs) {
        *wake = std::min(*wake, queue.next_logs);
        ++it;
        continue;
      }
      queue.next_logs = now + options_.logs_interval;
    }
    if (front.event == WebhookEvent::kCompleted) queue.next_logs = absl::InfinitePast();
    queue.in_flight = true;
    startable.push_back(std::make_unique<Transfer>(it->first, std::move(front), options_.first_backoff));
    queue.pending.pop_front();
    ++it;
  }
  return startable;
}

void WebhookSender::Finished(const Transfer& transfer) {
  absl::MutexLock lock(&mu_);
  Dropped(transfer.webhook);  // sent or given up: out of the backlog
  auto it = queues_.find(transfer.prediction_id);
  if (it == queues_.end()) return;
  it->second.in_flight = false;
  if (it->second.pending.empty() && it->second.next_logs <= absl::Now()) queues_.erase(it);
}

void WebhookSender::Loop() {
  {
    absl::MutexLock lock(&mu_);
    auto first = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || outstanding_ > 0; };
    mu_.Await(absl::Condition(&first));
    if (stopping_) return;
  }
  InitCurlOnce();
  CURLM* const multi = curl_multi_init();
  {
    absl::MutexLock lock(&mu_);
    if (multi == nullptr) {
      // Nothing can go: what is queued and what comes is dropped, and Drain
      // does not wait for it.
      spdlog::error("webhooks cannot be sent: libcurl could not start (out of memory?)");
      stopping_ = true;
      queues_.clear();
      outstanding_ = 0;
      backlog_bytes_ = 0;
      return;
    }
    multi_ = multi;
  }
  // Transfers on multi_, by their handle; transfers waiting for their retry.
  absl::flat_hash_map<CURL*, std::unique_ptr<Transfer>> running;
  std::vector<std::unique_ptr<Transfer>> waiting;
  while (true) {
    const absl::Time now = absl::Now();
    absl::Time wake = now + kMaxSleep;
    std::vector<std::unique_ptr<Transfer>> starting;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      // Those waiting for their next attempt keep their place: they start
      // again whatever the room.
      const size_t busy = running.size() + waiting.size();
      starting = TakeStartable(now, &wake,
                               options_.max_transfers > busy ? options_.max_transfers - busy : 0);
    }
    for (auto it = waiting.begin(); it != waiting.end();) {
      if ((*it)->retry_at <= now) {
        starting.push_back(std::move(*it));
        it = waiting.erase(it);
      } else {
        wake = std::min(wake, (*it)->retry_at);
        ++it;
      }
    }
    bool finished_any = false;
    for (std::unique_ptr<Transfer>& transfer : starting) {
      if (StartAttempt(transfer.get())) {
        CURL* easy = transfer->easy;
        running[easy] = std::move(transfer);
      } else {
        Finished(*transfer);
        finished_any = true;
      }
    }

    int still_running = 0;
    curl_multi_perform(multi_, &still_running);
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      // `message` does not outlive the handle's removal: read it first.
      CURL* const easy = message->easy_handle;
      const CURLcode code = message->data.result;
      auto found = running.find(easy);
      if (found == running.end()) continue;
      std::unique_ptr<Transfer> transfer = std::move(found->second);
      running.erase(found);
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      transfer->ReleaseHandle(multi_);
      if (AttemptEnded(transfer.get(), code, status)) {
        Finished(*transfer);
        finished_any = true;
      } else {
        wake = std::min(wake, transfer->retry_at);
        waiting.push_back(std::move(transfer));
      }
    }

    // A finished webhook lets its prediction's next one go: look again now.
    const int64_t sleep_ms =
        finished_any ? 0 : std::clamp<int64_t>(absl::ToInt64Milliseconds(wake - absl::Now()) + 1, 0,
                                               absl::ToInt64Milliseconds(kMaxSleep));
    curl_multi_poll(multi_, nullptr, 0, static_cast<int>(sleep_ms), nullptr);
  }
  // Stopping: what is still on its way is abandoned.
  for (auto& [easy, transfer] : running) transfer->ReleaseHandle(multi_);
}

bool WebhookSender::StartAttempt(Transfer* transfer) {
  Webhook& webhook = transfer->webhook;
  if (transfer->attempt == 0) {
    if (webhook.render) {
      absl::StatusOr<std::string> body = webhook.render();
      if (!body.ok()) return false;  // the prediction ended: its completed webhook follows
      webhook.body = *std::move(body);
      webhook.render = nullptr;
      // Held from now until it is finished, like a body Send counted, and
      // bounded as those are (it is the whole prediction, input included).
      absl::MutexLock lock(&mu_);
      if (!Admit(webhook, transfer->prediction_id)) return false;
    }
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!options_.auth_token.empty()) {
      const std::string line = "Authorization: Bearer " + options_.auth_token;
      if (CheckHeaderLine(line).ok()) {
        headers = curl_slist_append(headers, line.c_str());
      } else {
        spdlog::warn("WEBHOOK_AUTH_TOKEN contains CR, LF or NUL; not sent");
      }
    }
    for (const std::string& header : webhook.headers) {
      if (CheckHeaderLine(header).ok()) headers = curl_slist_append(headers, header.c_str());
    }
    transfer->headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  }
  ++transfer->attempt;
  CURL* easy = curl_easy_init();
  if (easy == nullptr) {
    spdlog::error("webhook {} for prediction {}: libcurl could not make a handle", RedactUrl(webhook.url),
                  transfer->prediction_id);
    return false;
  }
  transfer->guard = std::make_unique<OutboundGuard>(&options_.outbound);
  transfer->guard->ApplyTo(easy);
  transfer->error[0] = '\0';
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
  curl_easy_setopt(easy, CURLOPT_URL, webhook.url.c_str());
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, webhook.body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(webhook.body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, DiscardBody);
  if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
    curl_easy_cleanup(easy);
    spdlog::error("webhook {} for prediction {}: libcurl could not start it", RedactUrl(webhook.url),
                  transfer->prediction_id);
    return false;
  }
  transfer->easy = easy;
  return true;
}

bool WebhookSender::AttemptEnded(Transfer* transfer, CURLcode code, long status) {
  const Webhook& webhook = transfer->webhook;
  bool retryable = false;
  if (code != CURLE_OK) {
    const bool refused = code == CURLE_COULDNT_CONNECT && !transfer->guard->refusal().empty();
    const std::string why = refused                      ? transfer->guard->refusal()
                            : transfer->error[0] != '\0' ? std::string(transfer->error)
                                                         : std::string(curl_easy_strerror(code));
    spdlog::warn("webhook {} for prediction {}: {}", RedactUrl(webhook.url), transfer->prediction_id, why);
    // Neither a refused address nor a URL curl will not send to changes on a retry.
    retryable = !refused && code != CURLE_UNSUPPORTED_PROTOCOL && code != CURLE_URL_MALFORMAT;
  } else if (status >= 200 && status < 300) {
    return true;
  } else {
    spdlog::warn("webhook {} for prediction {} answered {}", RedactUrl(webhook.url), transfer->prediction_id,
                 status);
    retryable = status == 429 || status >= 500;
  }
  const int attempts = webhook.event == WebhookEvent::kCompleted ? options_.terminal_attempts : 1;
  if (!retryable) return true;
  if (transfer->attempt >= attempts) {
    if (attempts > 1) {
      spdlog::error("webhook {} for prediction {} failed {} times; giving up", RedactUrl(webhook.url),
                    transfer->prediction_id, attempts);
    }
    return true;
  }
  transfer->retry_at = absl::Now() + transfer->backoff;
  transfer->backoff = std::min(transfer->backoff * 2, options_.max_backoff);
  return false;
}

}  // namespace cog
