#include "server/prediction_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

namespace runner = v1::runner;

constexpr char kSchema[] = R"({"components": {"schemas": {"Input": {
  "type": "object", "required": ["s"],
  "properties": {"s": {"type": "string", "x-order": 0}}}}}})";

// Stands in for the runner: records what the core sends.
class FakeChannel : public RunnerChannel {
 public:
  absl::Status Send(const runner::ServerMessage& message) override {
    absl::MutexLock lock(&mu_);
    if (broken_) return absl::UnavailableError("broken pipe");
    sent_.push_back(message);
    return absl::OkStatus();
  }
  std::vector<runner::ServerMessage> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }
  void Break() {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }

 private:
  absl::Mutex mu_;
  std::vector<runner::ServerMessage> sent_;
  bool broken_ = false;
};

// Stands in for the supervisor: records restart requests.
class FakeControl : public RunnerControl {
 public:
  void RestartRunner(const std::string& reason) override {
    absl::MutexLock lock(&mu_);
    reasons_.push_back(reason);
  }
  // Waits (for a condition, not a time) until a restart was asked for.
  std::string AwaitRestart() {
    absl::MutexLock lock(&mu_);
    auto asked = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !reasons_.empty(); };
    mu_.Await(absl::Condition(&asked));
    return reasons_.front();
  }
  size_t restarts() {
    absl::MutexLock lock(&mu_);
    return reasons_.size();
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> reasons_ ABSL_GUARDED_BY(mu_);
};

struct Events {
  std::vector<std::string> seen;
  std::optional<Prediction> completed;
};

class RecordingObserver : public PredictionObserver {
 public:
  explicit RecordingObserver(Events* events) : events_(events) {}
  void OnStarted(const Prediction&) override { events_->seen.push_back("started"); }
  void OnOutput(const Prediction&, const Json& item) override {
    events_->seen.push_back("output " + item.dump());
  }
  void OnLog(const Prediction&, absl::string_view text) override {
    events_->seen.push_back("log " + std::string(text));
  }
  void OnCompleted(const Prediction& prediction) override {
    events_->seen.push_back("completed");
    events_->completed = prediction;
  }

 private:
  Events* events_;
};

class PredictionServiceTest : public ::testing::Test {
 protected:
  void Connect(int max_concurrency = 1, size_t max_log_bytes = 16u << 20,
               absl::Duration cancel_timeout = absl::Seconds(5),
               FinishedPredictions::Options finished = {}) {
    PredictionService::Options options;
    options.finished = finished;
    options.max_concurrency = max_concurrency;
    options.max_log_bytes = max_log_bytes;
    options.cancel_timeout = cancel_timeout;
    options.server_version = "test";
    service_ = std::make_unique<PredictionService>(options);
    service_->OnRunnerConnected(&channel_, &control_);
  }

  void Hello() {
    runner::RunnerMessage message;
    message.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
    message.mutable_hello()->set_openapi_json(kSchema);
    service_->OnRunnerMessage(message);
  }

  void SetupDone(bool ok) {
    runner::RunnerMessage message;
    message.mutable_setup_done()->set_succeeded(ok);
    service_->OnRunnerMessage(message);
  }

  void Log(const std::string& id, const std::string& text) {
    runner::RunnerMessage message;
    message.mutable_log()->set_id(id);
    message.mutable_log()->set_text(text);
    service_->OnRunnerMessage(message);
  }

  void Done(const std::string& id, runner::DoneStatus status, const std::string& output_json,
            const std::string& error = "") {
    runner::RunnerMessage message;
    message.mutable_done()->set_id(id);
    message.mutable_done()->set_status(status);
    message.mutable_done()->set_output_json(output_json);
    message.mutable_done()->set_error(error);
    service_->OnRunnerMessage(message);
  }

  PredictionRequest Request(const std::string& id, const std::string& s = "hi") {
    PredictionRequest request;
    request.id = id;
    request.input = Json{{"s", s}};
    return request;
  }

  FakeChannel channel_;
  FakeControl control_;
  std::unique_ptr<PredictionService> service_;
};

