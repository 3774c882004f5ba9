#include "gateway/rest_gateway.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gateway/front_door.h"
#include "gateway/http_framing.h"
#include "gateway/http_status.h"
#include "server/input_schema.h"
#include "server/json.h"
#include "server/log_backlog.h"
#include "server/version.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

constexpr char kJson[] = "application/json";

// The body is moved, not copied (1 MiB and more for a large string or a
// data: URI).
void ReplyText(HttpResponse& response, int status, std::string body) {
  response.Reply(status, kJson, std::move(body));
}

void Reply(HttpResponse& response, int status, const Json& body) {
  ReplyText(response, status, DumpJson(body));
}

void ReplyError(HttpResponse& response, const absl::Status& status) {
  Reply(response, HttpStatusFor(status), ErrorBody(status));
}

Json SetupJson(const SetupReport& setup) {
  Json out = Json::object();
  if (setup.started_at) out["started_at"] = FormatTimestamp(*setup.started_at);
  if (setup.completed_at) out["completed_at"] = FormatTimestamp(*setup.completed_at);
  if (setup.started_at || !setup.logs.empty()) out["logs"] = setup.logs;
  if (!setup.status.empty()) out["status"] = setup.status;
  return out;
}

Json HealthJson(const HealthReport& report) {
  Json out = Json::object();
  out["status"] = HealthStatusName(report.status);
  out["setup"] = SetupJson(report.setup);
  out["concurrency"] = Json{{"max", report.concurrency_max}, {"current", report.concurrency_current}};
  if (!report.user_healthcheck_error.empty()) {
    out["user_healthcheck_error"] = report.user_healthcheck_error;
  }
  Json version = Json::object();
  for (const auto& [key, value] : report.version) {
    if (!value.empty()) version[key] = value;
  }
  out["version"] = std::move(version);
  return out;
}

// The headers a prediction request reads, each the first of its name, or
// null, found in one pass over the fields.
// Whether a Prefer field's comma-separated list asks for `preference`
// ("respond-async"; "wait=5", "return=minimal; x" name others).
bool Prefers(absl::string_view field, absl::string_view preference) {
  for (absl::string_view element : absl::StrSplit(field, ',')) {
    element = absl::StripAsciiWhitespace(element.substr(0, element.find_first_of("=;")));
    if (absl::EqualsIgnoreCase(element, preference)) return true;
  }
  return false;
}

// Whether an Accept field's list accepts `media` ("text/event-stream"): named
// with a q above 0.
bool Accepts(absl::string_view field, absl::string_view media) {
  for (absl::string_view range : absl::StrSplit(field, ',')) {
    const absl::InlinedVector<absl::string_view, 4> parts = absl::StrSplit(range, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]), media)) continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view parameter = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&parameter, "q=") || absl::ConsumePrefix(&parameter, "Q=")) {
        if (!absl::SimpleAtod(parameter, &q)) q = 1;
      }
    }
    if (q > 0) return true;
  }
  return false;
}

struct PredictionHeaders {
  const std::string* content_type = nullptr;
  const std::string* traceparent = nullptr;
  const std::string* tracestate = nullptr;
  bool respond_async = false;  // Prefer: respond-async, in any Prefer field
  bool event_stream = false;   // Accept: text/event-stream (q > 0), in any Accept field

  explicit PredictionHeaders(const std::vector<std::pair<std::string, std::string>>& headers) {
    const std::pair<absl::string_view, const std::string**> wanted[] = {
        {"Content-Type", &content_type}, {"traceparent", &traceparent}, {"tracestate", &tracestate}};
    for (const auto& [name, value] : headers) {
      for (const auto& [want, slot] : wanted) {
        if (*slot == nullptr && absl::EqualsIgnoreCase(name, want)) *slot = &value;
      }
      if (absl::EqualsIgnoreCase(name, "Prefer")) respond_async = respond_async || Prefers(value, "respond-async");
      if (absl::EqualsIgnoreCase(name, "Accept")) event_stream = event_stream || Accepts(value, "text/event-stream");
    }
  }

  static std::string Value(const std::string* value) { return value != nullptr ? *value : std::string(); }
};

