// PredictionService: the core. The one owner of the runtime's state: the
// runner's health and setup, the model's schema, and every running prediction.
//
// Front ends (the REST gateway, the gRPC service) call Start / Cancel / Get /
// Health / Schema. The runner side (RunnerSupervisor) reports the connection,
// every frame the runner sends and the runner's end; after an end it may
// connect another runner, which is set up again (STARTING, then READY).
//
// "Running" has one meaning everywhere: a prediction is in active_ and holds
// its slot from Start until its end has been fully handled (files uploaded,
// its directory removed); it leaves active_ and returns its slot in one step
// under the lock. So Health (BUSY), Start (409), Get, Cancel and
// WaitUntilIdle always agree. A prediction's events reach the observer
// given to Start, in order, then the observer is destroyed; observers are
// called without the service's lock held and must not block. The Prediction an
// observer is given is the live one, valid only during the call: an observer
// that needs it later copies what it needs (each event costs the observer what
// it reads, never a copy of the whole prediction with all its logs).
//
// Thread-safe. The RunnerChannel and RunnerControl are not owned; each must
// stay valid until OnRunnerGone for its runner returns.
#ifndef COG_SERVER_PREDICTION_SERVICE_H_
#define COG_SERVER_PREDICTION_SERVICE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cog/v1/runner.pb.h"
#include "server/finished_predictions.h"
#include "server/heap_trimmer.h"
#include "server/input_schema.h"
#include "server/json.h"
#include "server/keyed_executor.h"
#include "server/prediction.h"
#include "server/prediction_files.h"
#include "server/predictor_output_log.h"
#include "server/runner_connection.h"
#include "server/slot_pool.h"

namespace cog {

// Hears what happens to one prediction. OnCompleted is called exactly once,
// last; then the observer is destroyed.
class PredictionObserver {
 public:
  virtual ~PredictionObserver() = default;
  virtual void OnStarted(const Prediction& prediction) {}
  virtual void OnOutput(const Prediction& prediction, const Json& item) {}
  virtual void OnLog(const Prediction& prediction, absl::string_view text) {}
  virtual void OnMetric(const Prediction& prediction, absl::string_view name,
                        const Json& value) {}
  virtual void OnCompleted(const Prediction& prediction) = 0;
  // Whether it must hear of each output as soon as the runner yields it
  // (streams, `output` webhooks). When no observer does, the runner may send
  // a prediction's outputs several at once (Predict.batch_outputs).
  virtual bool WantsEachOutput() const { return true; }
};

// What the core may ask of whoever supervises the runner (RunnerSupervisor).
class RunnerControl {
 public:
  virtual ~RunnerControl() = default;
  // Kills the runner and starts another. Returns at once; the end is reported
  // later, as any other, through OnRunnerGone (with `reason`).
  virtual void RestartRunner(const std::string& reason) = 0;
};

enum class HealthStatus { kStarting, kReady, kBusy, kSetupFailed, kDefunct, kUnhealthy };
absl::string_view HealthStatusName(HealthStatus status);  // "READY", ...

struct SetupReport {
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> completed_at;
  std::string status;  // "", "succeeded" or "failed"
  std::string logs;
  size_t logs_dropped = 0;  // bytes cut from `logs` under --max-log-bytes
};

struct HealthReport {
  HealthStatus status = HealthStatus::kStarting;
  SetupReport setup;
  int concurrency_max = 1;
  int concurrency_current = 0;
  std::string user_healthcheck_error;
  std::map<std::string, std::string> version;
  bool shutting_down = false;
};

// What on_health_change is told: what a prober and the readiness file see.
struct HealthChange {
  HealthStatus status = HealthStatus::kStarting;  // kBusy while every slot is taken
  bool setup_succeeded = false;
  bool shutting_down = false;