TEST_F(PredictionServiceTest, HealthGoesStartingThenReadyAndSetupIsSentAfterHello) {
  Connect();
  EXPECT_EQ(service_->Health().status, HealthStatus::kStarting);
  EXPECT_FALSE(service_->Schema().ok());
  Hello();
  ASSERT_EQ(channel_.sent().size(), 1u);
  EXPECT_TRUE(channel_.sent()[0].has_setup());
  EXPECT_TRUE(service_->Schema().ok());
  Log("", "loading weights\n");
  SetupDone(true);
  HealthReport health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kReady);
  EXPECT_EQ(health.setup.status, "succeeded");
  EXPECT_EQ(health.setup.logs, "loading weights\n");
  EXPECT_TRUE(health.setup.completed_at.has_value());
}

TEST_F(PredictionServiceTest, PredictionsAreRefusedUntilReady) {
  Connect();
  Hello();
  absl::StatusOr<Prediction> started = service_->Start(Request("a"), nullptr);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(started.status().message().find("Setup has not finished"), std::string::npos);
}

TEST_F(PredictionServiceTest, SetupFailureKeepsLogsAndRefusesWork) {
  Connect();
  Hello();
  Log("", "Traceback (most recent call last):\nRuntimeError: boom\n");
  SetupDone(false);
  HealthReport health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kSetupFailed);
  EXPECT_EQ(health.setup.status, "failed");
  EXPECT_NE(health.setup.logs.find("RuntimeError: boom"), std::string::npos);
  EXPECT_EQ(service_->Start(Request("a"), nullptr).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(PredictionServiceTest, LoadErrorInHelloIsASetupFailure) {
  Connect();
  runner::RunnerMessage message;
  message.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
  message.mutable_hello()->set_load_error("ModuleNotFoundError: No module named 'torch'");
  service_->OnRunnerMessage(message);
  HealthReport health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kSetupFailed);
  EXPECT_NE(health.setup.logs.find("No module named 'torch'"), std::string::npos);
  EXPECT_TRUE(channel_.sent().empty()) << "no setup after a failed load";
}

TEST_F(PredictionServiceTest, ProtocolMismatchIsASetupFailureThatSaysWhatToDo) {
  Connect();
  runner::RunnerMessage message;
  message.mutable_hello()->set_protocol_version(static_cast<runner::ProtocolVersion>(7));
  service_->OnRunnerMessage(message);
  EXPECT_EQ(service_->Health().status, HealthStatus::kSetupFailed);
  EXPECT_NE(service_->Health().setup.logs.find("install matching versions"), std::string::npos);
}

TEST_F(PredictionServiceTest, APredictionRunsAndTheObserverHearsEverythingInOrder) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  absl::StatusOr<Prediction> started =
      service_->Start(Request("p1"), std::make_unique<RecordingObserver>(&events));
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->status, PredictionStatus::kProcessing);
  EXPECT_TRUE(started->started_at.has_value());
  ASSERT_EQ(channel_.sent().size(), 2u);
  const runner::Predict predict = channel_.sent()[1].predict();
  EXPECT_EQ(predict.id(), "p1");
  EXPECT_EQ(Json::parse(predict.input_json()), Json::parse(R"({"s":"hi"})"));
  EXPECT_EQ(service_->Health().status, HealthStatus::kBusy);

  Log("p1", "working\n");
  Done("p1", runner::DONE_STATUS_SUCCEEDED, R"("hi!")");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.seen, (std::vector<std::string>{"started", "log working\n", "completed"}));
  EXPECT_EQ(events.completed->status, PredictionStatus::kSucceeded);
  EXPECT_EQ(events.completed->output, "hi!");
  EXPECT_EQ(events.completed->logs, "working\n");
  EXPECT_TRUE(events.completed->metrics.contains("predict_time"));
  EXPECT_EQ(service_->Health().status, HealthStatus::kReady);
}

TEST_F(PredictionServiceTest, OutputsAreBatchedOnlyWhenNoObserverWantsEachOne) {
  // The runner may send a prediction's outputs several at once only when every
  // observer waits for the end (a sync request, a unary call); a stream, or no
  // observer at all (it may be polled), takes each as it comes.
  class EndOnly : public PredictionObserver {
   public:
    void OnCompleted(const Prediction&) override {}
    bool WantsEachOutput() const override { return false; }
  };
  Connect(4);
  Hello();
  SetupDone(true);
  Events events;
  std::vector<std::pair<std::string, bool>> expected;
  ASSERT_TRUE(service_->Start(Request("end-only"), std::make_unique<EndOnly>()).ok());
  expected.emplace_back("end-only", true);
  ASSERT_TRUE(service_->Start(Request("streamed"), std::make_unique<RecordingObserver>(&events)).ok());
  expected.emplace_back("streamed", false);
  ASSERT_TRUE(service_->Start(Request("polled"), nullptr).ok());
  expected.emplace_back("polled", false);
  std::vector<std::pair<std::string, bool>> sent;
  for (const runner::ServerMessage& message : channel_.sent()) {
    if (!message.has_predict()) continue;
    sent.emplace_back(message.predict().id(), message.predict().batch_outputs());
    // Several str items to a frame: only where outputs are batched at all.
    EXPECT_EQ(message.predict().batch_text_items(), message.predict().batch_outputs());
  }
  EXPECT_EQ(sent, expected);
}

