// RestGateway: the Cog HTTP API, served by the front door (front_door.h) over
// the core.
//
// Routes:
//   GET  /                          index of the routes
//   GET  /health-check              runtime state (always 200)
//   GET  /openapi.json              the model's schema (503 until known)
//   POST /predictions               sync 200; `Prefer: respond-async` 202
//   PUT  /predictions/{id}          as POST, idempotent on a running id
//   GET  /predictions/{id}          a running or recently ended prediction, else 404
//   POST /predictions/{id}/cancel   200 {} if running, else 404 {}
//   POST /trainings, PUT /trainings/{id}, GET /trainings/{id}, POST /trainings/{id}/cancel
//   POST /shutdown                  200 {}, then the server drains and exits
// Any other path: 404 {"detail":"Not Found"}; a known path with another
// method: 405 {"detail":"Method Not Allowed"} with Allow; a body over
// --max-body-bytes: 413 with the limit; a head over the header limits: 431;
// too many connections: 503 (front_door.h).
//
// `core` is not owned and must outlive this object. Start/Stop from one
// thread; requests are served on the gateway's own threads, one per
// connection being served.
#ifndef COG_GATEWAY_REST_GATEWAY_H_
#define COG_GATEWAY_REST_GATEWAY_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gateway/http_message.h"
#include "server/metrics.h"
#include "server/prediction_service.h"

namespace cog {

class FrontDoorServer;

class RestGateway {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 5000;  // 0: pick a free one
    // The front door (front_door.h): what a request and a connection may be.
    size_t max_body_bytes = 100 << 20;   // larger bodies (also chunked) get 413
    size_t max_header_bytes = 64 << 10;  // a larger request head gets 431
    size_t max_headers = 100;            // more header fields get 431
    int max_json_depth = kDefaultMaxJsonDepth;  // deeper nesting in a body gets 422
    int max_connections = 256;           // further connections get 503
    uint64_t max_buffered_body_bytes = uint64_t{1} << 30;  // bodies held at once (front_door.h); past it 503
    absl::Duration header_timeout = absl::Seconds(10);      // first byte to end of head; then 408
    absl::Duration keep_alive_timeout = absl::Seconds(60);  // idle between requests; then closed
    uint64_t min_body_bytes_per_second = 4 << 10;  // a body slower than this gets 408 after header_timeout
    std::function<void()> request_shutdown;
    // GET /metrics renders these; null: no /metrics route.
    const PredictionMetrics* metrics = nullptr;
    // Told of large requests and answers (front_door.h). Not owned; may be null.
    HeapTrimmer* heap_trimmer = nullptr;
  };

  RestGateway(PredictionService* core, Options options);
  ~RestGateway();

  // Binds and starts serving in the background. Returns the bound port.
  absl::StatusOr<int> Start();
  // Stops accepting and closes idle connections; answers being written get
  // `patience` to go out, then are given up (FrontDoorServer::AbandonInProgress);
  // joins the serving thread.
  void Stop(absl::Duration patience = absl::InfiniteDuration());

 private:
  // A route: a path of one of three shapes, and what each method does there.
  // May take the request's body (HandlePrediction lets it go once read).
  using Handler = std::function<void(HttpRequest&, HttpResponse&, const std::string& id)>;
  struct Route {
    enum class Shape { kExact, kId, kIdCancel };  // prefix, prefix/{id}, prefix/{id}/cancel
    Shape shape;
    std::vector<std::pair<std::string, Handler>> methods;
    std::string allow;  // the methods, for a 405's Allow
    std::vector<std::string> prefix_segments;  // prefix split on '/': "/v2/health" → "", "v2", "health"
    // Whether the path whose segments (split on '/', each still
    // percent-encoded) are `segments` is this route's; the {id} in it, if
    // any, decoded into *id.
    bool Matches(absl::Span<const absl::string_view> segments, std::string* id) const;
  };

  void RegisterRoutes();
  // A body larger than this is parsed while no other such one is.
  static constexpr size_t kLargeBodyBytes = 8 << 20;
  // The most values (members of arrays and objects) a body is read into: at
  // ~64 bytes each parsed, a body costs at most --max-buffered-body-bytes.
  uint64_t MaxJsonValues() const {
    return std::max<uint64_t>(1 << 20, options_.max_buffered_body_bytes / 64);
  }
  // Routes a request: its route's handler, or 404 / 405.
  void Handle(HttpRequest& request, HttpResponse& response) const;
  void HandlePrediction(HttpRequest& request, HttpResponse& response, PredictionKind kind,
                        const std::string& path_id) const;
  // GET /predictions/{id}: a running or recently ended prediction (see
  // PredictionService::Get), 404 otherwise.
  void HandleGet(const std::string& id, PredictionKind kind, HttpResponse& response) const;
  void HandleCancel(const std::string& id, PredictionKind kind, HttpResponse& response) const;

  PredictionService* const core_;
  const Options options_;
  mutable std::mutex large_body_mu_;  // held while a large body is parsed
  std::vector<Route> routes_;  // in the order they are tried, the most frequent first
  std::unique_ptr<FrontDoorServer> server_;
  std::thread thread_;
  absl::Notification served_;  // thread_'s Serve() returned
};

}  // namespace cog

#endif  // COG_GATEWAY_REST_GATEWAY_H_