  bool operator==(const HealthChange& other) const {
    return status == other.status && setup_succeeded == other.setup_succeeded &&
           shutting_down == other.shutting_down;
  }
  static HealthChange Of(const HealthReport& report) {
    return {report.status, report.setup.status == "succeeded", report.shutting_down};
  }
};

class PredictionService {
 public:
  struct Options {
    int max_concurrency = 1;
    std::string server_version;
    std::string weights;  // passed to setup(); empty: the runner's default
    // Called (without the lock, on any thread, one call at a time) when what
    // it is told changes: setup ending, the runner dying, the last free slot
    // taken or freed, shutting down. Not the whole Health(): with one slot,
    // every prediction changes it twice.
    std::function<void(const HealthChange&)> on_health_change;
    // Makes the observer that sends a request's webhooks (requests with a
    // `webhook` only). Null: webhooks are not sent.
    std::function<std::unique_ptr<PredictionObserver>(const PredictionRequest&)> make_webhook_observer;
    // Called (without the lock) with every prediction that ends, before its
    // observers hear of it. For counters; must not block.
    std::function<void(const Prediction&)> on_completed;
    // Told what a prediction's outputs came to once it has ended and let go
    // of them, to hand the heap back after large ones. Not owned; may be null.
    HeapTrimmer* heap_trimmer = nullptr;
    // Where Path inputs are fetched to and Path outputs go.
    PredictionFiles::Options files;
    // Threads for file transfers (downloads, uploads, data: URIs).
    int file_threads = 4;
    // How often a predictor's own healthcheck() is asked while the server is
    // idle (zero: never), and how long it may take before the model counts
    // as UNHEALTHY.
    absl::Duration healthcheck_interval = absl::Seconds(10);
    absl::Duration healthcheck_timeout = absl::Seconds(5);
    // The largest output the runner may send (Setup.max_frame_bytes); a larger
    // one fails its prediction.
    uint64_t max_output_bytes = 256u << 20;
    // A prediction keeps at most this much of its logs: the newest part, after
    // a line saying how much was dropped. Zero: no limit.
    size_t max_log_bytes = 16u << 20;
    // A prediction that has not ended this long after its cancel went to the
    // runner gets the runner restarted (RunnerControl) and ends canceled,
    // saying so. Zero: never.
    absl::Duration cancel_timeout = absl::Seconds(5);
    // Predictor output that belongs to no prediction (outside setup) goes to
    // the server's log, at most this many bytes a second (PredictorOutputLog).
    size_t stray_output_bytes_per_second = 1u << 20;
    // Take max_concurrency from each runner's Hello (a sidecar's runner reads
    // cog.yaml itself; the server may have none).
    bool concurrency_from_runner = false;
    // How many ended predictions Get still answers for, and for how long.
    FinishedPredictions::Options finished;
  };

  explicit PredictionService(Options options);
  ~PredictionService();

  // ---- front ends ----

  // Validates the input, claims a slot and starts the prediction. Returns its
  // state as started (status "processing"); from then on the observer hears
  // everything, down to exactly one OnCompleted (which may come before Start
  // returns, e.g. when the runner is unreachable). Errors, with nothing started
  // and the observer destroyed unheard:
  // Unavailable (not ready, shutting down), InvalidArgument (carrying a
  // ValidationDetail), ResourceExhausted (every slot busy), AlreadyExists (a
  // prediction with this id is running; Get() has its state).
  absl::StatusOr<Prediction> Start(PredictionRequest request,
                                   std::unique_ptr<PredictionObserver> observer);
  // Asks the runner to cancel (see Options::cancel_timeout). NotFound unless
  // the prediction is running (and, given `kind`, is of that kind: REST's
  // /trainings/{id}/cancel does not cancel a prediction).
  absl::Status Cancel(absl::string_view id, std::optional<PredictionKind> kind = std::nullopt);
  // A running prediction's current state, else an ended one's final state
  // while Options::finished keeps it. NotFound otherwise.
  absl::StatusOr<Prediction> Get(absl::string_view id) const;
  // Without setup's logs for probes and metrics, which do not show them (up
  // to --max-log-bytes to copy each time).
  HealthReport Health(bool with_setup_logs = true) const;
  // The OpenAPI document as JSON text; Unavailable until the runner sent it.
  absl::StatusOr<std::string> Schema() const;
  bool has_train() const;
  // Options::max_log_bytes: also what a stream lets wait of a prediction's
  // logs for a slow client (log_backlog.h).
  size_t max_log_bytes() const { return options_.max_log_bytes; }
  // Refuses new work from now on (Start answers Unavailable).
  void BeginShutdown();
  // Waits until no prediction runs, at most `timeout`. Returns whether none does.
  bool WaitUntilIdle(absl::Duration timeout);
  // Cancels every running prediction.
  void CancelAll();

  // ---- runner side ----

  // A runner connected: frames go to `channel`; `control` (may be null)
  // restarts it when a cancel is not obeyed. Both must stay valid until
  // OnRunnerGone returns.
  void OnRunnerConnected(RunnerChannel* channel, RunnerControl* control = nullptr);
  void OnRunnerMessage(v1::runner::RunnerMessage message);
  // The runner is gone (call once per connected runner, after its last frame
  // was handed over; also without one, for a runner that never connected).
  // Running predictions end: failed with `reason`, or canceled when a cancel
  // was asked for. Returns once nothing uses the channel any more.
  //
  // `may_restart`: the caller would start another runner. Returns whether the
  // service wants one: only when setup had succeeded and the server is not
  // shutting down; health is then STARTING until the new runner's setup ends.
  // Otherwise health becomes SETUP_FAILED when setup had not finished (the
  // runner died of it), DEFUNCT when it had; while shutting down it stays as
  // it is.
  bool OnRunnerGone(const std::string& reason, bool may_restart = false);

