#include "gateway/rest_gateway.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gateway/front_door.h"
#include "gateway/http_framing.h"
#include "gateway/http_status.h"
#include "httplib.h"
#include "server/input_schema.h"
#include "server/json.h"
#include "server/version.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

constexpr char kJson[] = "application/json";

void ReplyText(httplib::Response& response, int status, std::string body) {
  response.status = status;
  // What set_content() does, without its copy of the body (1 MiB and more
  // for a large string or a data: URI).
  response.body = std::move(body);
  response.headers.erase("Content-Type");
  response.set_header("Content-Type", kJson);
}

void Reply(httplib::Response& response, int status, const Json& body) {
  ReplyText(response, status, DumpJson(body));
}

void ReplyError(httplib::Response& response, const absl::Status& status) {
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
// null. Found in one pass: each of httplib's own lookups costs ~700
// instructions (a std::string made for the name, then case-insensitive
// compares a character at a time); the five took ~4,000 of a null
// prediction's 134,000 (callgrind).
struct PredictionHeaders {
  const std::string* content_type = nullptr;
  const std::string* traceparent = nullptr;
  const std::string* tracestate = nullptr;
  const std::string* prefer = nullptr;
  const std::string* accept = nullptr;

  explicit PredictionHeaders(const httplib::Headers& headers) {
    const std::pair<absl::string_view, const std::string**> wanted[] = {
        {"Content-Type", &content_type}, {"traceparent", &traceparent}, {"tracestate", &tracestate},
        {"Prefer", &prefer}, {"Accept", &accept}};
    for (const auto& [name, value] : headers) {
      for (const auto& [want, slot] : wanted) {
        if (*slot == nullptr && absl::EqualsIgnoreCase(name, want)) *slot = &value;
      }
    }
  }

  static std::string Value(const std::string* value) { return value != nullptr ? *value : std::string(); }
};

// A JSON body, or the 415 / 422 a Cog client expects instead.
absl::StatusOr<Json> ParseBody(const httplib::Request& request, const std::string* content_type,
                               int max_depth) {
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
      ParseJson(request.body, max_depth, request.body.capacity() - request.body.size());
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
  if (body.contains("webhook") && body["webhook"].is_string()) {
    request.webhook = body["webhook"].get<std::string>();
  }
  if (body.contains("webhook_events_filter") && body["webhook_events_filter"].is_array()) {
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
  if (body.contains("output_file_prefix") && body["output_file_prefix"].is_string()) {
    request.output_file_prefix = body["output_file_prefix"].get<std::string>();
  }
  if (body.contains("created_at") && body["created_at"].is_string()) {
    absl::Time created;
    std::string error;
    if (absl::ParseTime(absl::RFC3339_full, body["created_at"].get<std::string>(), &created,
                        &error)) {
      request.created_at = created;
    }
  }
  if (body.contains("context") && body["context"].is_object()) {
    for (const auto& [key, value] : body["context"].items()) {
      if (value.is_string()) request.context[key] = value;
    }
  }
  if (!errors.empty()) return InvalidInputError(std::move(errors));
  return request;
}

// Where a request came from, as cpp-httplib reports it.
struct ClientAddress {
  std::string remote_addr;
  int remote_port;
  int local_port;
};

// The socket of the connection a request came on, found by its addresses.
// cpp-httplib 0.11 gives a handler no way to its socket, nor any signal when
// the client goes away. A sync request looks for it only once it has waited a
// while, so that quick predictions pay nothing; a stream, before it writes.
// -1 if not found.
int FindClientSocket(const ClientAddress& client) {
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(fds)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    struct stat info;
    if (*end != '\0' || fd == dirfd(fds) || fstat(static_cast<int>(fd), &info) != 0 ||
        !S_ISSOCK(info.st_mode)) {
      continue;
    }
    sockaddr_storage local{}, peer{};
    socklen_t local_size = sizeof(local), peer_size = sizeof(peer);
    char host[NI_MAXHOST], port[NI_MAXSERV], local_port[NI_MAXSERV];
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0 ||
        getnameinfo(reinterpret_cast<sockaddr*>(&local), local_size, nullptr, 0, local_port,
                    sizeof(local_port), NI_NUMERICSERV) != 0 ||
        getnameinfo(reinterpret_cast<sockaddr*>(&peer), peer_size, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
      continue;
    }
    if (client.remote_addr == host && absl::StrCat(client.remote_port) == port &&
        absl::StrCat(client.local_port) == local_port) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(fds);
  return found;
}

// Whether the peer closed (or reset) the connection on `fd`. Bytes the client
// may have pipelined do not count: only the end of its side of the stream.
bool ClientHasGone(int fd) {
  pollfd check{fd, POLLRDHUP, 0};
  return poll(&check, 1, 0) > 0 && (check.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Waits for a sync prediction's end on the gateway thread; the response body
// is rendered once, straight from the core's final state.
class SyncObserver final : public PredictionObserver {
 public:
  struct Result {
    absl::Notification done;
    std::string body;
  };
  explicit SyncObserver(std::shared_ptr<Result> result) : result_(std::move(result)) {}
  void OnCompleted(const Prediction& prediction) override {
    result_->body = PredictionJsonText(prediction);
    result_->done.Notify();
  }
  bool WantsEachOutput() const override { return false; }  // the client sees the end only

 private:
  std::shared_ptr<Result> result_;
};

// Server-sent events of one prediction: the observer queues them rendered,
// the response's content provider writes them out on the connection's thread.
class EventStream {
 public:
  void Push(absl::string_view event, const Json& data, bool last = false) {
    absl::MutexLock lock(&mu_);
    absl::StrAppend(&pending_, "event: ", event, "\ndata: ");
    AppendJson(data, &pending_);
    pending_.append("\n\n");
    ended_ = ended_ || last;
  }
  // Waits up to `timeout` for events; returns what is pending and whether the
  // stream has ended (nothing will follow).
  std::pair<std::string, bool> Take(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !pending_.empty() || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return {std::exchange(pending_, std::string()), ended_};
  }

 private:
  absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

class StreamObserver final : public PredictionObserver {
 public:
  explicit StreamObserver(std::shared_ptr<EventStream> stream) : stream_(std::move(stream)) {}
  void OnStarted(const Prediction& prediction) override {
    stream_->Push("start", PredictionToJson(prediction));
  }
  void OnOutput(const Prediction& prediction, const Json& item) override {
    const size_t index = prediction.output.is_array() ? prediction.output.size() - 1 : 0;
    stream_->Push("output", Json{{"index", index}, {"value", item}});
  }
  void OnLog(const Prediction&, absl::string_view text) override {
    stream_->Push("logs", Json{{"text", std::string(text)}});
  }
  void OnMetric(const Prediction&, absl::string_view name, const Json& value) override {
    stream_->Push("metric", Json{{"name", std::string(name)}, {"value", value}});
  }
  void OnCompleted(const Prediction& prediction) override {
    stream_->Push("completed", PredictionToJson(prediction), /*last=*/true);
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
  front_door.header_timeout = options.header_timeout;
  front_door.keep_alive_timeout = options.keep_alive_timeout;
  return front_door;
}

}  // namespace

RestGateway::RestGateway(PredictionService* core, Options options)
    : core_(core),
      options_(std::move(options)),
      server_(std::make_unique<FrontDoorServer>(FrontDoorOptionsFor(options_))) {
  RegisterRoutes();
}

RestGateway::~RestGateway() { Stop(); }

void RestGateway::RegisterRoutes() {
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Every known path answers every method: the ones it serves, or 405.
  auto route = [this](const std::string& pattern, std::map<std::string, Handler> methods) {
    std::vector<std::string> allowed;
    for (const auto& [method, handler] : methods) allowed.push_back(method);
    const std::string allow = absl::StrJoin(allowed, ", ");
    auto handler_for = [methods, allow](const std::string& method) -> Handler {
      auto it = methods.find(method);
      if (it != methods.end()) return it->second;
      return [allow](const httplib::Request&, httplib::Response& response) {
        response.set_header("Allow", allow);
        Reply(response, 405, Json{{"detail", "Method Not Allowed"}});
      };
    };
    server_->Get(pattern, handler_for("GET"));
    server_->Post(pattern, handler_for("POST"));
    server_->Put(pattern, handler_for("PUT"));
    server_->Delete(pattern, handler_for("DELETE"));
    server_->Patch(pattern, handler_for("PATCH"));
  };

  // httplib tries a method's routes in the order they were added, matching a
  // std::regex for each: the most frequent first.
  route("/health-check", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
          Reply(response, 200, HealthJson(core_->Health()));
        }}});
  for (const auto& [prefix, kind] : {std::pair{std::string("/predictions"), PredictionKind::kPredict},
                                     std::pair{std::string("/trainings"), PredictionKind::kTrain}}) {
    const PredictionKind k = kind;
    route(prefix, {{"POST", [this, k](const httplib::Request& request, httplib::Response& response) {
            HandlePrediction(request, response, k, "");
          }}});
    route(prefix + "/([^/]+)",
          {{"PUT", [this, k](const httplib::Request& request, httplib::Response& response) {
             HandlePrediction(request, response, k, request.matches[1]);
           }},
           {"GET", [this, k](const httplib::Request& request, httplib::Response& response) {
             HandleGet(request.matches[1], k, response);
           }}});
    route(prefix + "/([^/]+)/cancel",
          {{"POST", [this](const httplib::Request& request, httplib::Response& response) {
             HandleCancel(request.matches[1], response);
           }}});
  }
  // Ours, for load balancers and Kubernetes probes. Live: the process can serve
  // (not after a failed setup or a dead runner, so an orchestrator restarts it).
  // Ready: setup succeeded, a slot is free, and no shutdown is under way.
  route("/v2/health/live", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
          const HealthReport health = core_->Health();
          const bool live = health.status != HealthStatus::kSetupFailed &&
                            health.status != HealthStatus::kDefunct;
          Reply(response, live ? 200 : 503,
                Json{{"live", live}, {"status", HealthStatusName(health.status)}});
        }}});
  route("/v2/health/ready", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
          const HealthReport health = core_->Health();
          const bool ready = health.status == HealthStatus::kReady && !health.shutting_down;
          Reply(response, ready ? 200 : 503,
                Json{{"ready", ready}, {"status", HealthStatusName(health.status)}});
        }}});
  route("/openapi.json", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
          absl::StatusOr<std::string> schema = core_->Schema();
          if (!schema.ok()) return ReplyError(response, schema.status());
          response.status = 200;
          response.set_content(*schema, kJson);
        }}});
  if (options_.metrics != nullptr) {
    route("/metrics", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
            response.status = 200;
            response.set_content(options_.metrics->Render(core_->Health()),
                                 "text/plain; version=0.0.4; charset=utf-8");
          }}});
  }
  route("/", {{"GET", [this](const httplib::Request&, httplib::Response& response) {
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
  route("/shutdown", {{"POST", [this](const httplib::Request&, httplib::Response& response) {
          Reply(response, 200, Json::object());
          if (options_.request_shutdown) options_.request_shutdown();
        }}});
  // Errors httplib answers itself (no route, a request line it cannot parse,
  // a bad Range, ...) get a JSON body like every other answer. Limits are the
  // front door's (front_door.h), which answers before httplib reads on.
  const size_t limit = options_.max_body_bytes;
  server_->set_error_handler([limit](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty() || response.has_header("Content-Type")) return;  // a route's answer
    const std::string detail = response.status == 413
                                   ? BodyTooLargeDetail(limit)
                                   : std::string(ReasonPhrase(response.status));
    Reply(response, response.status, Json{{"detail", detail}});
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("request failed: {}", what);
        Reply(response, 500, Json{{"detail", absl::StrCat("Internal Server Error: ", what)}});
      });
}

void RestGateway::HandlePrediction(const httplib::Request& http_request,
                                   httplib::Response& response, PredictionKind kind,
                                   const std::string& path_id) {
  const PredictionHeaders headers(http_request.headers);
  absl::StatusOr<Json> body = ParseBody(http_request, headers.content_type, options_.max_json_depth);
  if (!body.ok()) {
    if (body.status().code() == absl::StatusCode::kFailedPrecondition) {
      return Reply(response, 415, Json{{"detail", std::string(body.status().message())}});
    }
    return ReplyError(response, body.status());
  }
  absl::StatusOr<PredictionRequest> request = ToRequest(*body, kind, path_id);
  if (!request.ok()) return ReplyError(response, request.status());
  request->traceparent = PredictionHeaders::Value(headers.traceparent);
  request->tracestate = PredictionHeaders::Value(headers.tracestate);
  const bool respond_async =
      headers.prefer != nullptr && absl::StrContains(absl::AsciiStrToLower(*headers.prefer), "respond-async");
  const bool stream =
      !respond_async && headers.accept != nullptr &&
      absl::StrContains(absl::AsciiStrToLower(*headers.accept), "text/event-stream");
  std::shared_ptr<SyncObserver::Result> result;
  std::shared_ptr<EventStream> events;
  std::unique_ptr<PredictionObserver> observer;
  if (stream) {
    events = std::make_shared<EventStream>();
    observer = std::make_unique<StreamObserver>(events);
  } else if (!respond_async) {
    result = std::make_shared<SyncObserver::Result>();
    observer = std::make_unique<SyncObserver>(result);
  }
  const std::string id = request->id;
  absl::StatusOr<Prediction> started = core_->Start(std::move(*request), std::move(observer));
  if (!started.ok()) {
    if (absl::IsAlreadyExists(started.status())) {
      // Idempotent PUT: the same id is running; answer with its state.
      absl::StatusOr<Prediction> current = core_->Get(id);
      if (current.ok()) return ReplyText(response, 202, PredictionJsonText(*current));
    }
    return ReplyError(response, started.status());
  }
  if (respond_async) return ReplyText(response, 202, PredictionJsonText(*started));
  // A client that goes away cancels its prediction: nobody would read the
  // answer, and the slot is better used by the next request.
  constexpr absl::Duration kCheckEvery = absl::Milliseconds(100);
  const ClientAddress address{http_request.remote_addr, http_request.remote_port,
                              http_request.local_port};
  if (stream) {
    // Found now, while the connection is whole: once a write has met the
    // client's close, the socket is reset and has no peer address any more.
    const int client = FindClientSocket(address);
    response.set_header("Cache-Control", "no-cache");
    response.set_chunked_content_provider(
        "text/event-stream",
        [this, events, client, id = started->id, canceled = false](
            size_t, httplib::DataSink& sink) mutable {
          auto [text, ended] = events->Take(kCheckEvery);
          if (!text.empty() && !sink.write(text.data(), text.size())) {
            if (!ended && !canceled) core_->Cancel(id).IgnoreError();
            return false;  // the connection is gone; events still queued are dropped with it
          }
          if (ended) {
            sink.done();
            return true;
          }
          if (!canceled && client >= 0 && ClientHasGone(client)) {
            spdlog::info("the client of streamed prediction {} disconnected; canceling it", id);
            core_->Cancel(id).IgnoreError();
            canceled = true;
          }
          return true;
        });
    return;
  }
  std::optional<int> client;  // looked for once
  bool canceled = false;
  while (!result->done.WaitForNotificationWithTimeout(kCheckEvery)) {
    if (canceled) continue;
    if (!client.has_value()) client = FindClientSocket(address);
    if (*client >= 0 && ClientHasGone(*client)) {
      spdlog::info("the client of prediction {} disconnected; canceling it", started->id);
      core_->Cancel(started->id).IgnoreError();
      canceled = true;
    }
  }
  ReplyText(response, 200, std::move(result->body));
}

void RestGateway::HandleGet(const std::string& id, PredictionKind kind, httplib::Response& response) {
  absl::StatusOr<Prediction> prediction = core_->Get(id);
  if (prediction.ok() && prediction->kind != kind) {
    prediction = absl::NotFoundError(absl::StrCat("'", id, "' is no ",
                                                  kind == PredictionKind::kTrain ? "training" : "prediction"));
  }
  if (!prediction.ok()) return ReplyError(response, prediction.status());
  ReplyText(response, 200, PredictionJsonText(*prediction));
}

void RestGateway::HandleCancel(const std::string& id, httplib::Response& response) {
  absl::Status status = core_->Cancel(id);
  Reply(response, status.ok() ? 200 : 404, Json::object());
}

absl::StatusOr<int> RestGateway::Start() {
  // Responses go out as headers and body; without this, Nagle and delayed ACKs
  // hold every keep-alive response back by ~40 ms.
  server_->set_tcp_nodelay(true);
  absl::StatusOr<int> port = server_->Listen(options_.host, options_.port);
  if (!port.ok()) return port.status();
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

void RestGateway::Stop() {
  // Requests being served finish; idle connections close now.
  server_->Shutdown();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cog
