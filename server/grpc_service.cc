#include "server/grpc_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "server/grpc_status.h"
#include "server/json_proto.h"
#include "server/log_backlog.h"
#include "server/logging.h"
#include "spdlog/spdlog.h"

namespace cog {

// Once a second, cancels the PredictStream calls whose client has left a
// write unread past its allowance (StreamStall).
class StallSweeper {
 public:
  // True when the call was canceled for it (it is then no longer watched).
  using Check = std::function<bool(std::chrono::steady_clock::time_point now)>;

  StallSweeper() : thread_([this] { Run(); }) {}
  ~StallSweeper() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  // `check` is called, from the sweeper's thread, until Remove(key) returns.
  void Add(const void* key, Check check) {
    absl::MutexLock lock(&mu_);
    watched_.emplace(key, std::move(check));
  }
  void Remove(const void* key) {
    absl::MutexLock lock(&mu_);
    watched_.erase(key);
  }

 private:
  void Run() {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1));
      const auto now = std::chrono::steady_clock::now();  // not the wall clock: a step must not cancel
      for (auto it = watched_.begin(); it != watched_.end();) {
        // Under mu_: Remove (the call's OnDone) waits, so the call is there.
        if (it->second(now)) {
          watched_.erase(it++);
        } else {
          ++it;
        }
      }
    }
  }

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<const void*, Check> watched_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

