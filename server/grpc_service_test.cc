#include "server/grpc_service.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

namespace runner = v1::runner;

constexpr char kSchema[] = R"({"components": {"schemas": {"Input": {
  "type": "object", "properties": {"s": {"type": "string", "x-order": 0}}}}}})";

// Stands in for the runner: records what the core sends and never answers
// unless the test says so (a prediction that ignores cancel).
class FakeChannel : public RunnerChannel {
 public:
  absl::Status Send(const runner::ServerMessage& message) override {
    absl::MutexLock lock(&mu_);
    sent_.push_back(message);
    return absl::OkStatus();
  }
  // Waits for the next frame of this kind (Predict or Cancel) the core sends;
  // returns the prediction id it carries.
  std::string Await(runner::ServerMessage::MessageCase kind) {
    absl::MutexLock lock(&mu_);
    size_t& next = cursor_[kind];
    size_t found = next;
    // Pure (absl::Mutex may evaluate it more than once, on any thread).
    auto sent = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      for (found = next; found < sent_.size(); ++found) {
        if (sent_[found].message_case() == kind) return true;
      }
      return false;
    };
    mu_.Await(absl::Condition(&sent));
    next = found + 1;
    const runner::ServerMessage& message = sent_[found];
    std::string id = kind == runner::ServerMessage::kPredict ? message.predict().id()
                                                             : message.cancel().id();
    return id;
  }

 private:
  absl::Mutex mu_;
  std::vector<runner::ServerMessage> sent_ ABSL_GUARDED_BY(mu_);
  std::map<runner::ServerMessage::MessageCase, size_t> cursor_ ABSL_GUARDED_BY(mu_);
};

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PredictionService::Options options;
    options.server_version = "test";
    core_ = std::make_unique<PredictionService>(options);
    core_->OnRunnerConnected(&channel_);
    runner::RunnerMessage hello;
    hello.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
    hello.mutable_hello()->set_openapi_json(kSchema);
    core_->OnRunnerMessage(hello);
    runner::RunnerMessage setup_done;
    setup_done.mutable_setup_done()->set_succeeded(true);
    core_->OnRunnerMessage(setup_done);

    service_ = std::make_unique<PredictorService>(core_.get(), nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Predictor::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    ShutdownServer();
    service_.reset();
    core_.reset();
  }

  // Returns only once every call has finished: with a reactor that never
  // calls Finish, it waits for ever (and the test times out).
  void ShutdownServer() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }

  // The runner ends a prediction (late, after its client is gone).
  void Done(const std::string& id, runner::DoneStatus status) {
    runner::RunnerMessage message;
    message.mutable_done()->set_id(id);
    message.mutable_done()->set_status(status);
    message.mutable_done()->set_output_json("\"late\"");
    core_->OnRunnerMessage(message);
  }

  void Log(const std::string& id, const std::string& text) {
    runner::RunnerMessage message;
    message.mutable_log()->set_id(id);
    message.mutable_log()->set_text(text);
    core_->OnRunnerMessage(message);
  }

  FakeChannel channel_;
  std::unique_ptr<PredictionService> core_;
  std::unique_ptr<PredictorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Predictor::Stub> stub_;
};

TEST_F(GrpcServiceTest, StreamSendsStartLogsAndCompletedThenOk) {
  grpc::ClientContext context;
  v1::PredictionRequest request;
  request.set_id("s-1");
  auto reader = stub_->PredictStream(&context, request);
  v1::PredictionEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_TRUE(event.has_start());
  channel_.Await(runner::ServerMessage::kPredict);
  Log("s-1", "hello\n");
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.log().text(), "hello\n");
  Done("s-1", runner::DONE_STATUS_SUCCEEDED);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.completed().output().string_value(), "late");
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(GrpcServiceTest, CanceledStreamFinishesAtOnceAndItsPredictionMayEndLater) {
  grpc::ClientContext context;
  v1::PredictionRequest request;
  request.set_id("s-2");
  auto reader = stub_->PredictStream(&context, request);
  v1::PredictionEvent event;
  ASSERT_TRUE(reader->Read(&event));
  context.TryCancel();
  EXPECT_EQ(channel_.Await(runner::ServerMessage::kCancel), "s-2");
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The prediction ignores the cancel: the call is finished anyway.
  ShutdownServer();
  // Its events now reach an observer whose call is long gone.
  Log("s-2", "still here\n");
  Done("s-2", runner::DONE_STATUS_CANCELED);
  EXPECT_EQ(core_->Health().status, HealthStatus::kReady);
}