 private:
  // A hold on the runner's channel and control for one use without the lock:
  // OnRunnerGone waits until none is held, so that neither is used after it.
  class RunnerUse {
   public:
    explicit RunnerUse(PredictionService* service) ABSL_EXCLUSIVE_LOCKS_REQUIRED(service->mu_);
    ~RunnerUse();  // takes the lock: release it first
    RunnerUse(const RunnerUse&) = delete;
    RunnerUse& operator=(const RunnerUse&) = delete;
    RunnerChannel* channel() const { return channel_; }
    RunnerControl* control() const { return control_; }

   private:
    PredictionService* service_;
    RunnerChannel* channel_;
    RunnerControl* control_;
  };
  // Sends on a held channel; Unavailable when there is none.
  static absl::Status SendTo(const std::optional<RunnerUse>& use,
                             const v1::runner::ServerMessage& message);

  struct Active {
    Prediction prediction;
    std::optional<Slot> slot;  // returned as it leaves active_, before OnCompleted
    // Its end is being handled (ClaimEnd): events and other ends are ignored,
    // Get still shows it running and Cancel has nothing to do.
    bool ending = false;
    // Which runner it was started for (runner_generation_).
    uint64_t generation = 0;
    // When its cancel went to the runner; `escalated` once that took longer
    // than cancel_timeout and the runner was restarted for it.
    std::optional<absl::Time> cancel_sent_at;
    bool escalated = false;
    // The caller's, and the webhook's when the request named one.
    std::vector<std::unique_ptr<PredictionObserver>> observers;
    // An output file that could not be read, or an output the runner sent that
    // could not be read, fails the prediction with this.
    std::string file_error;
    // An output file's upload was stopped by a cancel: a prediction the
    // runner ends succeeded then ends canceled (its outputs are not whole).
    bool uploads_canceled = false;
    // What its outputs so far cost, as AppendOutputs counts them; past
    // max_output_bytes (OutputsOver) the rest are dropped, the runner is told
    // to cancel, and the prediction ends failed, saying so.
    uint64_t output_bytes = 0;
    size_t logs_dropped = 0;  // bytes of its logs dropped under max_log_bytes
    // What values appended to its metrics (mode "append") cost, in JSON;
    // past max_output_bytes further appends are dropped, said once in its logs.
    uint64_t appended_metric_bytes = 0;
    bool appends_dropped = false;
    // False while its Path inputs are being fetched: a cancel then stops the
    // download instead of going to the runner.
    bool at_runner = true;
    // Asked to cancel: if the runner goes before it ends, it ends canceled.
    std::atomic<bool> cancel_requested{false};
    // Asked to cancel at any time, also once the runner is done with it (its
    // output files then still being uploaded): those uploads stop.
    std::atomic<bool> stop_uploads{false};
    // Once it has file work, every later event of this prediction is handled
    // on file_work_ (keyed by its id), so that they stay in order and one
    // thread at a time touches its observers, `outputs` and `workdir`. Only
    // those tasks end it, so while one runs the prediction stays in active_.
    // Either way its `prediction` changes only under the lock (Get reads it).
    bool serial = false;
    std::string workdir;  // its fetched inputs; removed when it ends
    PredictionFiles::OutputTarget outputs;
  };