namespace {

v1::PredictionStatus StatusToProto(PredictionStatus status) {
  switch (status) {
    case PredictionStatus::kStarting:
      return v1::PREDICTION_STATUS_STARTING;
    case PredictionStatus::kProcessing:
      return v1::PREDICTION_STATUS_PROCESSING;
    case PredictionStatus::kSucceeded:
      return v1::PREDICTION_STATUS_SUCCEEDED;
    case PredictionStatus::kFailed:
      return v1::PREDICTION_STATUS_FAILED;
    case PredictionStatus::kCanceled:
      return v1::PREDICTION_STATUS_CANCELED;
  }
  return v1::PREDICTION_STATUS_UNSPECIFIED;
}

// Reads `raw` into `request` as gRPC would, but says why when it cannot.
// Nesting is bounded by `recursion_limit` messages (protobuf's own default,
// 100, is about 33 levels of a Struct: each is a Struct, a map entry and a
// Value).
absl::Status ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* request,
                          int recursion_limit, int max_json_depth) {
  grpc::ByteBuffer buffer(raw);  // shares the slices: the reader wants one it may change
  grpc::ProtoBufferReader reader(&buffer);
  google::protobuf::io::CodedInputStream input(&reader);
  input.SetRecursionLimit(recursion_limit);
  CapturedProtobufErrors errors;
  // ConsumedEntireMessage: bytes after a 0 tag or an end-group tag are no
  // part of a message (ParseFromCodedStream stops there and says yes).
  if (request->ParseFromCodedStream(&input) && input.ConsumedEntireMessage() && reader.status().ok()) {
    return absl::OkStatus();
  }
  // "String field 'cog.v1.PredictionRequest.id' contains invalid UTF-8 data when parsing ..."
  const std::string& why = errors.last();
  if (absl::StrContains(why, "invalid UTF-8")) {
    const size_t open = why.find('\'');
    const size_t close = open == std::string::npos ? open : why.find('\'', open + 1);
    const std::string field = close == std::string::npos
                                  ? "a string field"
                                  : absl::StrCat("field ", why.substr(open, close - open + 1));
    return absl::InvalidArgumentError(absl::StrCat(
        "The request's ", field,
        " is not valid UTF-8; protobuf strings must be (a Struct's keys and string values too)"));
  }
  const bool has_input = request->GetDescriptor() == v1::PredictionRequest::descriptor();
  return absl::InvalidArgumentError(absl::StrCat(
      "The request could not be read as a ", request->GetDescriptor()->full_name(),
      ": its bytes are not such a protocol buffer message",
      has_input ? absl::StrCat(", or its input nests deeper than --max-json-depth (",
                               max_json_depth, ") lists and objects")
                : ""));
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// A reactor that the core's observer may outlive. Every call finishes exactly
// once and at once when its client goes away (cancel, deadline, or the server
// shutting down cancels it), while its prediction may run on until the core
// ends it (one that ignores cancel runs until the runner is stopped). So the
// reactor is counted: gRPC holds one reference until OnDone, the observer one
// until the core destroys it, and the last to let go deletes the reactor.
// After Finish nothing touches the call or its messages.
template <typename Reactor>
class CountedReactor : public Reactor {
 public:
  void OnDone() override { Unref(); }

 protected:
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Holds a reference to the reactor for as long as the core holds it.
  class ObserverBase : public PredictionObserver {
   public:
    explicit ObserverBase(CountedReactor* reactor) : reactor_(reactor) { reactor_->Ref(); }
    ~ObserverBase() override { reactor_->Unref(); }

   private:
    CountedReactor* const reactor_;
  };

 private:
  std::atomic<int> refs_{1};  // gRPC's
};

const grpc::Status& ClientGone() {
  static const grpc::Status* const status =
      new grpc::Status(grpc::StatusCode::CANCELLED, "the call was canceled");
  return *status;
}

// A unary Predict/Train: finishes when the core completes the prediction, and
// cancels it when the client goes away first.
class PredictReactor final : public CountedReactor<grpc::ServerUnaryReactor> {
 public:
  PredictReactor(PredictionService* core, v1::Prediction* response)
      : core_(core), response_(response) {}

  // Runs in the method handler, before gRPC has the reactor: OnCancel and
  // OnDone cannot come before it returns.
  void Begin(PredictionRequest request, bool respond_async) {
    std::unique_ptr<PredictionObserver> observer;
    if (!respond_async) observer = std::make_unique<Observer>(this);
    absl::StatusOr<Prediction> started = core_->Start(std::move(request), std::move(observer));
    {
      absl::MutexLock lock(&mu_);
      if (started.ok()) id_ = started->id;
      if (started.ok() && !respond_async) return;  // the observer finishes
      if (!Claim()) return;
      if (started.ok()) ToProto(*started, response_);
    }
    Finish(started.ok() ? grpc::Status::OK : ToGrpcStatus(started.status()));
  }

  // gRPC runs the reactions of an inlineable reactor on the thread that
  // triggers them instead of handing each to its executor thread: OnDone where
  // the answer is finished (the core's reader thread), OnCancel where gRPC
  // sees the client go, or inside a Finish racing the client's cancel (gRPC
  // may run what a call completes before Finish returns). So no lock of ours is
  // held across Finish, and neither reaction waits on gRPC: OnDone drops a
  // reference; OnCancel claims the finish and the core sends one small Cancel
  // frame. Measured (prediction_bench, null predictor): 7.8 -> 6.2 thread
  // wake-ups and ~15% less server CPU per call. gRPC calls the hook "not API":
  // Debian pins gRPC 1.51, and a gRPC without it would only give back the
  // hand-off.
  bool InternalInlineable() override { return true; }

  void OnCancel() override {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      if (!Claim()) return;
      id = id_;
    }
    Finish(ClientGone());
    if (!id.empty()) core_->Cancel(id).IgnoreError();
  }

 private:
  class Observer final : public ObserverBase {
   public:
    explicit Observer(PredictReactor* reactor) : ObserverBase(reactor), reactor_(reactor) {}
    void OnCompleted(const Prediction& prediction) override {
      {
        absl::MutexLock lock(&reactor_->mu_);
        if (!reactor_->Claim()) return;  // the client went away first
        ToProto(prediction, reactor_->response_);
      }
      reactor_->Finish(grpc::Status::OK);  // this observer's reference keeps the reactor
    }
    bool WantsEachOutput() const override { return false; }  // a unary answer: the end only

   private:
    PredictReactor* const reactor_;
  };

  // Whether the caller is the one to call Finish: the first to ask, once.
  bool Claim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  PredictionService* const core_;
  v1::Prediction* const response_;  // gRPC's; written only before Finish
  absl::Mutex mu_;
  std::string id_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// PredictStream: queues the core's events and writes them one at a time;
// finishes after the completed event, or at once when the client goes away.
class StreamReactor final : public CountedReactor<grpc::ServerWriteReactor<v1::PredictionEvent>> {
 public:
  StreamReactor(PredictionService* core, grpc::CallbackServerContext* context, StallSweeper* sweeper,
                StreamStall stall)
      : core_(core), context_(context), sweeper_(sweeper), stall_(stall), logs_(core->max_log_bytes()) {
    sweeper_->Add(this, [this](std::chrono::steady_clock::time_point now) { return CancelIfStalled(now); });
  }

  // Runs in the method handler, before gRPC has the reactor.
  void Begin(absl::StatusOr<PredictionRequest> request) {
    if (!request.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(request.status()));
      return;
    }
    absl::StatusOr<Prediction> started =
        core_->Start(std::move(*request), std::make_unique<Observer>(this));
    absl::MutexLock lock(&mu_);
    if (!started.ok()) {
      FinishLocked(ToGrpcStatus(started.status()));  // the observer was destroyed unheard
    } else {
      id_ = started->id;
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (ok) bytes_taken_ += write_bytes_;
    if (pending_finish_.has_value()) {  // finished while this write was in flight
      Finish(*pending_finish_);
      pending_finish_.reset();
      return;
    }
    if (!ok) {
      // The stream broke; OnCancel may follow, or may not (the client half-closed).
      FinishLocked(ClientGone());
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      if (!completed_) id = id_;  // else only its last events were still to be written
      FinishLocked(ClientGone());
    }
    if (!id.empty()) core_->Cancel(id).IgnoreError();
  }

  // gRPC calls OnDone once every other reaction has returned, on its
  // executor's thread (never inline for a write reactor), and frees the call
  // right after. Taking mu_ here orders the reactions' calls into gRPC (Finish
  // from OnCancel, under mu_) before that free in a way TSan sees too: the
  // hand-off to the executor is inside libgrpc++, which is not instrumented.
  void OnDone() override {
    sweeper_->Remove(this);  // after which nothing of the sweeper's touches the call
    { absl::MutexLock lock(&mu_); }
    CountedReactor::OnDone();
  }

 private:
  // From the sweeper's thread: a write the client has not taken within its
  // allowance means it stopped reading (HTTP/2 flow control holds the write
  // once its window is full). The call is canceled, which ends the write, the
  // call, and the prediction if it still runs; the events waiting go.
  bool CancelIfStalled(std::chrono::steady_clock::time_point now) {
    {
      absl::MutexLock lock(&mu_);
      if (!writing_ || finished_) return false;
      // A write completes once HTTP/2's window has room: a client reading
      // slowly through a large window (grown by gRPC's bandwidth probing, up
      // to megabytes) takes the bytes before it too, and then the write. No
      // more of those than it was sent can be before it, and no more than
      // the largest window counted here.
      constexpr double kLargestWindow = 4 << 20;
      const double rate = static_cast<double>(stall_.min_bytes_per_second);
      const double before = std::min(kLargestWindow, static_cast<double>(bytes_taken_));
      const double allowed = absl::ToDoubleSeconds(stall_.grace) +
                             (rate > 0 ? (static_cast<double>(write_bytes_) + before) / rate : 0.0);
      const double waited = std::chrono::duration<double>(now - write_started_).count();
      if (waited <= allowed) return false;
      spdlog::warn(
          "PredictStream of prediction {}: the client left {} bytes unread for {:.0f}s (--header-timeout, then "
          "--min-body-rate), with {} events waiting; canceling the call",
          id_.empty() ? "(none)" : id_, write_bytes_, waited, queue_.size());
    }
    context_->TryCancel();  // OnCancel follows
    return true;
  }

  class Observer final : public ObserverBase {
   public:
    explicit Observer(StreamReactor* reactor) : ObserverBase(reactor), reactor_(reactor) {}
    void OnStarted(const Prediction& prediction) override {
      v1::PredictionEvent event;
      ToProto(prediction, event.mutable_start());
      reactor_->Push(std::move(event), false);
    }
    void OnOutput(const Prediction& prediction, const Json& item) override {
      v1::PredictionEvent event;
      event.mutable_output()->set_index(
          prediction.output.is_array() ? prediction.output.size() - 1 : 0);
      JsonToValue(item, event.mutable_output()->mutable_value());
      reactor_->Push(std::move(event), false);
    }
    void OnLog(const Prediction&, absl::string_view text) override { reactor_->PushLog(text); }
    void OnMetric(const Prediction&, absl::string_view name, const Json& value) override {
      v1::PredictionEvent event;
      event.mutable_metric()->set_name(std::string(name));
      JsonToValue(value, event.mutable_metric()->mutable_value());
      reactor_->PushMetric(std::move(event));
    }
    void OnCompleted(const Prediction& prediction) override {
      v1::PredictionEvent event;
      ToProto(prediction, event.mutable_completed());
      reactor_->Push(std::move(event), true);
    }

   private:
    StreamReactor* const reactor_;
  };

  void Push(v1::PredictionEvent event, bool last) {
    absl::MutexLock lock(&mu_);
    if (last) completed_ = true;
    if (finished_) return;  // the client is gone: the rest goes nowhere
    QueueNoteLocked();
    queue_.push_back(std::move(event));
    WriteNextLocked();
  }

  // A log line, left out while too many wait for the client (LogBacklog):
  // one that stops reading stalls the writes (HTTP/2 flow control).
  void PushLog(absl::string_view text) {
    absl::MutexLock lock(&mu_);
    if (finished_ || !logs_.Admit(text.size())) return;
    QueueNoteLocked();
    queue_.emplace_back().mutable_log()->set_text(std::string(text));
    WriteNextLocked();
  }

  // What a queued metric event costs the server besides its bytes on the
  // wire (the message objects, the queue's slot): ~7x its 21 bytes for a
  // short counter, measured (16 MiB counted were 110 MB of RSS).
  static constexpr size_t kQueuedMetricCost = 160;

  // A metric event, left out with logs while too many wait for the client.
  void PushMetric(v1::PredictionEvent event) {
    absl::MutexLock lock(&mu_);
    if (finished_ || !logs_.AdmitMetric(event.ByteSizeLong() + kQueuedMetricCost)) return;
    QueueNoteLocked();
    queue_.push_back(std::move(event));
    WriteNextLocked();
  }

  // The line saying that logs were left out, if they were.
  void QueueNoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string note = logs_.TakeNote();
    if (!note.empty()) queue_.emplace_back().mutable_log()->set_text(std::move(note));
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (queue_.empty()) {
      if (completed_) FinishLocked(grpc::Status::OK);
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    write_bytes_ = current_.ByteSizeLong();
    if (current_.has_log()) logs_.Taken(current_.log().text().size());
    if (current_.has_metric()) logs_.Taken(write_bytes_ + kQueuedMetricCost);  // as admitted
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    StartWrite(&current_);
  }

  // The one way to finish. A write in flight is left to complete first.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    queue_.clear();
    if (writing_) {
      pending_finish_ = status;
    } else {
      Finish(status);
    }
  }

  PredictionService* const core_;
  grpc::CallbackServerContext* const context_;
  StallSweeper* const sweeper_;
  const StreamStall stall_;
  absl::Mutex mu_;
  std::string id_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::PredictionEvent> queue_ ABSL_GUARDED_BY(mu_);
  v1::PredictionEvent current_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point write_started_ ABSL_GUARDED_BY(mu_);  // of current_
  size_t write_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_taken_ ABSL_GUARDED_BY(mu_) = 0;  // by the writes that completed
  bool completed_ ABSL_GUARDED_BY(mu_) = false;  // the core sent OnCompleted
  bool finished_ ABSL_GUARDED_BY(mu_) = false;   // Finish called, or due after the write
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  LogBacklog logs_ ABSL_GUARDED_BY(mu_);  // log bytes in queue_
};

}  // namespace