// A JSON body, or the 415 / 422 a Cog client expects instead.
absl::StatusOr<Json> ParseBody(const HttpRequest& request, const std::string* content_type,
                               int max_depth, uint64_t max_values) {
  if (content_type != nullptr) {
    const std::string type = absl::AsciiStrToLower(*content_type);
    const std::string media = std::string(absl::StripAsciiWhitespace(type.substr(0, type.find(';'))));
    if (media != "application/json") {
      return absl::Status(absl::StatusCode::kFailedPrecondition,
                          absl::StrCat("Unsupported Content-Type '", media,
                                       "': send the request body as application/json"));
    }
  }
  if (absl::StripAsciiWhitespace(request.body).empty()) return Json::object();
  // The front door reserved room past the body (kJsonPadding): parsed in place.
  absl::StatusOr<Json> parsed =
      ParseJson(request.body, max_depth, request.body.capacity() - request.body.size(), max_values);
  if (!parsed.ok()) {
    Json error = Json::object();
    error["type"] = "json_invalid";
    error["loc"] = Json::array({"body", JsonErrorOffset(parsed.status()).value_or(0)});
    error["msg"] = "JSON decode error";
    error["input"] = Json::object();
    error["ctx"] = Json{{"error", std::string(parsed.status().message())}};
    return InvalidInputError(Json::array({error}));
  }
  Json body = *std::move(parsed);
  if (!body.is_object()) {
    Json error = Json::object();
    error["type"] = "model_attributes_type";
    error["loc"] = Json::array({"body"});
    error["msg"] = "Input should be a valid dictionary or object to extract fields from";
    error["input"] = body;
    return InvalidInputError(Json::array({error}));
  }
  return body;
}

absl::StatusOr<PredictionRequest> ToRequest(Json& body, PredictionKind kind,
                                            const std::string& path_id) {
  PredictionRequest request;
  request.kind = kind;
  Json errors = Json::array();
  if (body.contains("input") && !body["input"].is_null()) {
    if (!body["input"].is_object()) {
      errors.push_back(Json{{"type", "model_attributes_type"},
                            {"loc", Json::array({"body", "input"})},
                            {"msg", "Input should be a valid dictionary or object to extract fields from"},
                            {"input", body["input"]}});
    } else {
      request.input = std::move(body["input"]);  // a large input is not copied
    }
  }
  if (body.contains("id") && !body["id"].is_null()) {
    if (!body["id"].is_string()) {
      errors.push_back(Json{{"type", "string_type"},
                            {"loc", Json::array({"body", "id"})},
                            {"msg", "Input should be a valid string"},
                            {"input", body["id"]}});
    } else {
      request.id = body["id"].get<std::string>();
    }
  }
  if (!path_id.empty()) {
    if (!request.id.empty() && request.id != path_id) {
      errors.push_back(Json{{"loc", Json::array({"body", "id"})},
                            {"msg", "prediction ID must match the ID supplied in the URL"},
                            {"type", "value_error"}});
    }
    request.id = path_id;
  }
  // The request's own fields, of a wrong type: 422 as legacy Cog (pydantic)
  // answers, not ignored (a mistyped webhook meant no webhooks and no error).
  auto wrong = [&errors](const char* type, Json loc, const char* msg, const Json& input) {
    errors.push_back(Json{{"type", type}, {"loc", std::move(loc)}, {"msg", msg}, {"input", input}});
  };
  auto given = [&body](const char* name) { return body.contains(name) && !body[name].is_null(); };
  if (given("webhook")) {
    if (body["webhook"].is_string()) {
      request.webhook = body["webhook"].get<std::string>();
    } else {
      wrong("url_type", Json::array({"body", "webhook"}), "URL input should be a string or URL", body["webhook"]);
    }
  }
  if (given("webhook_events_filter") && !body["webhook_events_filter"].is_array()) {
    wrong("list_type", Json::array({"body", "webhook_events_filter"}), "Input should be a valid list",
          body["webhook_events_filter"]);
  } else if (given("webhook_events_filter")) {
    const Json& filter = body["webhook_events_filter"];
    for (size_t i = 0; i < filter.size(); ++i) {
      std::optional<WebhookEvent> event =
          filter[i].is_string() ? ParseWebhookEvent(filter[i].get<std::string>()) : std::nullopt;
      if (!event.has_value()) {
        const std::string expected = "'start', 'output', 'logs' or 'completed'";
        errors.push_back(Json{{"type", "enum"},
                              {"loc", Json::array({"body", "webhook_events_filter", i})},
                              {"msg", absl::StrCat("Input should be ", expected)},
                              {"input", filter[i]},
                              {"ctx", Json{{"expected", expected}}}});
        continue;
      }
      request.webhook_events_filter.push_back(*event);
    }
  }
  if (given("output_file_prefix")) {
    if (body["output_file_prefix"].is_string()) {
      request.output_file_prefix = body["output_file_prefix"].get<std::string>();
    } else {
      wrong("string_type", Json::array({"body", "output_file_prefix"}), "Input should be a valid string",
            body["output_file_prefix"]);
    }
  }
  if (given("created_at")) {
    const Json& value = body["created_at"];
    absl::Time created = absl::InfinitePast();
    std::string error;
    if (value.is_number()) {
      // Unix seconds, or milliseconds past 2e10, as pydantic reads a number.
      double seconds = value.get<double>();
      if (std::fabs(seconds) > 2e10) seconds /= 1000;
      if (std::isfinite(seconds) && std::fabs(seconds) < 1e12) {
        created = absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
      }
    } else if (value.is_string()) {
      if (!absl::ParseTime(absl::RFC3339_full, value.get<std::string>(), &created, &error)) {
        created = absl::InfinitePast();
      }
    }
    if (IsWritableTime(created)) {
      request.created_at = created;
    } else if (value.is_string() || value.is_number()) {
      wrong("datetime_parsing", Json::array({"body", "created_at"}),
            "Input should be a valid datetime: RFC 3339 (or Unix seconds) within years 0001 to 9999, "
            "such as 2025-01-31T12:00:00Z", value);
    } else {
      wrong("datetime_type", Json::array({"body", "created_at"}), "Input should be a valid datetime", value);
    }
  }
  if (given("context") && !body["context"].is_object()) {
    wrong("dict_type", Json::array({"body", "context"}), "Input should be a valid dictionary", body["context"]);
  } else if (given("context")) {
    for (const auto& [key, value] : body["context"].items()) {
      if (value.is_string()) {
        request.context[key] = value;
      } else {
        wrong("string_type", Json::array({"body", "context", key}), "Input should be a valid string", value);
      }
    }
  }
  if (!errors.empty()) return InvalidInputError(std::move(errors));
  return request;
}

