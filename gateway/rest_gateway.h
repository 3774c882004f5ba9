// RestGateway: the Cog HTTP API, served by cpp-httplib over the core.
//
// Routes:
//   GET  /                          index of the routes
//   GET  /health-check              runtime state (always 200)
//   GET  /openapi.json              the model's schema (503 until known)
//   POST /predictions               sync 200; `Prefer: respond-async` 202
//   PUT  /predictions/{id}          as POST, idempotent on a running id
//   POST /predictions/{id}/cancel   200 {} if running, else 404 {}
//   POST /trainings, PUT /trainings/{id}, POST /trainings/{id}/cancel
//   POST /shutdown                  200 {}, then the server drains and exits
// Any other path: 404 {"detail":"Not Found"}; a known path with another
// method: 405 {"detail":"Method Not Allowed"} with Allow; a body over
// --max-body-bytes: 413 with the limit.
//
// `core` is not owned and must outlive this object. Start/Stop from one
// thread; requests are served on the gateway's own thread pool.
#ifndef COG_GATEWAY_REST_GATEWAY_H_
#define COG_GATEWAY_REST_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics.h"
#include "server/prediction_service.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace cog {

class RestGateway {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 5000;  // 0: pick a free one
    int threads = 16;
    size_t max_body_bytes = 100 << 20;  // larger requests get 413
    std::function<void()> request_shutdown;
    // GET /metrics renders these; null: no /metrics route.
    const PredictionMetrics* metrics = nullptr;
  };

  RestGateway(PredictionService* core, Options options);
  ~RestGateway();

  // Binds and starts serving in the background. Returns the bound port.
  absl::StatusOr<int> Start();
  // Stops accepting and closes connections; joins the serving thread.
  void Stop();

 private:
  void RegisterRoutes();
  void HandlePrediction(const httplib::Request& request, httplib::Response& response,
                        PredictionKind kind, const std::string& path_id);
  void HandleCancel(const std::string& id, httplib::Response& response);

  PredictionService* const core_;
  const Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace cog

#endif  // COG_GATEWAY_REST_GATEWAY_H_