absl::StatusOr<PredictionRequest> FromProto(const v1::PredictionRequest& request,
                                            PredictionKind kind, int max_json_depth) {
  // The input sits in the body as {"input": {...}}: one level more.
  if (StructDepth(request.input(), max_json_depth) + 1 > max_json_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("input: nests deeper than --max-json-depth (", max_json_depth,
                     ") lists and objects, counted from a REST body's {\"input\": ...}"));
  }
  PredictionRequest out;
  out.id = request.id();
  out.kind = kind;
  out.input = StructToJson(request.input());
  out.webhook = request.webhook();
  for (int event : request.webhook_events_filter()) {
    switch (event) {
      case v1::WEBHOOK_EVENT_START:
        out.webhook_events_filter.push_back(WebhookEvent::kStart);
        break;
      case v1::WEBHOOK_EVENT_OUTPUT:
        out.webhook_events_filter.push_back(WebhookEvent::kOutput);
        break;
      case v1::WEBHOOK_EVENT_LOGS:
        out.webhook_events_filter.push_back(WebhookEvent::kLogs);
        break;
      case v1::WEBHOOK_EVENT_COMPLETED:
        out.webhook_events_filter.push_back(WebhookEvent::kCompleted);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("webhook_events_filter: unknown event ", event,
                         "; use START, OUTPUT, LOGS or COMPLETED"));
    }
  }
  out.output_file_prefix = request.output_file_prefix();
  if (request.has_created_at()) {
    // google.protobuf.Timestamp's own range (years 1 to 9999, nanos within a
    // second): outside it the time could not be written back as RFC 3339.
    const google::protobuf::Timestamp& at = request.created_at();
    if (at.nanos() < 0 || at.nanos() > 999999999 || !IsWritableTime(absl::FromUnixSeconds(at.seconds()))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "created_at: seconds ", at.seconds(), " and nanos ", at.nanos(),
          " are no valid Timestamp (years 0001 to 9999, nanos 0 to 999999999)"));
    }
    out.created_at = TimestampToTime(at);
  }
  for (const auto& [key, value] : request.context()) out.context[key] = value;
  return out;
}