TEST_F(PredictionServiceTest, BusyWhenEverySlotIsTaken) {
  Connect(/*max_concurrency=*/1);
  Hello();
  SetupDone(true);
  ASSERT_TRUE(service_->Start(Request("p1"), nullptr).ok());
  absl::StatusOr<Prediction> second = service_->Start(Request("p2"), nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(second.status().message(), "Already running a prediction");
  Done("p1", runner::DONE_STATUS_SUCCEEDED, "null");
  EXPECT_TRUE(service_->Start(Request("p2"), nullptr).ok()) << "the slot came back";
}

TEST_F(PredictionServiceTest, SameRunningIdIsAlreadyExistsAndGetShowsIt) {
  Connect(2);
  Hello();
  SetupDone(true);
  ASSERT_TRUE(service_->Start(Request("same"), nullptr).ok());
  EXPECT_EQ(service_->Start(Request("same"), nullptr).status().code(),
            absl::StatusCode::kAlreadyExists);
  absl::StatusOr<Prediction> current = service_->Get("same");
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->status, PredictionStatus::kProcessing);
}

TEST_F(PredictionServiceTest, InvalidInputIsRefusedBeforeASlotIsTaken) {
  Connect(1);
  Hello();
  SetupDone(true);
  PredictionRequest request = Request("bad");
  request.input = Json{{"s", 5}};
  absl::StatusOr<Prediction> started = service_->Start(request, nullptr);
  ASSERT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidationDetail(started.status()).has_value());
  EXPECT_TRUE(service_->Start(Request("good"), nullptr).ok()) << "no slot leaked";
}

TEST_F(PredictionServiceTest, IteratorOutputsAccumulateIntoAList) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("it"), std::make_unique<RecordingObserver>(&events)).ok());
  for (const char* item : {R"("a")", R"("b")"}) {
    runner::RunnerMessage message;
    message.mutable_output()->set_id("it");
    message.mutable_output()->set_value_json(item);
    service_->OnRunnerMessage(message);
  }
  Done("it", runner::DONE_STATUS_SUCCEEDED, "");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->output, Json::parse(R"(["a","b"])"));
  EXPECT_EQ(events.seen[1], R"(output "a")");
}

TEST_F(PredictionServiceTest, SeveralItemsInOneOutputAreEachAnItemInOrder) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("it"), std::make_unique<RecordingObserver>(&events)).ok());
  auto output = [this](const std::string& json, bool items) {
    runner::RunnerMessage message;
    message.mutable_output()->set_id("it");
    message.mutable_output()->set_value_json(json);
    message.mutable_output()->set_value_items(items);
    service_->OnRunnerMessage(message);
  };
  output(R"(["a","b \"q\""])", true);
  output(R"(["c"])", false);  // an item that is a list
  output(R"([])", true);      // no items
  output(R"(["d",1,null])", true);
  Done("it", runner::DONE_STATUS_SUCCEEDED, "");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kSucceeded);
  EXPECT_EQ(events.completed->output, Json::parse(R"(["a","b \"q\"",["c"],"d",1,null])"));
  // Each heard as an output of its own.
  EXPECT_EQ(std::count_if(events.seen.begin(), events.seen.end(),
                          [](const std::string& e) { return e.rfind("output ", 0) == 0; }),
            6);
}

TEST_F(PredictionServiceTest, SeveralItemsThatAreNotAListFailThePredictionSayingWhy) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("bad"), std::make_unique<RecordingObserver>(&events)).ok());
  runner::RunnerMessage message;
  message.mutable_output()->set_id("bad");
  message.mutable_output()->set_value_json(R"("not a list")");
  message.mutable_output()->set_value_items(true);
  service_->OnRunnerMessage(message);
  Done("bad", runner::DONE_STATUS_SUCCEEDED, "");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
  const std::string error = events.completed->error.value_or("");
  EXPECT_NE(error.find("must carry a JSON array"), std::string::npos) << error;
}

