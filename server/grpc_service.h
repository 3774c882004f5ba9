// PredictorService: the public gRPC API (cog.v1.Predictor) over the core.
//
// Callback API throughout: no call blocks a gRPC thread. A unary Predict or
// Train finishes when the core reports the prediction terminal; a client that
// cancels or passes its deadline cancels the prediction. PredictStream writes
// the core's events in order, one write in flight at a time.
//
// Every call finishes exactly once: when its prediction ends, or at once when
// the client goes away (cancel, deadline, or grpc::Server::Shutdown's deadline
// canceling it), even if the prediction runs on. The core's observer of such a
// prediction keeps the call's reactor (not the call) alive until the core lets
// go of it, so grpc::Server::Shutdown(deadline) always returns.
//
// `core` is not owned and must outlive this object. Thread-safe.
#ifndef COG_SERVER_GRPC_SERVICE_H_
#define COG_SERVER_GRPC_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/time/time.h"
#include "cog/v1/predictor.grpc.pb.h"
#include "server/json.h"
#include "server/prediction.h"
#include "server/prediction_service.h"

namespace cog {

// Conversions between the core's types and the API's messages. An input
// nesting deeper than `max_json_depth` lists and objects, counted as in a
// REST body ({"input": {...}} is 2), is INVALID_ARGUMENT, as it is a 422 there.
absl::StatusOr<PredictionRequest> FromProto(const v1::PredictionRequest& request,
                                            PredictionKind kind,
                                            int max_json_depth = kDefaultMaxJsonDepth);
void ToProto(const Prediction& prediction, v1::Prediction* out);
void ToProto(const HealthReport& report, v1::HealthResponse* out);

class StallSweeper;

// How long a PredictStream client may leave an event unread before its
// call is canceled: `grace` plus, at `min_bytes_per_second`, the event's size
// and what may be before it in HTTP/2's window (what the client was sent, up
// to 4 MiB) (--header-timeout and --min-body-rate, as for a REST answer). A
// client that stops reading would otherwise hold every event of its
// prediction, long after the prediction ended and its slot went to another.
struct StreamStall {
  absl::Duration grace = absl::Seconds(10);
  int64_t min_bytes_per_second = 4096;  // 0: the grace alone
};

// Every method reads its request itself (gRPC hands it the bytes): a request
// gRPC could not read would get UNIMPLEMENTED with no message, where this
// answers INVALID_ARGUMENT saying why (a string field that is not UTF-8, bytes
// that are no such message, nesting past --max-json-depth). The typed methods
// below are then called with what was read.
class PredictorService final : public v1::Predictor::CallbackService {
 public:
  // `request_shutdown` is called (once per Shutdown call) to stop the server.
  PredictorService(PredictionService* core, std::function<void()> request_shutdown,
                   StreamStall stall = StreamStall(),
                   int max_json_depth = kDefaultMaxJsonDepth);
  ~PredictorService() override;

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictionRequest* request,
                                    v1::Prediction* response) override;
  grpc::ServerWriteReactor<v1::PredictionEvent>* PredictStream(
      grpc::CallbackServerContext* context, const v1::PredictionRequest* request) override;
  grpc::ServerUnaryReactor* Train(grpc::CallbackServerContext* context,
                                  const v1::PredictionRequest* request,
                                  v1::Prediction* response) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* GetPrediction(grpc::CallbackServerContext* context,
                                          const v1::GetPredictionRequest* request,
                                          v1::Prediction* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const v1::HealthRequest* request,
                                   v1::HealthResponse* response) override;
  grpc::ServerUnaryReactor* GetSchema(grpc::CallbackServerContext* context,
                                      const v1::GetSchemaRequest* request,
                                      v1::Schema* response) override;
  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* context,
                                     const v1::ShutdownRequest* request,
                                     v1::ShutdownResponse* response) override;

 private:
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                     const v1::PredictionRequest* request,
                                     v1::Prediction* response, PredictionKind kind);

  // Has gRPC hand method `name`'s request bytes to ParseRequest and then to
  // `method`.
  template <typename Request, typename Response>
  void ReadRequestsFirst(const char* name,
                         grpc::ServerUnaryReactor* (PredictorService::*method)(
                             grpc::CallbackServerContext*, const Request*, Response*));
  void ReadStreamRequestsFirst();
  // A request message larger than kLargeRequestBytes is read while no other
  // such one is (a 100 MB list of booleans took 3 GB as protobuf and JSON
  // values): true, with `turn` held until it has started, or false when
  // another has the turn (the call is then RESOURCE_EXHAUSTED, "retry";
  // waiting would block a gRPC thread).
  bool TakeLargeRequestTurn(const grpc::ByteBuffer& raw, std::unique_lock<std::mutex>* turn);
  static absl::Status LargeRequestBusy();
  static constexpr size_t kLargeRequestBytes = 8 << 20;
  std::mutex large_request_mu_;

  PredictionService* const core_;
  const std::function<void()> request_shutdown_;
  const StreamStall stall_;
  const int max_json_depth_;
  std::unique_ptr<StallSweeper> sweeper_;  // StreamStall's enforcer
};

}  // namespace cog

#endif  // COG_SERVER_GRPC_SERVICE_H_