void ToProto(const Prediction& prediction, v1::Prediction* out) {
  out->set_id(prediction.id);
  JsonToStruct(*prediction.input, out->mutable_input());
  if (!prediction.output.is_null()) JsonToValue(prediction.output, out->mutable_output());
  if (prediction.error.has_value()) out->set_error(*prediction.error);
  out->set_logs(prediction.logs);
  out->set_status(StatusToProto(prediction.status));
  if (prediction.metrics.is_object()) JsonToStruct(prediction.metrics, out->mutable_metrics());
  if (prediction.created_at) TimeToTimestamp(*prediction.created_at, out->mutable_created_at());
  if (prediction.started_at) TimeToTimestamp(*prediction.started_at, out->mutable_started_at());
  if (prediction.completed_at) {
    TimeToTimestamp(*prediction.completed_at, out->mutable_completed_at());
  }
}

void ToProto(const HealthReport& report, v1::HealthResponse* out) {
  switch (report.status) {
    case HealthStatus::kStarting:
      out->set_status(v1::HealthResponse::STARTING);
      break;
    case HealthStatus::kReady:
      out->set_status(v1::HealthResponse::READY);
      break;
    case HealthStatus::kBusy:
      out->set_status(v1::HealthResponse::BUSY);
      break;
    case HealthStatus::kSetupFailed:
      out->set_status(v1::HealthResponse::SETUP_FAILED);
      break;
    case HealthStatus::kDefunct:
      out->set_status(v1::HealthResponse::DEFUNCT);
      break;
    case HealthStatus::kUnhealthy:
      out->set_status(v1::HealthResponse::UNHEALTHY);
      break;
  }
  v1::SetupResult* setup = out->mutable_setup();
  if (report.setup.started_at) TimeToTimestamp(*report.setup.started_at, setup->mutable_started_at());
  if (report.setup.completed_at) {
    TimeToTimestamp(*report.setup.completed_at, setup->mutable_completed_at());
  }
  setup->set_status(report.setup.status);
  setup->set_logs(report.setup.logs);
  out->set_concurrency_max(report.concurrency_max);
  out->set_concurrency_current(report.concurrency_current);
  out->set_user_healthcheck_error(report.user_healthcheck_error);
  for (const auto& [key, value] : report.version) (*out->mutable_version())[key] = value;
}