TEST_F(PredictionServiceTest, FailureAndCancelAreReported) {
  Connect();
  Hello();
  SetupDone(true);
  Events failed;
  ASSERT_TRUE(service_->Start(Request("f"), std::make_unique<RecordingObserver>(&failed)).ok());
  Done("f", runner::DONE_STATUS_FAILED, "", "boom: x");
  EXPECT_EQ(failed.completed->status, PredictionStatus::kFailed);
  EXPECT_EQ(failed.completed->error, "boom: x");

  Events canceled;
  ASSERT_TRUE(service_->Start(Request("c"), std::make_unique<RecordingObserver>(&canceled)).ok());
  ASSERT_TRUE(service_->Cancel("c").ok());
  EXPECT_TRUE(channel_.sent().back().has_cancel());
  EXPECT_EQ(channel_.sent().back().cancel().id(), "c");
  Done("c", runner::DONE_STATUS_CANCELED, "");
  EXPECT_EQ(canceled.completed->status, PredictionStatus::kCanceled);
  EXPECT_EQ(service_->Cancel("c").code(), absl::StatusCode::kNotFound);
}

TEST_F(PredictionServiceTest, RunnerDeathFailsRunningPredictionsAndMakesItDefunct) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  service_->OnRunnerGone("The runner process was killed by signal 9 (Killed)");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
  EXPECT_EQ(events.completed->error, "The runner process was killed by signal 9 (Killed)");
  EXPECT_EQ(service_->Health().status, HealthStatus::kDefunct);
  EXPECT_EQ(service_->Start(Request("q"), nullptr).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(PredictionServiceTest, RunnerDeathDuringSetupIsASetupFailure) {
  Connect();
  Hello();
  service_->OnRunnerGone("The runner process exited with code 1");
  HealthReport health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kSetupFailed);
  EXPECT_NE(health.setup.logs.find("exited with code 1"), std::string::npos);
}

TEST_F(PredictionServiceTest, UndeliverablePredictionCompletesFailedAndFreesItsSlot) {
  Connect();
  Hello();
  SetupDone(true);
  channel_.Break();
  Events events;
  absl::StatusOr<Prediction> started =
      service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events));
  ASSERT_TRUE(started.ok());
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
  EXPECT_NE(events.completed->error->find("could not reach the runner"), std::string::npos);
  EXPECT_EQ(service_->Health().concurrency_current, 0);
}

TEST_F(PredictionServiceTest, ShutdownRefusesNewWork) {
  Connect();
  Hello();
  SetupDone(true);
  service_->BeginShutdown();
  absl::StatusOr<Prediction> started = service_->Start(Request("p"), nullptr);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(started.status().message(), "Server is shutting down");
}

TEST(PredictionServiceHealthTest, ProbesHearOfChangesOnlyAndInOrder) {
  for (int capacity : {1, 2}) {
    std::vector<std::string> heard;
    PredictionService::Options options;
    options.max_concurrency = capacity;
    options.on_health_change = [&heard](const HealthChange& change) {
      heard.push_back(std::string(HealthStatusName(change.status)));
    };
    PredictionService service(options);
    FakeChannel channel;
    service.OnRunnerConnected(&channel);
    runner::RunnerMessage hello;
    hello.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
    hello.mutable_hello()->set_openapi_json(kSchema);
    service.OnRunnerMessage(hello);
    runner::RunnerMessage setup_done;
    setup_done.mutable_setup_done()->set_succeeded(true);
    service.OnRunnerMessage(setup_done);
    for (const char* id : {"a", "b"}) {
      PredictionRequest request;
      request.id = id;
      request.input = Json{{"s", "x"}};
      ASSERT_TRUE(service.Start(request, nullptr).ok());
      runner::RunnerMessage done;
      done.mutable_done()->set_id(id);
      done.mutable_done()->set_status(runner::DONE_STATUS_SUCCEEDED);
      service.OnRunnerMessage(done);
    }
    const std::vector<std::string> expected =
        capacity == 1 ? std::vector<std::string>{"READY", "BUSY", "READY", "BUSY", "READY"}
                      : std::vector<std::string>{"READY"};  // one of two slots: never busy
    EXPECT_EQ(heard, expected) << "capacity " << capacity;
  }
}

