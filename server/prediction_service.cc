#include "server/prediction_service.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "server/outbound_policy.h"
#include "spdlog/spdlog.h"

namespace cog {

namespace runner = v1::runner;

absl::string_view HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kStarting:
      return "STARTING";
    case HealthStatus::kReady:
      return "READY";
    case HealthStatus::kBusy:
      return "BUSY";
    case HealthStatus::kSetupFailed:
      return "SETUP_FAILED";
    case HealthStatus::kDefunct:
      return "DEFUNCT";
    case HealthStatus::kUnhealthy:
      return "UNHEALTHY";
  }
  return "DEFUNCT";
}

namespace {

// Appends `text` to `logs`, keeping at most `limit` bytes (0: all): past it
// the oldest lines go, and the logs start with a line saying how many bytes
// went in all (`dropped`).
void AppendCappedLogs(std::string& logs, size_t& dropped, size_t limit, absl::string_view text) {
  if (limit == 0 || logs.size() + text.size() <= limit) {
    logs.append(text.data(), text.size());
    return;
  }
  // Over the limit: keep the newest three quarters of it (so that the next cut
  // comes after a quarter of the limit more, not at every line: appending stays
  // linear), from a line's start, after a line saying what went.
  const size_t keep = limit - limit / 4;
  std::string kept;
  if (text.size() >= keep) {
    absl::string_view tail = text.substr(text.size() - keep);
    dropped += logs.size() + (text.size() - keep);
    kept.assign(tail.data(), tail.size());
  } else {
    absl::string_view old = logs;
    // Skip the notice of an earlier cut: it is rewritten below.
    if (dropped > 0) old.remove_prefix(std::min(old.size(), old.find('\n') + 1));
    const size_t from_old = keep - text.size();
    const size_t cut = old.size() > from_old ? old.size() - from_old : 0;
    dropped += cut;
    kept.reserve(keep);
    absl::StrAppend(&kept, old.substr(cut), text);
  }
  // Start at a line's start (and so on a UTF-8 boundary) when there is one.
  const size_t newline = kept.find('\n');
  if (newline != std::string::npos && newline + 1 < kept.size()) {
    dropped += newline + 1;
    kept.erase(0, newline + 1);
  }
  logs = absl::StrCat("[cog-server: ", dropped, " bytes of earlier logs dropped; --max-log-bytes keeps the last ",
                      limit, "]\n", kept);
}

// What the runner sent as JSON: its writer (Python's json with
// allow_nan=False) only writes what ParseJson reads, so an error here means a
// broken runner or a limit, and says so; or a str the predictor returned
// holding a lone surrogate, which Python's json writes as a \u escape and
// which is no Unicode text cog-server can write.
absl::StatusOr<Json> ParseRunnerJson(const std::string& text, absl::string_view what) {
  absl::StatusOr<Json> value = ParseJson(text);
  if (!value.ok()) {
    if (std::optional<std::string> escape = JsonLoneSurrogate(value.status())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cog-server could not read ", what, " from the runner: it holds a str that is not valid "
          "Unicode (a lone surrogate, ", *escape, "), which cannot be written as UTF-8; replace "
          "it, e.g. s.encode('utf-8', 'replace').decode()"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cog-server could not read ", what, " from the runner: ", value.status().message()));
  }
  return value;
}

// The longest id a caller may choose (Cog's own are 26 characters; UUIDs 36).
constexpr size_t kMaxIdBytes = 128;

// A caller's prediction id travels into headers (X-Prediction-ID), log lines,
// URLs and the runner's frames: it must be printable UTF-8 of sane length.
std::optional<Json> CheckId(const std::string& id) {
  auto error = [&](absl::string_view type, std::string msg, Json ctx = Json()) {
    Json e{{"type", type}, {"loc", Json::array({"body", "id"})}, {"msg", std::move(msg)}};
    // Not echoed when it is not UTF-8: it could not be written as JSON.
    e["input"] = IsUtf8(id) ? Json(id) : Json(absl::CHexEscape(id));
    if (!ctx.is_null()) e["ctx"] = std::move(ctx);
    return Json::array({std::move(e)});
  };
  if (!IsUtf8(id)) {
    return error("string_unicode", "Input should be a valid string, unable to parse raw data as a unicode string");
  }
  if (id.size() > kMaxIdBytes) {
    return error("string_too_long",
                 absl::StrCat("String should have at most ", kMaxIdBytes, " characters"),
                 Json{{"max_length", kMaxIdBytes}});
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = id[i];
    // C0 controls, DEL, and C1 controls (U+0080..U+009F: 0xC2 0x80..0x9F).
    const bool c1 = c == 0xc2 && i + 1 < id.size() &&
                    static_cast<unsigned char>(id[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(id[i + 1]) <= 0x9f;
    if (c < 0x20 || c == 0x7f || c1) {
      const unsigned code = c1 ? static_cast<unsigned char>(id[i + 1]) : c;
      return error("string_pattern_mismatch",
                   absl::StrFormat("A prediction id must not contain control characters "
                                   "(U+%04X at byte %d)",
                                   code, i));
    }
  }
  return std::nullopt;
}

std::optional<Json> CheckUrlField(const std::string& url, absl::string_view field) {
  if (url.empty()) return std::nullopt;
  std::optional<UrlProblem> problem = CheckHttpUrl(url);
  if (!problem.has_value()) return std::nullopt;
  return Json::array({Json{{"type", problem->type},
                           {"loc", Json::array({"body", field})},
                           {"msg", problem->msg},
                           {"input", IsUtf8(url) ? Json(url) : Json(absl::CHexEscape(url))}}});
}

// Strings at least this long travel raw in Predict.input_text (the largest
// top-level one) rather than escaped inside input_json.
constexpr size_t kRawInputTextBytes = 64 << 10;

// What an output item costs in the output list besides its JSON, for the
// bound on a prediction's outputs in all (max_output_bytes): nlohmann's value
// in the list (which doubles as it grows), the std::string of a str item and
// malloc's own. Measured: an endless generator of "token" held 366 MiB of
// server RSS at 256 MiB counted with 48 here, i.e. ~79 bytes an item.
constexpr uint64_t kOutputItemBytes = 80;

// Writes a prediction's input into its Predict frame: the largest long
// top-level string is left out of input_json (null there) and returned, to be
// sent raw as input_text (RunnerChannel::SendPredict, without a copy); the
// rest goes in as JSON.
absl::string_view SetPredictInput(const Json& input, runner::Predict* predict) {
  const Json* largest = nullptr;
  const std::string* name = nullptr;
  if (input.is_object()) {
    for (const auto& [key, value] : input.items()) {
      if (value.is_string() && value.get_ref<const std::string&>().size() >= kRawInputTextBytes &&
          (largest == nullptr || value.get_ref<const std::string&>().size() >
                                     largest->get_ref<const std::string&>().size())) {
        largest = &value;
        name = &key;
      }
    }
  }
  std::string* out = predict->mutable_input_json();
  if (largest == nullptr) {
    AppendJson(input, out);
    return {};
  }
  predict->set_input_text_name(*name);
  out->push_back('{');
  for (const auto& [key, value] : input.items()) {
    if (out->size() > 1) out->push_back(',');
    AppendJsonString(key, out);
    out->push_back(':');
    if (&value == largest) {
      out->append("null");
    } else {
      AppendJson(value, out);
    }
  }
  out->push_back('}');
  return largest->get_ref<const std::string&>();
}

// A runner's value sent as text (value_text / output_text) rather than JSON.
absl::StatusOr<Json> RunnerText(std::string text, absl::string_view what) {
  if (!IsUtf8(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cog-server could not read ", what, " from the runner: it is not valid UTF-8"));
  }
  return Json(std::move(text));
}

double Seconds(absl::Duration duration) {
  // Cog reports predict_time with microsecond resolution.
  return static_cast<double>(absl::ToInt64Microseconds(duration)) / 1e6;
}

}  // namespace

PredictionService::PredictionService(Options options)
    : options_(std::move(options)),
      slots_(options_.max_concurrency),
      files_(options_.files),
      finished_(options_.finished),
      id_random_(std::random_device{}()),
      stray_output_(options_.stray_output_bytes_per_second),
      file_work_(options_.file_threads) {
  versions_["server"] = options_.server_version;
  if (options_.healthcheck_interval > absl::ZeroDuration()) {
    healthcheck_thread_ = std::thread([this] { PollHealthchecks(); });
  }
  if (options_.cancel_timeout > absl::ZeroDuration()) {
    cancel_watch_thread_ = std::thread([this] { WatchCancels(); });
  }
}

PredictionService::~PredictionService() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    background_cv_.SignalAll();
  }
  if (healthcheck_thread_.joinable()) healthcheck_thread_.join();
  if (cancel_watch_thread_.joinable()) cancel_watch_thread_.join();
}

PredictionService::RunnerUse::RunnerUse(PredictionService* service)
    : service_(service), channel_(service->channel_), control_(service->control_) {
  ++service->runner_uses_;
}

PredictionService::RunnerUse::~RunnerUse() {
  absl::MutexLock lock(&service_->mu_);
  --service_->runner_uses_;
}

absl::Status PredictionService::SendTo(const std::optional<RunnerUse>& use,
                                       const runner::ServerMessage& message) {
  if (!use.has_value() || use->channel() == nullptr) {
    return absl::UnavailableError("no runner is connected");
  }
  return use->channel()->Send(message);
}

void PredictionService::PollHealthchecks() {
  while (true) {
    std::optional<RunnerUse> use;
    runner::ServerMessage message;
    bool changed = false;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline = absl::Now() + options_.healthcheck_interval;
      while (!stopping_ && !background_cv_.WaitWithDeadline(&mu_, deadline)) {
      }
      if (stopping_) return;
      const bool serving = state_ == HealthStatus::kReady || state_ == HealthStatus::kUnhealthy;
      // A sync runner answers once its prediction is done: only an idle
      // runner is asked, and only an idle one can be late.
      if (!has_healthcheck_ || channel_ == nullptr || !serving || shutting_down_ ||
          !active_.empty()) {
        continue;
      }
      if (healthcheck_sent_at_.has_value()) {
        if (absl::Now() - *healthcheck_sent_at_ > options_.healthcheck_timeout &&
            state_ != HealthStatus::kUnhealthy) {
          state_ = HealthStatus::kUnhealthy;
          user_healthcheck_error_ =
              absl::StrCat("healthcheck() did not answer within ",
                           absl::FormatDuration(options_.healthcheck_timeout));
          changed = true;
        }
      } else {
        healthcheck_sent_at_ = absl::Now();
        message.mutable_healthcheck()->set_sequence(++healthcheck_sequence_);
        use.emplace(this);
      }
    }
    if (changed) NotifyHealth();
    if (use.has_value()) {
      if (absl::Status sent = SendTo(use, message); !sent.ok()) {
        spdlog::warn("sending a healthcheck to the runner: {}", std::string(sent.message()));
      }
    }
  }
}

void PredictionService::HandleHealthcheckResult(const runner::HealthcheckResult& result) {
  {
    absl::MutexLock lock(&mu_);
    if (result.sequence() != healthcheck_sequence_) return;  // a late answer to an old question
    healthcheck_sent_at_.reset();
    if (state_ != HealthStatus::kReady && state_ != HealthStatus::kUnhealthy) return;
    if (result.healthy()) {
      if (state_ == HealthStatus::kUnhealthy) spdlog::info("healthcheck() passes again");
      state_ = HealthStatus::kReady;
      user_healthcheck_error_.clear();
    } else {
      if (state_ != HealthStatus::kUnhealthy) spdlog::warn("healthcheck() failed: {}", result.error());
      state_ = HealthStatus::kUnhealthy;
      user_healthcheck_error_ = result.error().empty() ? "healthcheck() failed" : result.error();
    }
  }
  NotifyHealth();
}

std::string PredictionService::NewId() {
  // 26 characters of [a-z0-9]: URL-safe, about 134 bits.
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id(26, 'a');
  for (char& c : id) c = kAlphabet[id_random_() % 36];
  return id;
}

absl::Status PredictionService::NotReadyError() const {
  if (shutting_down_) return absl::UnavailableError("Server is shutting down");
  switch (state_) {
    case HealthStatus::kStarting:
      if (restarting_) {
        return absl::UnavailableError(
            "The runner stopped and is being restarted; retry when /health-check says READY");
      }
      return absl::UnavailableError("Setup has not finished yet; retry when /health-check says READY");
    case HealthStatus::kSetupFailed:
      return absl::UnavailableError("Setup failed; see setup.logs in /health-check");
    case HealthStatus::kDefunct:
      return absl::UnavailableError("The runner is defunct; see /health-check");
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<Prediction> PredictionService::Start(PredictionRequest request,
                                                    std::unique_ptr<PredictionObserver> observer) {
  if (!request.id.empty()) {
    if (std::optional<Json> detail = CheckId(request.id)) return InvalidInputError(*std::move(detail));
  }
  if (std::optional<Json> detail = CheckUrlField(request.webhook, "webhook")) {
    return InvalidInputError(*std::move(detail));
  }
  if (std::optional<Json> detail = CheckUrlField(request.output_file_prefix, "output_file_prefix")) {
    return InvalidInputError(*std::move(detail));
  }
  Prediction prediction;
  std::optional<RunnerUse> use;
  std::vector<PredictionObserver*> started_observers;
  bool batch_outputs = false;
  std::string output_dir;
  // The runner's input when it is not the one shown (see below).
  std::optional<Json> runner_input;
  std::shared_ptr<const Json> urls_from;  // where the file inputs' URLs are, if not in runner_input
  std::vector<std::string> file_inputs;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status not_ready = NotReadyError(); !not_ready.ok()) return not_ready;
    const bool train = request.kind == PredictionKind::kTrain;
    const std::optional<InputSchema>& schema = train ? train_schema_ : predict_schema_;
    if (!schema.has_value()) {
      return absl::NotFoundError(train ? "This model has no train() configured"
                                       : "This model has no predict() configured");
    }
    absl::StatusOr<InputSchema::Validated> validated = schema->Validate(std::move(request.input));
    if (!validated.ok()) return validated.status();
    if (!request.id.empty() && active_.contains(request.id)) {
      return absl::AlreadyExistsError(absl::StrCat("prediction ", request.id, " is running"));
    }
    std::optional<Slot> slot = slots_.TryAcquire();
    if (!slot.has_value()) return absl::ResourceExhaustedError("Already running a prediction");

    prediction.id = request.id.empty() ? NewId() : request.id;
    prediction.kind = request.kind;
    file_inputs = std::move(validated->file_inputs);
    // What is shown (responses, webhooks, the finished store) and what the
    // runner gets are one value unless a Secret is hidden in the one shown
    // or fetching files will rewrite the runner's Path URLs.
    if (validated->shown.has_value()) {
      prediction.input = std::make_shared<const Json>(std::move(*validated->shown));
      runner_input = std::move(validated->input);
    } else if (!file_inputs.empty()) {
      // The runner's copy is the shown input but for the files' URLs, which
      // may be megabytes (a data: URI): FetchInputs reads them from the shown
      // one and writes the local paths into the copy.
      std::vector<Json> urls;
      urls.reserve(file_inputs.size());
      for (const std::string& pointer : file_inputs) {
        Json& slot = validated->input[Json::json_pointer(pointer)];
        urls.push_back(std::move(slot));
        slot = nullptr;
      }
      runner_input = validated->input;
      for (size_t i = 0; i < file_inputs.size(); ++i) {
        validated->input[Json::json_pointer(file_inputs[i])] = std::move(urls[i]);
      }
      prediction.input = std::make_shared<const Json>(std::move(validated->input));
      urls_from = prediction.input;
    } else {
      prediction.input = std::make_shared<const Json>(std::move(validated->input));
    }
    prediction.status = PredictionStatus::kProcessing;
    prediction.created_at = request.created_at;
    prediction.started_at = absl::Now();
    for (const std::string& key : validated->unknown_keys) {
      absl::StrAppend(&prediction.logs, "WARNING: ignoring unknown input '", key,
                      "': the model does not take it\n");
    }
    auto active = std::make_unique<Active>();
    active->prediction = prediction;
    active->slot = std::move(*slot);
    if (observer != nullptr) active->observers.push_back(std::move(observer));
    if (!request.webhook.empty() && options_.make_webhook_observer) {
      active->observers.push_back(options_.make_webhook_observer(request));
    }
    active->at_runner = file_inputs.empty();
    active->serial = !file_inputs.empty();
    active->outputs.prediction_id = prediction.id;
    active->outputs.upload_prefix = request.output_file_prefix;
    active->outputs.canceled = &active->stop_uploads;
    active->generation = runner_generation_;
    // A runner elsewhere copies the model's files here (Predict.output_dir):
    // made by the server, now, and removed when the prediction ends. The
    // runner never makes it, so a prediction that outlives its end (its
    // cancel ignored) cannot leave files there for the server's life.
    if (options_.files.confine_outputs) {
      absl::StatusOr<std::string> made = files_.MakeWorkDir();
      if (made.ok()) {
        active->workdir = *std::move(made);
      } else {
        spdlog::error("prediction {}: {}; its Path outputs will be refused", prediction.id,
                      std::string(made.status().message()));
      }
    }
    output_dir = active->workdir;
    started_observers = ObserversOf(*active);
    // Without observers, it may be polled (GET /predictions/{id}): each output as it comes.
    batch_outputs = !started_observers.empty() &&
                    std::none_of(started_observers.begin(), started_observers.end(),
                                 [](const PredictionObserver* o) { return o->WantsEachOutput(); });
    active_[prediction.id] = std::move(active);
    if (file_inputs.empty()) use.emplace(this);
  }
  // Nothing else can reach this prediction's observers before the runner has
  // the Predict frame, so they hear OnStarted first, and without the lock.
  for (PredictionObserver* o : started_observers) o->OnStarted(prediction);

  runner::ServerMessage message;
  runner::Predict* predict = message.mutable_predict();
  predict->set_id(prediction.id);
  predict->set_kind(request.kind == PredictionKind::kTrain ? runner::KIND_TRAIN
                                                           : runner::KIND_PREDICT);
  predict->set_context_json(DumpJson(request.context));
  predict->set_batch_outputs(batch_outputs);
  predict->set_batch_text_items(batch_outputs);
  if (!output_dir.empty()) predict->set_output_dir(output_dir);
  if (file_inputs.empty()) {
    // `prediction` holds the shown input until SendPredict returns.
    const absl::string_view input_text =
        SetPredictInput(runner_input.has_value() ? *runner_input : *prediction.input, predict);
    SendPredict(use, message, input_text);
  } else {
    // Downloads take their time: on file_work_, never on a request thread.
    file_work_.Run(prediction.id, [this, id = prediction.id, message = std::move(message),
                                   input = std::move(*runner_input), urls_from = std::move(urls_from),
                                   pointers = std::move(file_inputs)]() mutable {
      FetchInputsThenSend(id, std::move(message), std::move(input), urls_from.get(), pointers);
    });
  }
  NotifyHealth();
  return prediction;
}

void PredictionService::SendPredict(const std::optional<RunnerUse>& use,
                                    const runner::ServerMessage& message,
                                    absl::string_view input_text) {
  absl::Status sent;
  if (!use.has_value() || use->channel() == nullptr) {
    sent = absl::UnavailableError("no runner is connected");
  } else {
    sent = use->channel()->SendPredict(message, input_text);
  }
  if (sent.ok()) return;
  // Accepted but undeliverable: it ends here, failed, and the observers hear
  // it like any other end (unless the runner's end already ended it).
  CompleteWithoutRunner(ClaimEnd(message.predict().id()), PredictionStatus::kFailed,
                        absl::StrCat("could not reach the runner: ", sent.message()));
}

void PredictionService::FetchInputsThenSend(const std::string& id, runner::ServerMessage message,
                                            Json input, const Json* urls_from,
                                            const std::vector<std::string>& pointers) {
  Active* active;  // stays in active_ while this task runs (see Active::serial)
  {
    absl::MutexLock lock(&mu_);
    active = FindActive(id);
    if (active == nullptr) return;
  }
  absl::StatusOr<std::string> dir =
      active->workdir.empty() ? files_.MakeWorkDir() : absl::StatusOr<std::string>(active->workdir);
  absl::Status fetched = dir.status();
  if (dir.ok()) {
    active->workdir = *dir;
    fetched = files_.FetchInputs(input, pointers, *dir, &active->cancel_requested, urls_from);
  }
  std::optional<RunnerUse> use;
  bool canceled;
  std::string runner_gone;
  {
    absl::MutexLock lock(&mu_);
    canceled = active->cancel_requested.load();
    if (!canceled && fetched.ok()) {
      if (active->generation != runner_generation_) {
        // The runner it was accepted for is gone; a new one (if any) is not
        // set up for it.
        runner_gone = runner_gone_reason_;
      } else {
        active->at_runner = true;  // from now on a cancel goes to the runner
        use.emplace(this);
      }
    }
  }
  if (canceled || !fetched.ok() || !runner_gone.empty()) {
    CompleteWithoutRunner(ClaimEnd(id),
                          canceled ? PredictionStatus::kCanceled : PredictionStatus::kFailed,
                          canceled       ? ""
                          : fetched.ok() ? runner_gone
                                         : std::string(fetched.message()));
    return;
  }
  const absl::string_view input_text = SetPredictInput(input, message.mutable_predict());
  SendPredict(use, message, input_text);
}

PredictionService::Active* PredictionService::ClaimEnd(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return ClaimEndLocked(id);
}

PredictionService::Active* PredictionService::ClaimEndLocked(const std::string& id) {
  Active* active = FindActive(id);
  if (active != nullptr) active->ending = true;
  return active;
}

std::vector<PredictionObserver*> PredictionService::ObserversOf(const Active& active) const {
  std::vector<PredictionObserver*> observers;
  for (const auto& observer : active.observers) observers.push_back(observer.get());
  return observers;
}

void PredictionService::CompleteWithoutRunner(Active* active, PredictionStatus status,
                                              const std::string& error) {
  if (active == nullptr) return;
  Finish(active, [&](Active& ended) {
    ended.prediction.status = status;
    if (!error.empty()) ended.prediction.error = error;
    ended.prediction.completed_at = absl::Now();
  });
}

void PredictionService::CompleteOrphan(Active* active, const std::string& reason,
                                       bool restarting) {
  if (active == nullptr) return;
  if (!active->cancel_requested.load()) {
    CompleteWithoutRunner(active, PredictionStatus::kFailed, reason);
    return;
  }
  Finish(active, [&](Active& ended) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string message =
        ended.escalated
            ? absl::StrCat("The prediction did not stop within ",
                           absl::FormatDuration(options_.cancel_timeout),
                           " of being canceled; the runner was ",
                           restarting ? "restarted" : "stopped")
            : absl::StrCat("The prediction was canceled; the runner ended before it stopped: ",
                           reason);
    AppendLogs(ended, absl::StrCat("[cog-server] ", message, "\n"));
    ended.prediction.status = PredictionStatus::kCanceled;
    ended.prediction.error = message;
    if (OutputsOver(ended) && !ended.file_error.empty()) {
      // Canceled for its outputs, not by anyone: it failed, and says why.
      ended.prediction.status = PredictionStatus::kFailed;
      ended.prediction.error = ended.file_error;
      ended.prediction.output = nullptr;
    }
    ended.prediction.completed_at = absl::Now();
  });
}