namespace {

// Room for a Struct nested `max_json_depth` deep (three messages a level) and
// for the messages around it.
// At most 512 levels (1,544 messages): deeper could overflow a gRPC thread's
// stack as protobuf reads it.
int RecursionLimit(int max_json_depth) { return 3 * std::clamp(max_json_depth, 1, 512) + 8; }

// The index gRPC's generated code gives method `name` (its place in the
// .proto), checked against the types and the streaming of the handler.
int MethodIndex(const char* name, const google::protobuf::Descriptor* request,
                const google::protobuf::Descriptor* response, bool server_streaming) {
  const google::protobuf::ServiceDescriptor* service =
      v1::PredictionRequest::descriptor()->file()->FindServiceByName("Predictor");
  const google::protobuf::MethodDescriptor* method =
      service == nullptr ? nullptr : service->FindMethodByName(name);
  if (method == nullptr || method->input_type() != request || method->output_type() != response ||
      method->server_streaming() != server_streaming || method->client_streaming()) {
    spdlog::critical("cog.v1.Predictor has no method {} taking {} and answering {}", name,
                     request->full_name(), response->full_name());
    std::abort();
  }
  return method->index();
}

}  // namespace

PredictorService::PredictorService(PredictionService* core, std::function<void()> request_shutdown,
                                   StreamStall stall, int max_json_depth)
    : core_(core),
      request_shutdown_(std::move(request_shutdown)),
      stall_(stall),
      max_json_depth_(std::max(1, max_json_depth)),
      sweeper_(std::make_unique<StallSweeper>()) {
  ReadRequestsFirst("Predict", &PredictorService::Predict);
  ReadStreamRequestsFirst();
  ReadRequestsFirst("Train", &PredictorService::Train);
  ReadRequestsFirst("Cancel", &PredictorService::Cancel);
  ReadRequestsFirst("GetPrediction", &PredictorService::GetPrediction);
  ReadRequestsFirst("Health", &PredictorService::Health);
  ReadRequestsFirst("GetSchema", &PredictorService::GetSchema);
  ReadRequestsFirst("Shutdown", &PredictorService::Shutdown);
}