TEST_F(PredictionServiceTest, GeneratedIdsAreUniqueAndUrlSafe) {
  Connect(4);
  Hello();
  SetupDone(true);
  absl::StatusOr<Prediction> a = service_->Start(Request(""), nullptr);
  absl::StatusOr<Prediction> b = service_->Start(Request(""), nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->id, b->id);
  EXPECT_EQ(a->id.size(), 26u);
  EXPECT_EQ(a->id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789"), std::string::npos);
}

TEST_F(PredictionServiceTest, LogsPastTheLimitKeepTheNewestLinesAndSaySoOnce) {
  Connect(1, /*max_log_bytes=*/1000);
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  for (int i = 0; i < 500; ++i) Log("p", "line " + std::to_string(i) + "\n");
  const std::string logs = service_->Get("p")->logs;
  EXPECT_LE(logs.size(), 1100u);
  EXPECT_EQ(logs.rfind("[cog-server: ", 0), 0u) << logs.substr(0, 200);
  EXPECT_NE(logs.find("--max-log-bytes keeps the last 1000]\n"), std::string::npos);
  // Exactly one notice, then whole lines up to the newest.
  EXPECT_EQ(logs.find("[cog-server:", 1), std::string::npos);
  const std::string after_notice = logs.substr(logs.find('\n') + 1);
  EXPECT_EQ(after_notice.rfind("line ", 0), 0u) << after_notice.substr(0, 40);
  EXPECT_TRUE(absl::EndsWith(logs, "line 499\n"));
  // The count is what went: everything written minus the lines kept.
  size_t written = 0;
  for (int i = 0; i < 500; ++i) written += ("line " + std::to_string(i) + "\n").size();
  const size_t dropped = std::stoul(logs.substr(std::string("[cog-server: ").size()));
  EXPECT_EQ(dropped + after_notice.size(), written);
  // Observers still hear every line.
  EXPECT_EQ(events.seen.size(), 501u);
}

TEST_F(PredictionServiceTest, OneLogLargerThanTheLimitKeepsItsTail) {
  Connect(1, /*max_log_bytes=*/100);
  Hello();
  SetupDone(true);
  ASSERT_TRUE(service_->Start(Request("p"), nullptr).ok());
  Log("p", std::string(1000, 'x') + "END");
  const std::string logs = service_->Get("p")->logs;
  EXPECT_TRUE(absl::EndsWith(logs, "xxxEND")) << logs;
  EXPECT_LE(logs.size(), 200u);
}

TEST_F(PredictionServiceTest, IdsWithControlCharactersInvalidUtf8OrTooLongAreRefused) {
  Connect();
  Hello();
  SetupDone(true);
  for (const std::string& id : {std::string("a\r\nX-Evil: 1"), std::string("\xff"),
                                std::string(129, 'a'), std::string("a\x7f"),
                                std::string("a\xc2\x85")}) {
    absl::StatusOr<Prediction> started = service_->Start(Request(id), nullptr);
    ASSERT_FALSE(started.ok()) << id;
    std::optional<Json> detail = ValidationDetail(started.status());
    ASSERT_TRUE(detail.has_value());
    EXPECT_EQ((*detail)[0]["loc"], Json::array({"body", "id"}));
  }
  // Nothing was started: the slot is free.
  EXPECT_TRUE(service_->Start(Request(std::string(128, 'a') ), nullptr).ok());
  Done(std::string(128, 'a'), runner::DONE_STATUS_SUCCEEDED, "null");
  EXPECT_TRUE(service_->Start(Request("\xc3\xa9t\xc3\xa9 2026-11-28"), nullptr).ok());
}

TEST_F(PredictionServiceTest, WebhooksAndOutputPrefixesMustBeHttpUrls) {
  Connect();
  Hello();
  SetupDone(true);
  for (const char* url : {"gopher://127.0.0.1:6379/_x", "file:///etc/passwd", "not a url"}) {
    PredictionRequest request = Request("");
    request.webhook = url;
    absl::StatusOr<Prediction> started = service_->Start(request, nullptr);
    ASSERT_FALSE(started.ok()) << url;
    EXPECT_EQ((*ValidationDetail(started.status()))[0]["loc"], Json::array({"body", "webhook"}));
    request = Request("");
    request.output_file_prefix = url;
    started = service_->Start(request, nullptr);
    ASSERT_FALSE(started.ok()) << url;
    EXPECT_EQ((*ValidationDetail(started.status()))[0]["loc"],
              Json::array({"body", "output_file_prefix"}));
  }
}

TEST_F(PredictionServiceTest, AnOutputTheCoreCannotReadFailsThePredictionSayingWhy) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  Done("p", runner::DONE_STATUS_SUCCEEDED, "[[[[");
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
  const std::string error = events.completed->error.value_or("");
  EXPECT_NE(error.find("could not read the output"), std::string::npos) << error;
}