void PredictionService::Finish(Active* active, const std::function<void(Active&)>& complete) {
  // Its directory goes while it still counts as running, so that nothing of
  // it is left once health says it is done.
  if (!active->workdir.empty()) files_.RemoveWorkDir(active->workdir);
  std::unique_ptr<Active> ended;
  std::shared_ptr<const Prediction> final_state;
  {
    absl::MutexLock lock(&mu_);
    complete(*active);
    auto it = active_.find(active->prediction.id);
    ended = std::move(it->second);
    active_.erase(it);
    // In the same step as it leaves active_ (one meaning of "running"), and
    // before the caller hears of the end, so that a client that sends its
    // next request at once finds the slot free.
    ended->slot.reset();
    // Moved, not copied: the observers below read the same final state.
    final_state = std::make_shared<const Prediction>(std::move(ended->prediction));
    finished_.Add(final_state);
  }
  if (options_.on_completed) options_.on_completed(*final_state);
  for (const auto& observer : ended->observers) observer->OnCompleted(*final_state);
  const uint64_t output_bytes = ended->output_bytes;
  ended.reset();
  if (options_.heap_trimmer != nullptr) options_.heap_trimmer->Released(output_bytes);
  NotifyHealth();
}

void PredictionService::WatchCancels() {
  while (true) {
    std::optional<RunnerUse> use;
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      absl::Time next = absl::InfiniteFuture();
      std::vector<std::string> late;
      for (auto& [id, active] : active_) {
        if (!active->cancel_sent_at.has_value() || active->escalated || active->ending ||
            active->generation != runner_generation_) {
          continue;
        }
        const absl::Time due = *active->cancel_sent_at + options_.cancel_timeout;
        if (due <= now) {
          active->escalated = true;
          late.push_back(id);
        } else {
          next = std::min(next, due);
        }
      }
      if (late.empty()) {
        // Woken by a cancel going out, by stopping, or at the next due time;
        // the loop works out again what is due either way.
        background_cv_.WaitWithDeadline(&mu_, next);
        continue;
      }
      reason = absl::StrCat(late.size() == 1 ? "prediction " : "predictions ",
                            absl::StrJoin(late, ", "), " did not stop within ",
                            absl::FormatDuration(options_.cancel_timeout), " of being canceled");
      use.emplace(this);
    }
    if (use->control() == nullptr) {
      spdlog::error("{}, and nothing can restart the runner", reason);
      continue;
    }
    spdlog::error("{}: restarting the runner", reason);
    use->control()->RestartRunner(reason);
  }
}