  // Routes a prediction's event to file_work_ when it has (or now gets) file
  // work; otherwise handles it on the calling (reader) thread.
  // Takes the message apart: a large output is moved out of it, not copied.
  void Dispatch(v1::runner::RunnerMessage& message);
  // Fetches the Path inputs of a prediction, then sends it to the runner.
  // `urls_from`: where the file inputs' URLs are (FetchInputs), or null.
  void FetchInputsThenSend(const std::string& id, v1::runner::ServerMessage message, Json input,
                           const Json* urls_from, const std::vector<std::string>& pointers);
  // Sends a Predict frame; a prediction that cannot be sent ends failed.
  // `input_text`: the Predict's input_text, sent without a copy (see
  // RunnerChannel::SendPredict).
  void SendPredict(const std::optional<RunnerUse>& use, const v1::runner::ServerMessage& message,
                   absl::string_view input_text);
  // Marks a running prediction as ending and returns it (still in active_);
  // null if it is not running or already ending. Whoever gets it calls Finish.
  Active* ClaimEnd(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  Active* ClaimEndLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleHello(const v1::runner::Hello& hello);
  // Reads the schema; false after FailSetup.
  bool AcceptSchema(const v1::runner::Hello& hello) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleSetupDone(const v1::runner::SetupDone& done);
  void HandleLog(const v1::runner::Log& log);
  void HandleOutput(const v1::runner::Output& output);
  bool OutputsOver(const Active& active) const {
    return active.output_bytes > options_.max_output_bytes;
  }
  // `bytes`: what the items take as JSON or text (their files' URLs resolved).
  void AppendOutputs(const std::string& id, absl::StatusOr<Json> items, size_t bytes);
  void HandleMetric(const v1::runner::Metric& metric);
  void HandleDone(v1::runner::Done& done);
  void HandleHealthcheckResult(const v1::runner::HealthcheckResult& result);
  // Asks the runner's healthcheck() now and then (a thread of its own).
  void PollHealthchecks();
  void FailSetup(const std::string& logs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NotReadyError() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // state_, or kBusy while READY with every slot taken: what probes see.
  HealthStatus ShownStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_health_change when what it tells changed since the last call;
  // calls are serialised so that they arrive in order.
  void NotifyHealth() ABSL_LOCKS_EXCLUDED(mu_, notify_mu_);
  // The observers of a running prediction.
  std::vector<PredictionObserver*> ObserversOf(const Active& active) const;
  // The running prediction `id` with its observers, under the lock; null if it
  // is not running. The pointer stays valid (and only this prediction's event
  // handling writes it) until it is taken out of active_, which only its own
  // event handling does: see Active::serial.
  Active* FindActive(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends to a prediction's logs, keeping at most max_log_bytes.
  void AppendLogs(Active& active, absl::string_view text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a claimed prediction that never reached the runner or lost it.
  void CompleteWithoutRunner(Active* active, PredictionStatus status, const std::string& error);
  // Ends a prediction the runner went away from: canceled if a cancel was
  // asked for (saying why when it was not obeyed), else failed with `reason`.
  void CompleteOrphan(Active* active, const std::string& reason, bool restarting);
  // The end of every claimed prediction: its directory goes; then, under the
  // lock, `complete` sets its final state, it leaves active_ and its slot
  // returns; then its observers hear OnCompleted and are destroyed.
  void Finish(Active* active, const std::function<void(Active&)>& complete);
  // Restarts the runner when a canceled prediction outlives cancel_timeout
  // (a thread of its own).
  void WatchCancels();


  const Options options_;
  SlotPool slots_;
  PredictionFiles files_;

  mutable absl::Mutex mu_;
  RunnerChannel* channel_ ABSL_GUARDED_BY(mu_) = nullptr;
  RunnerControl* control_ ABSL_GUARDED_BY(mu_) = nullptr;
  int runner_uses_ ABSL_GUARDED_BY(mu_) = 0;  // RunnerUse objects alive
  // Counts runners gone: a prediction of an earlier runner is never sent to a later one.
  uint64_t runner_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string runner_gone_reason_ ABSL_GUARDED_BY(mu_);  // why the last one went
  bool restarting_ ABSL_GUARDED_BY(mu_) = false;  // STARTING again after a runner died
  // Wakes the healthcheck and cancel-watch threads (stopping, a cancel sent).
  // A CondVar, not mu_.Await(Condition): a thread waiting on a Condition makes
  // every Unlock of mu_ take the slow path and evaluate it (~300 instructions,
  // several times per prediction and twice per output item).
  absl::CondVar background_cv_;
  HealthStatus state_ ABSL_GUARDED_BY(mu_) = HealthStatus::kStarting;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  SetupReport setup_ ABSL_GUARDED_BY(mu_);
  std::string schema_text_ ABSL_GUARDED_BY(mu_);
  std::optional<InputSchema> predict_schema_ ABSL_GUARDED_BY(mu_);
  std::optional<InputSchema> train_schema_ ABSL_GUARDED_BY(mu_);
  bool has_train_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> versions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Active>> active_ ABSL_GUARDED_BY(mu_);
  // Added to in the same step as a prediction leaves active_, so that Get
  // finds it in one or the other. Thread-safe on its own.
  mutable FinishedPredictions finished_;
  std::mt19937_64 id_random_ ABSL_GUARDED_BY(mu_);
  bool has_healthcheck_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t healthcheck_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> healthcheck_sent_at_ ABSL_GUARDED_BY(mu_);  // unanswered since
  std::string user_healthcheck_error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread healthcheck_thread_;
  std::thread cancel_watch_thread_;

  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::optional<HealthChange> notified_ ABSL_GUARDED_BY(notify_mu_);

  PredictorOutputLog stray_output_;

  // Last: destroyed first, running what is queued while the rest still stands.
  KeyedExecutor file_work_;
};

}  // namespace cog

#endif  // COG_SERVER_PREDICTION_SERVICE_H_