// Whether the peer closed (or reset) the connection on `fd`. Bytes the client
// may have pipelined do not count: only the end of its side of the stream.
bool ClientHasGone(int fd) {
  pollfd check{fd, POLLRDHUP, 0};
  return poll(&check, 1, 0) > 0 && (check.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// An eventfd of the calling thread's own, kept for the thread's life (-1 if
// none could be made): a connection's thread parks on it and its client's
// socket while a sync prediction runs (RestGateway::HandlePredict).
int ThreadWakeFd() {
  struct WakeFd {
    const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ~WakeFd() {
      if (fd >= 0) ::close(fd);
    }
  };
  thread_local WakeFd wake;
  return wake.fd;
}

// A sync prediction's end, for the connection's thread that waits for it.
// The response body is rendered once, straight from the core's final state,
// and sent at once from the thread that learns of the end when the front door
// offers it (HttpRequest::early_answer), else by the waiting thread.
class SyncObserver final : public PredictionObserver {
 public:
  struct Result {
    absl::Notification done;
    std::string body;
  };
  // `early_answer` (may be null) is valid until `result` is notified: the
  // handler it belongs to waits for that. `wake_fd` (-1: none) is written when
  // the early answer leaves the connection's thread something to do.
  SyncObserver(std::shared_ptr<Result> result, EarlyAnswer* early_answer, int wake_fd)
      : result_(std::move(result)), early_answer_(early_answer), wake_fd_(wake_fd) {}
  void OnCompleted(const Prediction& prediction) override {
    if (early_answer_ != nullptr) {
      if (!early_answer_->Send(200, kJson, PredictionJsonText(prediction)) && wake_fd_ >= 0) {
        const uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof(one));
      }
    } else {
      result_->body = PredictionJsonText(prediction);
    }
    result_->done.Notify();
  }
  bool WantsEachOutput() const override { return false; }  // the client sees the end only

 private:
  std::shared_ptr<Result> result_;
  EarlyAnswer* const early_answer_;
  const int wake_fd_;
};

// Server-sent events of one prediction, rendered by the observer (on the
// thread that reads the runner). An event goes to the client from there at
// once when nothing is queued before it, the connection's thread is not
// writing and the socket takes it whole: a streamed token then costs no
// wake-up of the connection's thread (it sleeps until the end, a slow
// client or its periodic look at the client). Otherwise it is queued for the
// connection's thread, which writes in order: first what a direct write left
// (framed already), then the queue.
//
// Direct writes are rationed (a few at once, then one per kDirectInterval):
// events that come faster than that, a generator yielding as fast as it can,
// are left to the connection's thread, which writes them several to a send.
// Written one by one from here, 100 items back to back cost the server 15-25%
// more CPU than written in batches (each send to a loopback client runs its
// TCP receive path in the sender's thread); tokens of a model, milliseconds
// apart, go out one by one either way, each a wake-up less.
class EventStream {
 public:
  struct Batch {
    std::string rest;  // framed bytes a direct write left, to go first
    std::string text;  // events to frame and send
    bool ended = false;
    bool failed = false;  // a direct write found the client gone
  };

  explicit EventStream(size_t max_log_backlog) : logs_(max_log_backlog) {}

  // `data` appends the event's JSON (one line) to the string it is given.
  void Push(absl::string_view event, absl::FunctionRef<void(std::string*)> data, bool last = false) {
    absl::MutexLock lock(&mu_);
    PushNoteLocked();
    PushLocked(event, data, last);
  }

  // A log line, left out while too many wait for the client (LogBacklog).
  void PushLog(absl::string_view text) {
    absl::MutexLock lock(&mu_);
    if (!logs_.Admit(text.size())) return;
    PushNoteLocked();
    PushLocked("logs", [&](std::string* out) { AppendLog(text, out); }, false);
  }

  // A metric event, left out with logs while too many wait (LogBacklog).
  void PushMetric(absl::string_view name, const Json& value) {
    std::string data = "{\"name\":";
    AppendJsonString(name, &data);
    data.append(",\"value\":");
    AppendJson(value, &data);
    data.push_back('}');
    absl::MutexLock lock(&mu_);
    if (!logs_.AdmitMetric(data.size())) return;
    PushNoteLocked();
    PushLocked("metric", [&](std::string* out) { out->append(data); }, false);
  }

  // On the connection's thread: direct writes may use `writer` until Detach.
  void Attach(ResponseWriter* writer) {
    absl::MutexLock lock(&mu_);
    writer_ = writer;
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    writer_ = nullptr;
  }

  // Waits up to `timeout` for something to write or the end. What it returns
  // is the caller's to write before its next call: until then no direct
  // write happens (they would overtake it).
  Batch Take(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !pending_.empty() || !rest_.empty() || ended_ || failed_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    Batch batch{std::exchange(rest_, std::string()), std::exchange(pending_, std::string()), ended_,
                failed_};
    logs_.TakenAll();  // the connection's thread has them: one batch at a time
    writing_ = !batch.rest.empty() || !batch.text.empty();
    return batch;
  }

 private:
  static void AppendLog(absl::string_view text, std::string* out) {
    out->append("{\"text\":");
    AppendJsonString(text, out);
    out->push_back('}');
  }

  // The line saying that logs were left out, if they were.
  void PushNoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string note = logs_.TakeNote();
    if (!note.empty()) PushLocked("logs", [&](std::string* out) { AppendLog(note, out); }, false);
  }

  void PushLocked(absl::string_view event, absl::FunctionRef<void(std::string*)> data, bool last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool direct = writer_ != nullptr && !writing_ && rest_.empty() && pending_.empty() && !failed_ &&
                        TakeDirectCredit();
    absl::StrAppend(&pending_, "event: ", event, "\ndata: ");
    data(&pending_);
    pending_.append("\n\n");
    ended_ = ended_ || last;
    if (direct) {
      if (!writer_->WriteNow(pending_, &rest_)) failed_ = true;
      pending_.clear();
      logs_.TakenAll();  // what is left is in rest_, bounded by the socket's buffer
    }
  }

  static constexpr double kDirectBurst = 4;
  static constexpr absl::Duration kDirectInterval = absl::Microseconds(250);

  // Whether a direct write is due: one credit each, kDirectBurst at most,
  // one more each kDirectInterval.
  bool TakeDirectCredit() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = absl::Now();
    credit_ = std::min(kDirectBurst, credit_ + absl::FDivDuration(now - credited_at_, kDirectInterval));
    credited_at_ = now;
    if (credit_ < 1) return false;
    credit_ -= 1;
    return true;
  }

  absl::Mutex mu_;
  double credit_ ABSL_GUARDED_BY(mu_) = kDirectBurst;
  absl::Time credited_at_ ABSL_GUARDED_BY(mu_) = absl::Now();
  ResponseWriter* writer_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // the connection's thread writes what Take gave it
  std::string rest_ ABSL_GUARDED_BY(mu_);
  std::string pending_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  LogBacklog logs_ ABSL_GUARDED_BY(mu_);  // log bytes in pending_
};