void PredictionService::NotifyHealth() {
  if (!options_.on_health_change) return;
  absl::MutexLock lock(&notify_mu_);
  HealthChange now;
  {
    absl::MutexLock state_lock(&mu_);
    now.status = ShownStatus();
    now.setup_succeeded = setup_.status == "succeeded";
    now.shutting_down = shutting_down_;
  }
  if (notified_ == now) return;  // most predictions change nothing a prober sees
  notified_ = now;
  options_.on_health_change(now);
}

absl::Status PredictionService::Cancel(absl::string_view id, std::optional<PredictionKind> kind) {
  std::optional<RunnerUse> use;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end() || (kind.has_value() && it->second->prediction.kind != *kind)) {
      return absl::NotFoundError(absl::StrCat("no running prediction has id '", id, "'"));
    }
    Active& active = *it->second;
    active.stop_uploads = true;
    if (active.ending) return absl::OkStatus();  // the runner is done with it; its uploads stop
    active.cancel_requested = true;
    if (!active.at_runner) return absl::OkStatus();  // stops its downloads
    // Once: a client repeating its cancel must not make a storm of them at
    // the runner (each a signal and a read in its thread).
    if (active.cancel_sent_at.has_value()) return absl::OkStatus();
    active.cancel_sent_at = absl::Now();
    background_cv_.SignalAll();  // WatchCancels times it
    use.emplace(this);
  }
  runner::ServerMessage message;
  message.mutable_cancel()->set_id(std::string(id));
  return SendTo(use, message);
}