TEST_F(GrpcServiceTest, StreamPastItsDeadlineFinishes) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  v1::PredictionRequest request;
  request.set_id("s-3");
  auto reader = stub_->PredictStream(&context, request);
  v1::PredictionEvent event;
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(channel_.Await(runner::ServerMessage::kCancel), "s-3");
  ShutdownServer();
  Done("s-3", runner::DONE_STATUS_CANCELED);
}

TEST_F(GrpcServiceTest, ShutdownFinishesAStreamWhosePredictionRunsOn) {
  grpc::ClientContext context;
  v1::PredictionRequest request;
  request.set_id("s-4");
  auto reader = stub_->PredictStream(&context, request);
  v1::PredictionEvent event;
  ASSERT_TRUE(reader->Read(&event));
  ShutdownServer();  // cancels the call at its deadline
  while (reader->Read(&event)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  Done("s-4", runner::DONE_STATUS_SUCCEEDED);
}

TEST_F(GrpcServiceTest, UnaryPredictPastItsDeadlineFinishesAndItsPredictionMayEndLater) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  v1::PredictionRequest request;
  request.set_id("u-1");
  v1::Prediction response;
  EXPECT_EQ(stub_->Predict(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(channel_.Await(runner::ServerMessage::kCancel), "u-1");
  ShutdownServer();
  Done("u-1", runner::DONE_STATUS_CANCELED);
}

// A unary Predict started without waiting for its answer.
struct PendingPredict {
  PendingPredict(v1::Predictor::Stub* stub, const std::string& id) {
    request.set_id(id);
    stub->async()->Predict(&context, &request, &response, [this](grpc::Status s) {
      status = std::move(s);
      finished.Notify();
    });
  }
  grpc::ClientContext context;
  v1::PredictionRequest request;
  v1::Prediction response;
  absl::Notification finished;
  grpc::Status status;
};

// The unary reactor's reactions run inline on whichever thread triggers them
// (InternalInlineable): a client's cancel on gRPC's thread, racing the runner's
// answer on the core's. Each call still finishes once, with the answer or
// CANCELLED.
TEST_F(GrpcServiceTest, UnaryCallsCanceledByTheirClientsRacingTheirAnswers) {
  for (int i = 0; i < 50; ++i) {
    PendingPredict call(stub_.get(), "race-" + std::to_string(i));
    EXPECT_EQ(channel_.Await(runner::ServerMessage::kPredict), call.request.id());
    std::thread answer([&] { Done(call.request.id(), runner::DONE_STATUS_SUCCEEDED); });
    if (i % 2 == 0) call.context.TryCancel();
    answer.join();
    call.finished.WaitForNotification();
    if (call.status.ok()) {
      EXPECT_EQ(call.response.id(), call.request.id());
      EXPECT_EQ(call.response.status(), v1::PREDICTION_STATUS_SUCCEEDED);
    } else {
      EXPECT_EQ(call.status.error_code(), grpc::StatusCode::CANCELLED) << call.status.error_message();
      EXPECT_EQ(i % 2, 0) << "only the calls that were canceled may fail";
    }
  }
  ShutdownServer();
}

TEST_F(GrpcServiceTest, UnaryCallCanceledByItsClientCancelsItsPrediction) {
  PendingPredict call(stub_.get(), "u-2");
  EXPECT_EQ(channel_.Await(runner::ServerMessage::kPredict), "u-2");
  call.context.TryCancel();
  call.finished.WaitForNotification();
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(channel_.Await(runner::ServerMessage::kCancel), "u-2");
  ShutdownServer();
  Done("u-2", runner::DONE_STATUS_CANCELED);
}

TEST_F(GrpcServiceTest, ManyCanceledStreamsAllFinish) {
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext context;
    v1::PredictionRequest request;
    request.set_id("many-" + std::to_string(i));
    auto reader = stub_->PredictStream(&context, request);
    v1::PredictionEvent event;
    ASSERT_TRUE(reader->Read(&event));
    context.TryCancel();
    EXPECT_EQ(channel_.Await(runner::ServerMessage::kCancel), request.id());
    (void)reader->Finish();
    Done(request.id(), runner::DONE_STATUS_CANCELED);
  }
  ShutdownServer();
}

}  // namespace
}  // namespace cog