class StreamObserver final : public PredictionObserver {
 public:
  explicit StreamObserver(std::shared_ptr<EventStream> stream) : stream_(std::move(stream)) {}
  // Each event's JSON written straight into the stream, as DumpJson would
  // write the object (no Json tree made for it: ~4.5 k instructions an item,
  // and ~0.4 M for a completed event of 100 outputs, went to building one).
  void OnStarted(const Prediction& prediction) override {
    stream_->Push("start", [&](std::string* out) { AppendPredictionJson(prediction, out); });
  }
  void OnOutput(const Prediction& prediction, const Json& item) override {
    const size_t index = prediction.output.is_array() ? prediction.output.size() - 1 : 0;
    stream_->Push("output", [&](std::string* out) {
      absl::StrAppend(out, "{\"index\":", index, ",\"value\":");
      AppendJson(item, out);
      out->push_back('}');
    });
  }
  void OnLog(const Prediction&, absl::string_view text) override { stream_->PushLog(text); }
  void OnMetric(const Prediction&, absl::string_view name, const Json& value) override {
    stream_->PushMetric(name, value);
  }
  void OnCompleted(const Prediction& prediction) override {
    stream_->Push("completed", [&](std::string* out) { AppendPredictionJson(prediction, out); },
                  /*last=*/true);
  }