void PredictionService::CancelAll() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, active] : active_) ids.push_back(id);
  }
  for (const std::string& id : ids) Cancel(id).IgnoreError();
}

absl::StatusOr<Prediction> PredictionService::Get(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(id);
  if (it != active_.end()) return it->second->prediction;
  if (std::shared_ptr<const Prediction> ended = finished_.Find(id)) return *ended;
  return absl::NotFoundError(
      absl::StrCat("no prediction with id '", id, "' is running or ended recently on this server"));
}

HealthStatus PredictionService::ShownStatus() const {
  if (state_ == HealthStatus::kReady && static_cast<int>(active_.size()) >= slots_.capacity()) {
    return HealthStatus::kBusy;
  }
  return state_;
}

HealthReport PredictionService::Health(bool with_setup_logs) const {
  absl::MutexLock lock(&mu_);
  HealthReport report;
  report.status = ShownStatus();
  report.setup.started_at = setup_.started_at;
  report.setup.completed_at = setup_.completed_at;
  report.setup.status = setup_.status;
  if (with_setup_logs) report.setup.logs = setup_.logs;
  report.concurrency_max = slots_.capacity();
  report.concurrency_current = static_cast<int>(active_.size());
  report.version = versions_;
  report.shutting_down = shutting_down_;
  report.user_healthcheck_error = user_healthcheck_error_;
  return report;
}