TEST_F(PredictionServiceTest, ARunnerThatDiesIsReplacedAndSetUpAgain) {
  Connect();
  Hello();
  Log("", "first setup\n");
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  EXPECT_TRUE(service_->OnRunnerGone("The runner process was killed by signal 9 (Killed)",
                                     /*may_restart=*/true));
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
  EXPECT_EQ(events.completed->error, "The runner process was killed by signal 9 (Killed)");
  HealthReport health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kStarting);
  EXPECT_EQ(health.setup.logs, "");
  absl::Status refused = service_->Start(Request("q"), nullptr).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.message().find("being restarted"), std::string::npos) << refused;

  FakeChannel second;
  service_->OnRunnerConnected(&second, &control_);
  Hello();
  ASSERT_EQ(second.sent().size(), 1u);
  EXPECT_TRUE(second.sent()[0].has_setup());
  Log("", "second setup\n");
  SetupDone(true);
  health = service_->Health();
  EXPECT_EQ(health.status, HealthStatus::kReady);
  EXPECT_EQ(health.setup.logs, "second setup\n");
  ASSERT_TRUE(service_->Start(Request("q"), nullptr).ok());
  EXPECT_TRUE(second.sent().back().has_predict());
}

TEST_F(PredictionServiceTest, NoRestartPastTheLimitDuringSetupOrWhenShuttingDown) {
  Connect();
  Hello();
  SetupDone(true);
  EXPECT_FALSE(service_->OnRunnerGone("gone", /*may_restart=*/false));
  EXPECT_EQ(service_->Health().status, HealthStatus::kDefunct);

  Connect();
  Hello();
  EXPECT_FALSE(service_->OnRunnerGone("The runner process exited with code 1", true));
  EXPECT_EQ(service_->Health().status, HealthStatus::kSetupFailed);

  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  service_->BeginShutdown();
  EXPECT_FALSE(service_->OnRunnerGone("The runner was stopped: the server is shutting down", true));
  ASSERT_TRUE(events.completed.has_value()) << "its client gets an answer";
  EXPECT_EQ(events.completed->status, PredictionStatus::kFailed);
}

TEST_F(PredictionServiceTest, AtTheEndHealthAdmissionGetAndCancelAgreeItIsOver) {
  Connect();
  Hello();
  SetupDone(true);
  // What a client sees the moment it hears of the end: free to go on.
  struct Seen {
    HealthStatus status;
    int current;
    absl::StatusOr<Prediction> get;
    absl::StatusCode cancel, next;
  };
  std::optional<Seen> seen;
  class Probe : public PredictionObserver {
   public:
    Probe(PredictionService* service, std::optional<Seen>* seen) : service_(service), seen_(seen) {}
    void OnCompleted(const Prediction& prediction) override {
      PredictionRequest next;
      next.id = "next";
      next.input = Json{{"s", "x"}};
      *seen_ = Seen{service_->Health().status, service_->Health().concurrency_current,
                    service_->Get(prediction.id),
                    service_->Cancel(prediction.id).code(),
                    service_->Start(next, nullptr).status().code()};
    }

   private:
    PredictionService* service_;
    std::optional<Seen>* seen_;
  };
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<Probe>(service_.get(), &seen)).ok());
  EXPECT_EQ(service_->Health().status, HealthStatus::kBusy);
  EXPECT_TRUE(service_->Get("p").ok());
  EXPECT_EQ(service_->Start(Request("x"), nullptr).status().code(),
            absl::StatusCode::kResourceExhausted);
  Done("p", runner::DONE_STATUS_SUCCEEDED, "\"ok\"");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->status, HealthStatus::kReady);
  EXPECT_EQ(seen->current, 0);
  ASSERT_TRUE(seen->get.ok()) << "Get shows the ended prediction: " << seen->get.status();
  EXPECT_EQ(seen->get->status, PredictionStatus::kSucceeded);
  EXPECT_EQ(seen->cancel, absl::StatusCode::kNotFound);
  EXPECT_EQ(seen->next, absl::StatusCode::kOk);
}