 private:
  std::shared_ptr<EventStream> stream_;
};

}  // namespace

namespace {

FrontDoorOptions FrontDoorOptionsFor(const RestGateway::Options& options) {
  FrontDoorOptions front_door;
  front_door.limits.max_body_bytes = options.max_body_bytes;
  front_door.limits.max_header_bytes = options.max_header_bytes;
  front_door.limits.max_headers = options.max_headers;
  front_door.max_connections = options.max_connections;
  // Never below one body of the largest size: it could never be taken.
  front_door.max_buffered_body_bytes =
      std::max<uint64_t>(options.max_buffered_body_bytes, options.max_body_bytes);
  front_door.header_timeout = options.header_timeout;
  front_door.keep_alive_timeout = options.keep_alive_timeout;
  front_door.min_body_bytes_per_second = options.min_body_bytes_per_second;
  front_door.body_grace = options.header_timeout;  // a body's grace is a head's deadline
  front_door.heap_trimmer = options.heap_trimmer;
  return front_door;
}

}  // namespace

RestGateway::RestGateway(PredictionService* core, Options options)
    : core_(core), options_(std::move(options)) {
  RegisterRoutes();
  server_ = std::make_unique<FrontDoorServer>(
      FrontDoorOptionsFor(options_),
      [this](HttpRequest& request, HttpResponse& response) { Handle(request, response); });
}

RestGateway::~RestGateway() { Stop(); }

namespace {

// Whether a path segment as sent is `want` once decoded.
bool SegmentIs(absl::string_view raw, absl::string_view want) {
  return raw == want || (absl::StrContains(raw, '%') && PercentDecode(raw) == want);
}

}  // namespace

bool RestGateway::Route::Matches(absl::Span<const absl::string_view> segments, std::string* id) const {
  const size_t n = prefix_segments.size();
  const size_t wanted = shape == Shape::kExact ? n : shape == Shape::kId ? n + 1 : n + 2;
  if (segments.size() != wanted) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!SegmentIs(segments[i], prefix_segments[i])) return false;
  }
  if (shape == Shape::kExact) return true;
  if (segments[n].empty() || (shape == Shape::kIdCancel && !SegmentIs(segments[n + 1], "cancel"))) {
    return false;
  }
  *id = PercentDecode(segments[n]);
  return true;
}