absl::StatusOr<std::string> PredictionService::Schema() const {
  absl::MutexLock lock(&mu_);
  if (schema_text_.empty() && state_ == HealthStatus::kSetupFailed) {
    // It never will: the model could not be loaded (a syntax error, a
    // signature the runner refuses); setup's logs say why.
    return absl::UnavailableError("The model could not be loaded, so it has no schema; see setup.logs in /health-check");
  }
  if (schema_text_.empty()) {
    return absl::UnavailableError("The runner has not reported the model's schema yet");
  }
  return schema_text_;
}

bool PredictionService::has_train() const {
  absl::MutexLock lock(&mu_);
  return has_train_;
}

void PredictionService::BeginShutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  NotifyHealth();
}

bool PredictionService::WaitUntilIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return active_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

void PredictionService::OnRunnerConnected(RunnerChannel* channel, RunnerControl* control) {
  absl::MutexLock lock(&mu_);
  channel_ = channel;
  control_ = control;
}

void PredictionService::OnRunnerMessage(runner::RunnerMessage message) {
  const std::string* id = nullptr;
  bool has_files = false;
  switch (message.message_case()) {
    case runner::RunnerMessage::kLog:
      id = &message.log().id();
      break;
    case runner::RunnerMessage::kMetric:
      id = &message.metric().id();
      break;
    case runner::RunnerMessage::kOutput:
      id = &message.output().id();
      has_files = !message.output().files_json().empty();
      break;
    case runner::RunnerMessage::kDone:
      id = &message.done().id();
      has_files = !message.done().files_json().empty();
      break;
    default:
      break;
  }
  if (id != nullptr && !id->empty()) {
    bool serial = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = active_.find(*id);
      if (it != active_.end()) {
        it->second->serial = it->second->serial || has_files;
        serial = it->second->serial;
      }
    }
    if (serial) {
      const std::string key = *id;  // `id` points into the message moved below
      file_work_.Run(key, [this, message = std::move(message)]() mutable { Dispatch(message); });
      return;
    }
  }
  Dispatch(message);
}