template <typename Request, typename Response>
void PredictorService::ReadRequestsFirst(
    const char* name, grpc::ServerUnaryReactor* (PredictorService::*method)(
                          grpc::CallbackServerContext*, const Request*, Response*)) {
  // The generated code's own registration, with the request left as bytes.
  MarkMethodCallback(
      MethodIndex(name, Request::descriptor(), Response::descriptor(), /*server_streaming=*/false),
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, Response>(
          [this, method](grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw,
                         Response* response) {
            std::unique_lock<std::mutex> large;
            if (!TakeLargeRequestTurn(*raw, &large)) return FinishNow(context, ToGrpcStatus(LargeRequestBusy()));
            Request request;
            absl::Status read =
                ParseRequest(*raw, &request, RecursionLimit(max_json_depth_), max_json_depth_);
            if (!read.ok()) return FinishNow(context, ToGrpcStatus(read));
            return (this->*method)(context, &request, response);
          }));
}

void PredictorService::ReadStreamRequestsFirst() {
  MarkMethodCallback(
      MethodIndex("PredictStream", v1::PredictionRequest::descriptor(), v1::PredictionEvent::descriptor(),
                  /*server_streaming=*/true),
      new grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer, v1::PredictionEvent>(
          [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
            std::unique_lock<std::mutex> large;
            v1::PredictionRequest request;
            absl::Status read = !TakeLargeRequestTurn(*raw, &large) ? LargeRequestBusy() :
                ParseRequest(*raw, &request, RecursionLimit(max_json_depth_), max_json_depth_);
            if (!read.ok()) {
              auto* reactor = new StreamReactor(core_, context, sweeper_.get(), stall_);
              reactor->Begin(read);
              return static_cast<grpc::ServerWriteReactor<v1::PredictionEvent>*>(reactor);
            }
            return PredictStream(context, &request);
          }));
}

