#include "server/webhook_sender.h"

#include <curl/curl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/http_transfer.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

size_t DiscardBody(char*, size_t size, size_t count, void*) { return size * count; }

class WebhookObserver final : public PredictionObserver {
 public:
  WebhookObserver(WebhookSender* sender, const PredictionRequest& request)
      : sender_(sender), url_(request.webhook) {
    for (WebhookEvent event : request.webhook_events_filter) wanted_[static_cast<int>(event)] = true;
    if (request.webhook_events_filter.empty()) std::fill(std::begin(wanted_), std::end(wanted_), true);
    if (!request.traceparent.empty()) headers_.push_back("traceparent: " + request.traceparent);
    if (!request.tracestate.empty()) headers_.push_back("tracestate: " + request.tracestate);
  }

  void OnStarted(const Prediction& prediction) override { Emit(WebhookEvent::kStart, prediction); }
  void OnOutput(const Prediction& prediction, const Json&) override {
    Emit(WebhookEvent::kOutput, prediction);
  }
  void OnLog(const Prediction& prediction, absl::string_view) override {
    Emit(WebhookEvent::kLogs, prediction);
  }
  void OnCompleted(const Prediction& prediction) override {
    Emit(WebhookEvent::kCompleted, prediction);
  }

 private:
  void Emit(WebhookEvent event, const Prediction& prediction) {
    if (!wanted_[static_cast<int>(event)]) return;
    sender_->Send(prediction.id, {url_, event, PredictionToJson(prediction).dump(), headers_});
  }

  WebhookSender* const sender_;
  const std::string url_;
  bool wanted_[4] = {false, false, false, false};
  std::vector<std::string> headers_;
};

}  // namespace

std::unique_ptr<PredictionObserver> WebhookSender::ObserverFor(WebhookSender* sender,
                                                               const PredictionRequest& request) {
  return std::make_unique<WebhookObserver>(sender, request);
}

WebhookSender::WebhookSender(Options options) : options_(std::move(options)) {
  InitCurlOnce();
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { Work(); });
}

WebhookSender::~WebhookSender() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

void WebhookSender::Send(const std::string& prediction_id, Webhook webhook) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  Queue& queue = queues_[prediction_id];
  if (webhook.event == WebhookEvent::kLogs && !queue.pending.empty() &&
      queue.pending.back().event == WebhookEvent::kLogs) {
    queue.pending.back() = std::move(webhook);  // the latest state replaces the queued one
    return;
  }
  if (webhook.event == WebhookEvent::kCompleted) {
    // It carries every log line: queued logs updates have nothing more to say.
    while (!queue.pending.empty() && queue.pending.back().event == WebhookEvent::kLogs) {
      queue.pending.pop_back();
    }
  }
  queue.pending.push_back(std::move(webhook));
  if (!queue.busy && queue.pending.size() == 1) ready_.push_back(prediction_id);
}

bool WebhookSender::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return queues_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
}

void WebhookSender::Work() {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !ready_.empty(); };
    mu_.Await(absl::Condition(&has_work));
    if (stopping_) return;
    const std::string id = std::move(ready_.front());
    ready_.pop_front();
    Queue* queue = &queues_[id];
    queue->busy = true;
    while (!queue->pending.empty() && !stopping_) {
      // Throttle logs updates; what is sent after the wait is the latest state
      // (or a completed that superseded it).
      if (queue->pending.front().event == WebhookEvent::kLogs && absl::Now() < queue->next_logs) {
        auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
        mu_.AwaitWithDeadline(absl::Condition(&stop), queue->next_logs);
        queue = &queues_[id];
        continue;
      }
      Webhook webhook = std::move(queue->pending.front());
      queue->pending.pop_front();
      if (webhook.event == WebhookEvent::kLogs) {
        queue->next_logs = absl::Now() + options_.logs_interval;
      }
      const int attempts = webhook.event == WebhookEvent::kCompleted ? options_.terminal_attempts : 1;
      absl::Duration backoff = options_.first_backoff;
      for (int attempt = 1; attempt <= attempts; ++attempt) {
        bool retryable = false;
        mu_.Unlock();
        const bool delivered = Deliver(webhook, &retryable);
        mu_.Lock();
        if (delivered || !retryable || stopping_) break;
        if (attempt == attempts) {
          spdlog::error("webhook {} for prediction {} failed {} times; giving up", webhook.url, id,
                        attempts);
          break;
        }
        auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
        mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      queue = &queues_[id];  // rehashing may have moved it while unlocked
    }
    queue->busy = false;
    if (queue->pending.empty()) queues_.erase(id);
  }
}

bool WebhookSender::Deliver(const Webhook& webhook, bool* retryable) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    *retryable = true;
    return false;
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!options_.auth_token.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + options_.auth_token).c_str());
  }
  for (const std::string& header : webhook.headers) headers = curl_slist_append(headers, header.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(curl, CURLOPT_URL, webhook.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, webhook.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(webhook.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
  const CURLcode result = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (result != CURLE_OK) {
    spdlog::warn("webhook {}: {}", webhook.url, curl_easy_strerror(result));
    *retryable = true;
    return false;
  }
  if (status >= 200 && status < 300) return true;
  spdlog::warn("webhook {} answered {}", webhook.url, status);
  *retryable = status == 429 || status >= 500;
  return false;
}

}  // namespace cog