void PredictionService::Dispatch(runner::RunnerMessage& message) {
  switch (message.message_case()) {
    case runner::RunnerMessage::kHello:
      HandleHello(message.hello());
      break;
    case runner::RunnerMessage::kSetupDone:
      HandleSetupDone(message.setup_done());
      break;
    case runner::RunnerMessage::kLog:
      HandleLog(message.log());
      break;
    case runner::RunnerMessage::kOutput:
      HandleOutput(message.output());
      break;
    case runner::RunnerMessage::kMetric:
      HandleMetric(message.metric());
      break;
    case runner::RunnerMessage::kDone:
      HandleDone(*message.mutable_done());
      break;
    case runner::RunnerMessage::kHealthcheckResult:
      HandleHealthcheckResult(message.healthcheck_result());
      break;
    default:  // a BadFrame never gets here (RunnerConnection handles it)
      break;
  }
}

void PredictionService::FailSetup(const std::string& logs) {
  state_ = HealthStatus::kSetupFailed;
  setup_.status = "failed";
  if (!setup_.started_at.has_value()) setup_.started_at = absl::Now();
  setup_.completed_at = absl::Now();
  AppendCappedLogs(setup_.logs, setup_.logs_dropped, options_.max_log_bytes, logs);
  if (!setup_.logs.empty() && setup_.logs.back() != '\n') setup_.logs += '\n';
}

void PredictionService::HandleHello(const runner::Hello& hello) {
  std::optional<RunnerUse> use;
  {
    absl::MutexLock lock(&mu_);
    versions_["runner"] = hello.runner_version();
    versions_["python"] = hello.python_version();
    versions_["cog"] = hello.cog_version();
    if (hello.protocol_version() != runner::PROTOCOL_VERSION_CURRENT) {
      FailSetup(absl::StrCat("The runner speaks protocol version ", hello.protocol_version(),
                             ", this server speaks ", runner::PROTOCOL_VERSION_CURRENT,
                             ": install matching versions of cog-server and its runner."));
    } else if (!hello.load_error().empty()) {
      FailSetup(hello.load_error());
    } else if (AcceptSchema(hello)) {
      use.emplace(this);
      if (options_.files.confine_outputs && !hello.copies_outputs()) {
        // Older than this server: it names the model's files where they are,
        // outside the shared directory, and each Path output would fail.
        const std::string warning = absl::StrCat(
            "[cog-server: runner ", hello.runner_version(), " does not copy Path outputs into the ",
            "directory this server shares with it (--files-dir); every Path output will be refused: ",
            "install the runner of this server's version in the model's image]");
        spdlog::error("{}", warning);
        AppendCappedLogs(setup_.logs, setup_.logs_dropped, options_.max_log_bytes, absl::StrCat(warning, "\n"));
      }
    }
    if (options_.concurrency_from_runner && hello.max_concurrency() >= 1) {
      slots_.SetCapacity(static_cast<int>(hello.max_concurrency()));
    }
  }
  if (!use.has_value()) {
    NotifyHealth();
    return;
  }
  runner::ServerMessage message;
  message.mutable_setup()->set_weights(options_.weights);
  message.mutable_setup()->set_max_frame_bytes(options_.max_output_bytes);
  if (options_.files.confine_outputs) message.mutable_setup()->set_files_dir(files_.root());
  absl::Status sent = SendTo(use, message);
  if (!sent.ok()) spdlog::error("sending setup to the runner: {}", std::string(sent.message()));
}

bool PredictionService::AcceptSchema(const runner::Hello& hello) {
  // A restarted runner's schema replaces the last one's (the model may have
  // changed under it).
  predict_schema_.reset();
  train_schema_.reset();
  absl::StatusOr<Json> parsed = ParseRunnerJson(hello.openapi_json(), "the OpenAPI schema");
  if (!parsed.ok()) {
    FailSetup(std::string(parsed.status().message()));
    return false;
  }
  const Json& document = *parsed;
  if (document.contains("components") && document["components"].contains("schemas") &&
      document["components"]["schemas"].contains("Input")) {
    absl::StatusOr<InputSchema> predict = InputSchema::FromOpenApi(document, "Input");
    if (!predict.ok()) {
      FailSetup(absl::StrCat("The runner sent an unusable OpenAPI schema: ",
                             predict.status().message()));
      return false;
    }
    predict_schema_ = std::move(*predict);
  }
  has_train_ = hello.has_train();
  has_healthcheck_ = hello.has_healthcheck();
  if (has_train_) {
    absl::StatusOr<InputSchema> train = InputSchema::FromOpenApi(document, "TrainingInput");
    if (train.ok()) train_schema_ = std::move(*train);
  }
  if (!predict_schema_.has_value() && !train_schema_.has_value()) {
    FailSetup("The runner sent an OpenAPI schema with neither Input nor TrainingInput");
    return false;
  }
  schema_text_ = hello.openapi_json();
  setup_.started_at = absl::Now();
  return true;
}

void PredictionService::HandleSetupDone(const runner::SetupDone& done) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != HealthStatus::kStarting) return;
    if (!done.succeeded()) {
      FailSetup("");
      spdlog::error("setup failed: {}", done.error());
    } else {
      state_ = HealthStatus::kReady;
      setup_.status = "succeeded";
      setup_.completed_at = absl::Now();
      spdlog::info("{}setup succeeded in {}", restarting_ ? "restarted runner: " : "",
                   absl::FormatDuration(*setup_.completed_at -
                                        setup_.started_at.value_or(*setup_.completed_at)));
      restarting_ = false;
    }
  }
  NotifyHealth();
}