PredictorService::~PredictorService() = default;

bool PredictorService::TakeLargeRequestTurn(const grpc::ByteBuffer& raw, std::unique_lock<std::mutex>* turn) {
  if (raw.Length() <= kLargeRequestBytes) return true;
  *turn = std::unique_lock<std::mutex>(large_request_mu_, std::try_to_lock);
  return turn->owns_lock();
}

absl::Status PredictorService::LargeRequestBusy() {
  return absl::ResourceExhaustedError(
      "another large request is being read (each takes many times its size in memory as it is read); "
      "retry shortly");
}

grpc::ServerUnaryReactor* PredictorService::RunUnary(grpc::CallbackServerContext* context,
                                                     const v1::PredictionRequest* request,
                                                     v1::Prediction* response,
                                                     PredictionKind kind) {
  absl::StatusOr<PredictionRequest> converted = FromProto(*request, kind, max_json_depth_);
  if (!converted.ok()) return FinishNow(context, ToGrpcStatus(converted.status()));
  auto* reactor = new PredictReactor(core_, response);
  reactor->Begin(std::move(*converted), request->respond_async());
  return reactor;
}

grpc::ServerUnaryReactor* PredictorService::Predict(grpc::CallbackServerContext* context,
                                                    const v1::PredictionRequest* request,
                                                    v1::Prediction* response) {
  return RunUnary(context, request, response, PredictionKind::kPredict);
}

grpc::ServerUnaryReactor* PredictorService::Train(grpc::CallbackServerContext* context,
                                                  const v1::PredictionRequest* request,
                                                  v1::Prediction* response) {
  return RunUnary(context, request, response, PredictionKind::kTrain);
}

grpc::ServerWriteReactor<v1::PredictionEvent>* PredictorService::PredictStream(
    grpc::CallbackServerContext* context, const v1::PredictionRequest* request) {
  auto* reactor = new StreamReactor(core_, context, sweeper_.get(), stall_);
  reactor->Begin(FromProto(*request, PredictionKind::kPredict, max_json_depth_));
  return reactor;
}

grpc::ServerUnaryReactor* PredictorService::Cancel(grpc::CallbackServerContext* context,
                                                   const v1::CancelRequest* request,
                                                   v1::CancelResponse*) {
  return FinishNow(context, ToGrpcStatus(core_->Cancel(request->id())));
}

grpc::ServerUnaryReactor* PredictorService::GetPrediction(grpc::CallbackServerContext* context,
                                                          const v1::GetPredictionRequest* request,
                                                          v1::Prediction* response) {
  absl::StatusOr<Prediction> prediction = core_->Get(request->id());
  if (prediction.ok()) ToProto(*prediction, response);
  return FinishNow(context, ToGrpcStatus(prediction.status()));
}

grpc::ServerUnaryReactor* PredictorService::Health(grpc::CallbackServerContext* context,
                                                   const v1::HealthRequest*,
                                                   v1::HealthResponse* response) {
  ToProto(core_->Health(), response);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* PredictorService::GetSchema(grpc::CallbackServerContext* context,
                                                      const v1::GetSchemaRequest*,
                                                      v1::Schema* response) {
  absl::StatusOr<std::string> schema = core_->Schema();
  if (schema.ok()) response->set_openapi_json(*schema);
  return FinishNow(context, ToGrpcStatus(schema.status()));
}

grpc::ServerUnaryReactor* PredictorService::Shutdown(grpc::CallbackServerContext* context,
                                                     const v1::ShutdownRequest*,
                                                     v1::ShutdownResponse*) {
  grpc::ServerUnaryReactor* reactor = FinishNow(context, grpc::Status::OK);
  if (request_shutdown_) request_shutdown_();
  return reactor;
}

}  // namespace cog