void RestGateway::RegisterRoutes() {
  using Shape = Route::Shape;
  // Every known path answers every method: the ones it serves, or 405.
  auto route = [this](absl::string_view prefix, Shape shape,
                      std::vector<std::pair<std::string, Handler>> methods) {
    std::vector<std::string> allowed;
    for (const auto& method : methods) allowed.push_back(method.first);
    std::string allow = absl::StrJoin(allowed, ", ");
    std::vector<std::string> segments = absl::StrSplit(prefix, '/');
    routes_.push_back(
        Route{shape, std::move(methods), std::move(allow), std::move(segments)});
  };

  // Tried in this order: the most frequent first.
  for (const auto& [prefix, kind] : {std::pair{std::string("/predictions"), PredictionKind::kPredict},
                                     std::pair{std::string("/trainings"), PredictionKind::kTrain}}) {
    const PredictionKind k = kind;
    route(prefix, Shape::kExact,
          {{"POST", [this, k](HttpRequest& request, HttpResponse& response, const std::string&) {
              HandlePrediction(request, response, k, "");
            }}});
    route(prefix, Shape::kId,
          {{"PUT", [this, k](HttpRequest& request, HttpResponse& response, const std::string& id) {
              HandlePrediction(request, response, k, id);
            }},
           {"GET", [this, k](const HttpRequest&, HttpResponse& response, const std::string& id) {
              HandleGet(id, k, response);
            }}});
    route(prefix, Shape::kIdCancel,
          {{"POST", [this, k](const HttpRequest&, HttpResponse& response, const std::string& id) {
              HandleCancel(id, k, response);
            }}});
  }
  route("/health-check", Shape::kExact,
        {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            Reply(response, 200, HealthJson(core_->Health()));
          }}});
  // Ours, for load balancers and Kubernetes probes. Live: the process can serve
  // (not after a failed setup or a dead runner, so an orchestrator restarts it).
  // Ready: setup succeeded, a slot is free, and no shutdown is under way.
  route("/v2/health/live", Shape::kExact,
        {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            const HealthReport health = core_->Health(/*with_setup_logs=*/false);
            const bool live = health.status != HealthStatus::kSetupFailed &&
                              health.status != HealthStatus::kDefunct;
            Reply(response, live ? 200 : 503,
                  Json{{"live", live}, {"status", HealthStatusName(health.status)}});
          }}});
  route("/v2/health/ready", Shape::kExact,
        {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            const HealthReport health = core_->Health(/*with_setup_logs=*/false);
            const bool ready = health.status == HealthStatus::kReady && !health.shutting_down;
            Reply(response, ready ? 200 : 503,
                  Json{{"ready", ready}, {"status", HealthStatusName(health.status)}});
          }}});
  route("/openapi.json", Shape::kExact,
        {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            absl::StatusOr<std::string> schema = core_->Schema();
            if (!schema.ok()) return ReplyError(response, schema.status());
            ReplyText(response, 200, *std::move(schema));
          }}});
  if (options_.metrics != nullptr) {
    route("/metrics", Shape::kExact,
          {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
              std::string text = options_.metrics->Render(core_->Health(/*with_setup_logs=*/false));
              absl::StrAppend(&text,
                              "# HELP cog_http_request_body_bytes Bytes of HTTP request bodies being read or "
                              "parsed, counted against --max-buffered-body-bytes.\n"
                              "# TYPE cog_http_request_body_bytes gauge\ncog_http_request_body_bytes ",
                              server_->buffered_body_bytes(), "\n");
              response.Reply(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
            }}});
  }
  route("/", Shape::kExact,
        {{"GET", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            Json index = Json::object();
            index["cog_version"] = kCogApiVersion;
            index["docs_url"] = "/docs";
            index["openapi_url"] = "/openapi.json";
            index["shutdown_url"] = "/shutdown";
            index["healthcheck_url"] = "/health-check";
            index["predictions_url"] = "/predictions";
            index["predictions_idempotent_url"] = "/predictions/{prediction_id}";
            index["predictions_cancel_url"] = "/predictions/{prediction_id}/cancel";
            if (core_->has_train()) {
              index["trainings_url"] = "/trainings";
              index["trainings_idempotent_url"] = "/trainings/{training_id}";
              index["trainings_cancel_url"] = "/trainings/{training_id}/cancel";
            }
            Reply(response, 200, index);
          }}});
  route("/shutdown", Shape::kExact,
        {{"POST", [this](const HttpRequest&, HttpResponse& response, const std::string&) {
            Reply(response, 200, Json::object());
            if (options_.request_shutdown) options_.request_shutdown();
          }}});
}