void PredictionService::HandleLog(const runner::Log& log) {
  Active* active = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (log.id().empty() && setup_.status.empty()) {  // loading or setting up
      // Bounded as a prediction's are: a setup() that prints without end
      // would otherwise grow the server, and every /health-check with it.
      AppendCappedLogs(setup_.logs, setup_.logs_dropped, options_.max_log_bytes, log.text());
      return;
    }
    if (!log.id().empty()) active = FindActive(log.id());
    if (active != nullptr) AppendLogs(*active, log.text());
  }
  if (active == nullptr) {
    // Outside setup and outside any running prediction: the server's own log.
    const char* source = log.source() == runner::LOG_SOURCE_STDERR   ? "stderr"
                         : log.source() == runner::LOG_SOURCE_RUNNER ? "runner"
                                                                     : "stdout";
    stray_output_.Write(source, log.id(), log.text());
    return;
  }
  // Safe without the lock: a prediction's events are handled one at a time,
  // on the reader thread or (once it has file work) on file_work_, and only
  // they change it, complete it and destroy its observers. Others (Get) only
  // read it, under the lock.
  for (const auto& o : active->observers) o->OnLog(active->prediction, log.text());
}

PredictionService::Active* PredictionService::FindActive(const std::string& id) {
  auto it = active_.find(id);
  return it == active_.end() || it->second->ending ? nullptr : it->second.get();
}

void PredictionService::AppendLogs(Active& active, absl::string_view text) {
  AppendCappedLogs(active.prediction.logs, active.logs_dropped, options_.max_log_bytes, text);
}

void PredictionService::HandleOutput(const runner::Output& output) {
  if (output.value_items()) {
    // Several items in one frame: a JSON array, each element an item of its own.
    absl::StatusOr<Json> items = ParseRunnerJson(output.value_json(), "outputs");
    if (items.ok() && (!items->is_array() || !output.files_json().empty() ||
                       !output.value_text().empty())) {
      items = absl::InvalidArgumentError(
          "cog-server could not read outputs from the runner: an Output with value_items must "
          "carry a JSON array in value_json, and nothing in files_json or value_text");
    }
    return AppendOutputs(output.id(), std::move(items), output.value_json().size());
  }
  absl::StatusOr<Json> parsed = output.value_text().empty()
                                    ? ParseRunnerJson(output.value_json(), "an output")
                                    : RunnerText(output.value_text(), "an output");
  if (parsed.ok() && !output.files_json().empty()) {
    // Only on file_work_, where nothing else touches this prediction: the
    // transfer runs without the lock.
    PredictionFiles::OutputTarget* target;
    {
      absl::MutexLock lock(&mu_);
      Active* active = FindActive(output.id());
      if (active == nullptr) return;
      target = &active->outputs;
    }
    absl::Status files = files_.ResolveOutputs(*parsed, ParseFilePointers(output.files_json()), *target);
    if (!files.ok()) parsed = files;
  }
  if (!parsed.ok()) return AppendOutputs(output.id(), parsed.status(), 0);
  // A file's URL may have become a data: URI of the whole file: what is kept
  // is counted, not what came.
  const size_t bytes = output.files_json().empty()
                           ? output.value_text().size() + output.value_json().size()
                           : FinishedPredictions::ApproximateJsonBytes(*parsed);
  Json one = Json::array();
  one.push_back(*std::move(parsed));
  AppendOutputs(output.id(), std::move(one), bytes);
}

// Appends `items` (a JSON array) to the prediction's output, each an output
// its observers hear of; an error instead fails the prediction when it ends.
void PredictionService::AppendOutputs(const std::string& id, absl::StatusOr<Json> items,
                                      size_t bytes) {
  Active* active;
  size_t first = 0;
  bool over = false;
  {
    absl::MutexLock lock(&mu_);
    active = FindActive(id);
    if (active == nullptr) return;
    if (!items.ok()) {
      if (absl::IsCancelled(items.status())) {
        active->uploads_canceled = true;
      } else if (active->file_error.empty()) {
        active->file_error = std::string(items.status().message());
      }
      return;
    }
    if (OutputsOver(*active)) return;  // the items from there on are dropped
    // Each frame is within max_output_bytes, but a generator may send frames
    // without end: its outputs, kept until it ends, are bounded in all.
    active->output_bytes += bytes + kOutputItemBytes * items->size();
    over = OutputsOver(*active);
    if (over) {
      // Canceled already (by its client): it ends canceled, as asked.
      if (active->cancel_requested.load()) return;
      const size_t kept = active->prediction.output.is_array() ? active->prediction.output.size() : 0;
      if (active->file_error.empty()) active->file_error = absl::StrCat(
          "The prediction's outputs passed --max-output-bytes (", options_.max_output_bytes,
          " bytes in all, counting ", kOutputItemBytes, " for each item besides its JSON) after ",
          kept, kept == 1 ? " item" : " items", "; it was stopped");
    } else {
      Json& list = active->prediction.output;
      if (!list.is_array()) list = Json::array();
      first = list.size();
      for (Json& item : *items) list.push_back(std::move(item));
    }
  }
  if (over) {
    // Stops the generator; its Done ends it failed. Not from here: this may be
    // the thread that reads the runner, and a write to the runner can wait
    // (for another prediction's large Predict, while the runner waits for us
    // to read what it sends).
    file_work_.Run(id, [this, id] { Cancel(id).IgnoreError(); });
    return;
  }
  // Only this prediction's own event handling, which this is, changes its
  // output: the items stay where they are while the observers read them.
  const Json& list = active->prediction.output;
  for (size_t i = first; i < list.size(); ++i) {
    for (const auto& o : active->observers) o->OnOutput(active->prediction, list[i]);
  }
}