TEST(PredictionServiceSidecarTest, TakesMaxConcurrencyFromTheRunnersHelloWhenAsked) {
  PredictionService::Options options;
  options.concurrency_from_runner = true;
  PredictionService service(options);
  FakeChannel channel;
  service.OnRunnerConnected(&channel);
  EXPECT_EQ(service.Health().concurrency_max, 1);
  runner::RunnerMessage message;
  message.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
  message.mutable_hello()->set_openapi_json(kSchema);
  message.mutable_hello()->set_max_concurrency(3);
  service.OnRunnerMessage(message);
  EXPECT_EQ(service.Health().concurrency_max, 3);
  service.OnRunnerGone("test over");
}

TEST_F(PredictionServiceTest, GetAnswersWithTheFinalStateOfRecentlyEndedPredictions) {
  FinishedPredictions::Options finished;
  finished.max_count = 2;
  Connect(1, 16u << 20, absl::Seconds(5), finished);
  Hello();
  SetupDone(true);
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(service_->Start(Request(id, id), nullptr).ok());
    Log(id, std::string("working on ") + id + "\n");
    Done(id, runner::DONE_STATUS_SUCCEEDED, std::string("\"") + id + "!\"");
  }
  EXPECT_EQ(service_->Get("a").status().code(), absl::StatusCode::kNotFound)
      << "only the last max_count are kept";
  absl::StatusOr<Prediction> c = service_->Get("c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->status, PredictionStatus::kSucceeded);
  EXPECT_EQ(c->output, "c!");
  EXPECT_EQ(c->logs, "working on c\n");
  EXPECT_EQ(*c->input, (Json{{"s", "c"}}));
  EXPECT_TRUE(c->completed_at.has_value());

  // A failed one is kept with its error; an id that runs again shows its running state.
  ASSERT_TRUE(service_->Start(Request("b"), nullptr).ok());
  EXPECT_EQ(service_->Get("b")->status, PredictionStatus::kProcessing);
  Done("b", runner::DONE_STATUS_FAILED, "", "boom");
  EXPECT_EQ(service_->Get("b")->status, PredictionStatus::kFailed);
  EXPECT_EQ(service_->Get("b")->error, "boom");
}

TEST_F(PredictionServiceTest, ACancelNotObeyedRestartsTheRunnerAndEndsCanceledSayingWhy) {
  Connect(1, 16u << 20, absl::Milliseconds(10));
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  ASSERT_TRUE(service_->Cancel("p").ok());
  EXPECT_TRUE(channel_.sent().back().has_cancel());
  const std::string reason = control_.AwaitRestart();
  EXPECT_EQ(reason, "prediction p did not stop within 10ms of being canceled");
  EXPECT_FALSE(events.completed.has_value()) << "it ends when the runner is gone";
  EXPECT_TRUE(service_->OnRunnerGone(reason + "; the runner was killed", true));
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kCanceled);
  const std::string message =
      "The prediction did not stop within 10ms of being canceled; the runner was restarted";
  EXPECT_EQ(events.completed->error, message);
  EXPECT_NE(events.completed->logs.find("[cog-server] " + message + "\n"), std::string::npos);
  EXPECT_EQ(control_.restarts(), 1u);
}

TEST_F(PredictionServiceTest, ACanceledPredictionWhoseRunnerDiesEndsCanceled) {
  Connect();
  Hello();
  SetupDone(true);
  Events events;
  ASSERT_TRUE(service_->Start(Request("p"), std::make_unique<RecordingObserver>(&events)).ok());
  ASSERT_TRUE(service_->Cancel("p").ok());
  service_->OnRunnerGone("The runner process was killed by signal 11 (Segmentation fault)", true);
  ASSERT_TRUE(events.completed.has_value());
  EXPECT_EQ(events.completed->status, PredictionStatus::kCanceled);
  EXPECT_NE(events.completed->error->find("signal 11"), std::string::npos);
  EXPECT_EQ(control_.restarts(), 0u);
}

}  // namespace
}  // namespace cog