void RestGateway::Handle(HttpRequest& request, HttpResponse& response) const {
  // "/predictions/a%2Fb" → "", "predictions", "a%2Fb": split before decoding.
  const absl::InlinedVector<absl::string_view, 6> segments = absl::StrSplit(request.path, '/');
  std::string id;
  for (const Route& route : routes_) {
    if (!route.Matches(segments, &id)) continue;
    for (const auto& [method, handler] : route.methods) {
      if (method == request.method) return handler(request, response, id);
    }
    response.headers.emplace_back("Allow", route.allow);
    return Reply(response, 405, Json{{"detail", "Method Not Allowed"}});
  }
  Reply(response, 404, Json{{"detail", "Not Found"}});
}

void RestGateway::HandlePrediction(HttpRequest& http_request, HttpResponse& response,
                                   PredictionKind kind, const std::string& path_id) const {
  const PredictionHeaders headers(http_request.headers);
  // Parsed, a body takes several times its size (its values as a tree: a
  // 100 MB list of zeros took 2.9 GB): large ones one at a time, each bounded
  // in values, while the front door still counts the body.
  std::unique_lock<std::mutex> large;
  if (http_request.body.size() > kLargeBodyBytes) large = std::unique_lock<std::mutex>(large_body_mu_);
  absl::StatusOr<Json> body = ParseBody(http_request, headers.content_type, options_.max_json_depth,
                                        MaxJsonValues());
  if (!body.ok()) {
    if (body.status().code() == absl::StatusCode::kFailedPrecondition) {
      return Reply(response, 415, Json{{"detail", std::string(body.status().message())}});
    }
    return ReplyError(response, body.status());
  }
  // Read: let go of the body (as large as the input, which is now in *body)
  // rather than hold it for as long as the prediction runs.
  std::string().swap(http_request.body);
  if (http_request.release_body) http_request.release_body();
  absl::StatusOr<PredictionRequest> request = ToRequest(*body, kind, path_id);
  body = Json();  // what ToRequest did not take (other members) is not kept for the prediction's run
  if (!request.ok()) return ReplyError(response, request.status());
  request->traceparent = PredictionHeaders::Value(headers.traceparent);
  request->tracestate = PredictionHeaders::Value(headers.tracestate);
  const bool respond_async = headers.respond_async;
  const bool stream = !respond_async && headers.event_stream;
  std::shared_ptr<SyncObserver::Result> result;
  std::shared_ptr<EventStream> events;
  std::unique_ptr<PredictionObserver> observer;
  int wake_fd = -1;
  if (stream) {
    events = std::make_shared<EventStream>(core_->max_log_bytes());
    observer = std::make_unique<StreamObserver>(events);
  } else if (!respond_async) {
    result = std::make_shared<SyncObserver::Result>();
    wake_fd = http_request.early_answer != nullptr ? ThreadWakeFd() : -1;
    observer = std::make_unique<SyncObserver>(result, http_request.early_answer, wake_fd);
  }
  const std::string id = request->id;
  absl::StatusOr<Prediction> started = core_->Start(std::move(*request), std::move(observer));
  if (large.owns_lock()) large.unlock();  // the input is the prediction's now (or gone)
  if (!started.ok()) {
    if (absl::IsAlreadyExists(started.status())) {
      // Idempotent PUT: the same id is running; answer with its state (if it
      // is of this kind: a training's PUT does not answer for a prediction).
      absl::StatusOr<Prediction> current = core_->Get(id);
      if (current.ok() && current->kind == kind) return ReplyText(response, 202, PredictionJsonText(*current));
      if (current.ok()) {
        return ReplyError(response, absl::AlreadyExistsError(absl::StrCat(
                                        "'", id, "' is the id of a running ",
                                        current->kind == PredictionKind::kTrain ? "training" : "prediction")));
      }
    }
    return ReplyError(response, started.status());
  }
  if (respond_async) return ReplyText(response, 202, PredictionJsonText(*started));
  // A client that goes away cancels its prediction: nobody would read the
  // answer, and the slot is better used by the next request.
  constexpr absl::Duration kCheckEvery = absl::Milliseconds(100);
  const int client = http_request.socket;
  if (stream) {
    response.status = 200;
    response.content_type = "text/event-stream";
    response.headers.emplace_back("Cache-Control", "no-cache");
    response.stream = [this, events, client, id = started->id](ResponseWriter& writer) {
      events->Attach(&writer);
      const absl::Cleanup detach = [&events] { events->Detach(); };
      bool canceled = false;
      while (true) {
        const EventStream::Batch batch = events->Take(kCheckEvery);
        if (batch.failed || !writer.WriteFramed(batch.rest) ||
            (!batch.text.empty() && !writer.Write(batch.text))) {
          // The connection is gone; events still queued are dropped with it.
          if (!batch.ended && !canceled) core_->Cancel(id).IgnoreError();
          return;
        }
        if (batch.ended) return;
        if (!canceled && ClientHasGone(client)) {
          spdlog::info("the client of streamed prediction {} disconnected; canceling it", id);
          core_->Cancel(id).IgnoreError();
          canceled = true;
        }
      }
    };
    return;
  }
  bool canceled = false;
  auto cancel_if_client_has_gone = [&] {
    if (!canceled && ClientHasGone(client)) {
      spdlog::info("the client of prediction {} disconnected; canceling it", started->id);
      core_->Cancel(started->id).IgnoreError();
      canceled = true;
    }
  };
  // Parked on the client's socket and the wake fd rather than on `done`: the
  // thread that reads the runner's answer sends it whole and wakes nobody, and
  // this thread goes on when the client's next request comes (one wake-up a
  // request less). Anything else, the client's bytes or close before the end,
  // an answer that leaves this thread work (EarlyAnswer::Send) and the
  // server's stop included, ends the parking: the wait below then sees to it.
  while (wake_fd >= 0 && !result->done.HasBeenNotified()) {
    pollfd fds[3] = {{client, POLLIN | POLLRDHUP, 0}, {wake_fd, POLLIN, 0},
                     {http_request.stop_event, POLLIN, 0}};
    const int ready = poll(fds, 3, static_cast<int>(absl::ToInt64Milliseconds(kCheckEvery)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready != 0) {
      uint64_t count;
      if ((fds[1].revents & POLLIN) != 0) (void)!::read(wake_fd, &count, sizeof(count));
      break;
    }
    cancel_if_client_has_gone();
  }
  while (!result->done.WaitForNotificationWithTimeout(kCheckEvery)) cancel_if_client_has_gone();
  // The observer has sent the answer itself when the front door let it.
  if (http_request.early_answer == nullptr) ReplyText(response, 200, std::move(result->body));
}

void RestGateway::HandleGet(const std::string& id, PredictionKind kind, HttpResponse& response) const {
  absl::StatusOr<Prediction> prediction = core_->Get(id);
  if (absl::IsNotFound(prediction.status()) && kind == PredictionKind::kTrain) {
    prediction = absl::NotFoundError(
        absl::StrCat("no training with id '", id, "' is running or ended recently on this server"));
  } else if (prediction.ok() && prediction->kind != kind) {
    prediction = absl::NotFoundError(absl::StrCat("'", id, "' is no ",
                                                  kind == PredictionKind::kTrain ? "training" : "prediction"));
  }
  if (!prediction.ok()) return ReplyError(response, prediction.status());
  ReplyText(response, 200, PredictionJsonText(*prediction));
}

void RestGateway::HandleCancel(const std::string& id, PredictionKind kind, HttpResponse& response) const {
  // /trainings/{id}/cancel does not cancel a prediction, nor the other way round.
  absl::Status status = core_->Cancel(id, kind);
  Reply(response, status.ok() ? 200 : 404, Json::object());
}

absl::StatusOr<int> RestGateway::Start() {
  absl::StatusOr<int> port = server_->Listen(options_.host, options_.port);
  if (!port.ok()) return port.status();
  thread_ = std::thread([this] {
    server_->Serve();
    served_.Notify();
  });
  return port;
}

void RestGateway::Stop(absl::Duration patience) {
  // Requests being served finish; idle connections close now.
  server_->Shutdown();
  if (thread_.joinable() && !served_.WaitForNotificationWithTimeout(patience)) {
    // A client reading a large answer slowly (but above --min-body-rate)
    // held the shutdown until the watchdog ended the server, exit code 1.
    spdlog::warn("requests still being served {} after the gateway began to stop (answers being "
                 "written, bodies being read): giving them up",
                 absl::FormatDuration(patience));
    server_->AbandonInProgress();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace cog