void PredictionService::HandleMetric(const runner::Metric& metric) {
  absl::StatusOr<Json> parsed = ParseRunnerJson(metric.value_json(), "a metric");
  if (!parsed.ok()) {
    spdlog::warn("metric {} of prediction {} dropped: {}", absl::CHexEscape(metric.name()),
                 absl::CHexEscape(metric.id()), std::string(parsed.status().message()));
    return;
  }
  const Json& value = *parsed;
  Active* active;
  {
    absl::MutexLock lock(&mu_);
    active = FindActive(metric.id());
    if (active == nullptr) return;
    Json& metrics = active->prediction.metrics;
    if (!metrics.is_object()) metrics = Json::object();
    Json& slot = metrics[metric.name()];
    switch (metric.mode()) {
      case runner::METRIC_MODE_INCREMENT:
        if (slot.is_number() && value.is_number()) {
          slot = slot.is_number_integer() && value.is_number_integer()
                     ? Json(slot.get<int64_t>() + value.get<int64_t>())
                     : Json(slot.get<double>() + value.get<double>());
        } else {
          slot = value;
        }
        break;
      case runner::METRIC_MODE_APPEND: {
        // Kept until the prediction ends, like its outputs, and bounded as
        // they are: 300 k appends of 1 KB took the server to 668 MB.
        const uint64_t cost = metric.value_json().size() + 16;
        if (options_.max_output_bytes != 0 &&
            active->appended_metric_bytes + cost > options_.max_output_bytes) {
          if (!active->appends_dropped) {
            active->appends_dropped = true;
            AppendLogs(*active, absl::StrCat("[cog-server: values appended to metric '", metric.name(),
                                             "' past --max-output-bytes (", options_.max_output_bytes,
                                             " bytes of appended values) are dropped]\n"));
          }
          if (slot.is_null()) metrics.erase(metric.name());
          return;  // nor sent to the observers
        }
        active->appended_metric_bytes += cost;
        if (!slot.is_array()) slot = slot.is_null() ? Json::array() : Json::array({slot});
        slot.push_back(value);
        break;
      }
      default:
        slot = value;
    }
  }
  for (const auto& o : active->observers) o->OnMetric(active->prediction, metric.name(), value);
}

void PredictionService::HandleDone(runner::Done& done) {
  // Claimed, it stays in active_ (running, holding its slot) while its output
  // files are uploaded; its final state is set as it leaves (Finish).
  Active* active = ClaimEnd(done.id());
  if (active == nullptr) return;
  PredictionStatus status;
  switch (done.status()) {
    case runner::DONE_STATUS_SUCCEEDED:
      status = PredictionStatus::kSucceeded;
      break;
    case runner::DONE_STATUS_CANCELED:
      status = PredictionStatus::kCanceled;
      break;
    default:
      status = PredictionStatus::kFailed;
  }
  // Written only by this prediction's own event handling, which this is.
  std::string file_error = active->file_error;
  std::optional<Json> output;  // replaces the prediction's output when set
  bool has_output = false;
  if (!done.output_text().empty()) {
    has_output = true;
    absl::StatusOr<Json> text = RunnerText(std::move(*done.mutable_output_text()), "the output");
    if (text.ok()) {
      output = *std::move(text);
    } else if (file_error.empty()) {
      file_error = std::string(text.status().message());
    }
  } else if (!done.output_json().empty()) {
    has_output = true;
    absl::StatusOr<Json> parsed = ParseRunnerJson(done.output_json(), "the output");
    if (!parsed.ok()) {
      if (file_error.empty()) file_error = std::string(parsed.status().message());
    } else {
      output = *std::move(parsed);
      if (!done.files_json().empty()) {
        if (absl::Status files = files_.ResolveOutputs(
                *output, ParseFilePointers(done.files_json()), active->outputs);
            absl::IsCancelled(files)) {
          active->uploads_canceled = true;
          output.reset();
        } else if (!files.ok()) {
          file_error = std::string(files.message());
        }
      }
    }
  }
  if (active->uploads_canceled && status == PredictionStatus::kSucceeded) {
    status = PredictionStatus::kCanceled;  // canceled while its files were uploaded
  }
  Finish(active, [&](Active& ended) {
    Prediction& prediction = ended.prediction;
    prediction.status = status;
    if (!done.error().empty()) prediction.error = done.error();
    if (output.has_value()) {
      prediction.output = *std::move(output);
    } else if (!has_output && status == PredictionStatus::kSucceeded &&
               !prediction.output.is_array()) {
      prediction.output = Json::array();  // an iterator that yielded nothing
    }
    if (!file_error.empty() &&
        (prediction.status == PredictionStatus::kSucceeded || OutputsOver(ended))) {
      prediction.status = PredictionStatus::kFailed;
      prediction.error = file_error;
      prediction.output = nullptr;
    }
    prediction.completed_at = absl::Now();
    if (prediction.status == PredictionStatus::kSucceeded) {
      Json metrics = Json::object();
      metrics["predict_time"] = Seconds(*prediction.completed_at - *prediction.started_at);
      if (prediction.metrics.is_object()) {
        for (auto& [name, value] : prediction.metrics.items()) metrics[name] = value;
      }
      prediction.metrics = std::move(metrics);
    } else {
      prediction.metrics = nullptr;  // as legacy Cog: metrics only for a success
    }
  });
}

bool PredictionService::OnRunnerGone(const std::string& reason, bool may_restart) {
  std::vector<Active*> orphans;
  std::vector<std::string> serial;
  bool restart = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == HealthStatus::kStarting && !restarting_) {
      FailSetup(reason);  // died before or during its first setup: that is why setup failed
    } else if (state_ == HealthStatus::kSetupFailed || state_ == HealthStatus::kDefunct ||
               shutting_down_) {
      // Stays as it is: nothing more will run.
    } else if (may_restart) {
      // A restarted runner that dies in its setup (an OOM kill, say) is one
      // more restart, within the limit, not a setup that failed for good.
      state_ = HealthStatus::kStarting;
      restarting_ = true;
      setup_ = SetupReport();  // the new runner's setup, with its own logs
      restart = true;
    } else {
      state_ = HealthStatus::kDefunct;
    }
    has_healthcheck_ = false;
    healthcheck_sent_at_.reset();
    user_healthcheck_error_.clear();
    // Ended here, under the same lock as the state changed: nothing new starts
    // on this runner, and a Cancel from now on finds them ending.
    for (auto& [id, active] : active_) {
      if (active->ending) continue;
      if (active->serial) {
        serial.push_back(id);
      } else {
        active->ending = true;
        orphans.push_back(active.get());
      }
    }
    ++runner_generation_;
    runner_gone_reason_ = reason;
    channel_ = nullptr;
    control_ = nullptr;
    // Whoever took the channel before this point is done with it before the
    // caller may destroy it. Their sends fail fast: the runner is gone.
    auto unused = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return runner_uses_ == 0; };
    mu_.Await(absl::Condition(&unused));
  }
  for (Active* active : orphans) CompleteOrphan(active, reason, restart);
  // After what is queued for them: a Done already received still counts.
  for (const std::string& id : serial) {
    file_work_.Run(id, [this, id, reason, restart] { CompleteOrphan(ClaimEnd(id), reason, restart); });
  }
  NotifyHealth();
  return restart;
}

}  // namespace cog
