// cog-server: serves a Cog model over the Cog HTTP API and gRPC.
//
// Reads cog.yaml in --working-directory, starts the Python runner as its child
// (or waits for one started elsewhere, --runner-socket with --no-spawn-runner),
// and serves REST on --port and gRPC on --grpc-port until SIGTERM, SIGINT or
// POST /shutdown.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gateway/rest_gateway.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/busy_poller.h"
#include "server/cog_config.h"
#include "server/cpu_budget.h"
#include "server/grpc_service.h"
#include "server/heap_trimmer.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/orphan_reaper.h"
#include "server/outbound_policy.h"
#include "server/prediction_service.h"
#include "server/runner_supervisor.h"
#include "server/server_temp_dir.h"
#include "server/version.h"
#include "server/webhook_sender.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address the HTTP and gRPC servers listen on");
ABSL_FLAG(int, port, -1, "HTTP port (default: $PORT, else 5000; 0 picks a free one)");
ABSL_FLAG(int, grpc_port, 50051, "gRPC port (0 picks a free one, -1 disables gRPC)");
ABSL_FLAG(std::string, working_directory, "", "Directory holding cog.yaml and the model code");
ABSL_FLAG(std::string, python, "python3", "Python interpreter that runs the runner");
ABSL_FLAG(std::string, runner_path, "",
          "Directory holding the runner's Python packages (default: next to the binary)");
ABSL_FLAG(std::string, runner_socket, "",
          "Unix socket the runner connects to (default: a private temporary one)");
ABSL_FLAG(bool, spawn_runner, true,
          "Start the runner as a child; false waits for one started elsewhere (sidecar)");
ABSL_FLAG(std::string, files_dir, "",
          "Directory for prediction files (a cog-server-<pid>-... directory is made in it): inputs "
          "downloaded from URLs, and with --spawn-runner=false the only place Path outputs are read "
          "from (the runner copies a model's files there); for a sidecar, a volume both containers "
          "mount at the same path. Default: $TMPDIR, else /tmp");
ABSL_FLAG(std::string, upload_url, "",
          "Where Path outputs are uploaded (PUT <url>/<file name>); default: data: URIs");
ABSL_FLAG(int64_t, max_download_bytes, int64_t{10} << 30,
          "Largest file an input URL may download to disk; a larger one fails its prediction "
          "(0: no limit)");
ABSL_FLAG(double, file_stall_timeout, 30.0,
          "Seconds over which a Path download or upload must average --min-body-rate bytes a "
          "second; a slower one is abandoned");
ABSL_FLAG(bool, await_explicit_shutdown, false, "Ignore SIGTERM; exit only on POST /shutdown");
ABSL_FLAG(double, runner_shutdown_grace_period, 10.0,
          "Seconds running predictions get to finish when the server shuts down");
ABSL_FLAG(int64_t, max_body_bytes, 100 << 20,
          "Largest request body the HTTP API accepts (larger ones get 413), and largest gRPC "
          "request message (larger ones get RESOURCE_EXHAUSTED)");
ABSL_FLAG(int64_t, max_output_bytes, 256 << 20,
          "Largest output (its JSON) a prediction may return, and most a generator's items may "
          "come to in all (80 bytes an item besides its JSON); more fails that prediction");
ABSL_FLAG(int64_t, webhook_backlog_bytes, 128 << 20,
          "Most bytes of webhook bodies queued or on their way, in all (receivers that do not "
          "answer hold theirs while they are retried); past it new webhooks are dropped and the "
          "server's log says so");
ABSL_FLAG(int64_t, max_log_bytes, 16 << 20,
          "Most log bytes a prediction keeps; past it the oldest go and the logs say so (0: no limit)");
ABSL_FLAG(int64_t, stray_output_rate, 1 << 20,
          "Bytes a second of predictor output outside setup and any prediction written to the "
          "server's log (one record a line); the rest is counted and dropped (0: none)");
ABSL_FLAG(int, max_json_depth, 128,
          "Deepest nesting of arrays and objects a request body (or a gRPC request's input) may "
          "have; deeper gets 422 (gRPC: INVALID_ARGUMENT)");
ABSL_FLAG(int64_t, max_header_bytes, 64 << 10,
          "Largest HTTP request head (request line and header fields) accepted; larger get 431");
ABSL_FLAG(int64_t, max_headers, 100, "Most header fields an HTTP request may have; more get 431");
ABSL_FLAG(int, max_connections, 256,
          "Most HTTP connections open at once; further ones are answered 503 and closed");
ABSL_FLAG(int64_t, max_buffered_body_bytes, int64_t{1} << 30,
          "Most bytes of HTTP request bodies held in memory at once, all connections together "
          "(bodies of 1 MiB or less are not counted; never less than --max-body-bytes); a body that "
          "would pass it gets 503 with Retry-After");
ABSL_FLAG(double, header_timeout, 10.0,
          "Seconds an HTTP request has from its first byte to the end of its headers; then 408");
ABSL_FLAG(int64_t, min_body_rate, 4 << 10,
          "Bytes per second a request body must average once --header-timeout has passed "
          "since it began (a slower one gets 408), and a client must read an answer it holds "
          "up (else the connection is reset); 0: no minimum (each read or write still waits "
          "at most 5 s)");
ABSL_FLAG(double, keep_alive_timeout, 60.0,
          "Seconds an idle HTTP keep-alive connection is kept open waiting for its next request");
ABSL_FLAG(double, healthcheck_interval, 10.0,
          "Seconds between calls of the predictor's healthcheck(), when it has one and the "
          "server is idle (0: never)");
ABSL_FLAG(double, healthcheck_timeout, 5.0,
          "Seconds healthcheck() may take before /health-check says UNHEALTHY");
ABSL_FLAG(std::string, ready_file, "/var/run/cog/ready",
          "Under Kubernetes ($KUBERNETES_SERVICE_HOST set), created once setup succeeds and "
          "removed when shutting down");
ABSL_FLAG(std::string, outbound_deny_cidrs, cog::OutboundPolicy::kDefaultDenyCidrs,
          "Comma-separated IPv4/IPv6 CIDRs that webhooks, downloads and uploads may not "
          "connect to (checked on the resolved address, also after redirects); empty allows "
          "every address");
ABSL_FLAG(int, runner_restart_limit, 5,
          "Times a runner that dies after a successful setup is restarted within "
          "--runner-restart-window; one more death and the server is DEFUNCT (0: never restarted)");
ABSL_FLAG(double, runner_restart_window, 300.0,
          "Seconds over which --runner-restart-limit counts restarts");
ABSL_FLAG(double, cancel_timeout, 5.0,
          "Seconds a canceled prediction has to stop before the runner is killed and restarted "
          "(0: never)");
ABSL_FLAG(int64_t, finished_predictions_max, 1000,
          "Ended predictions whose results GetPrediction and GET /predictions/{id} still answer "
          "with (the newest; per server process, 0: none)");
ABSL_FLAG(double, finished_predictions_ttl, 600.0,
          "Seconds an ended prediction's result is kept for GetPrediction and GET /predictions/{id}");
ABSL_FLAG(int64_t, finished_predictions_max_bytes, 32 << 20,
          "Most bytes (inputs, outputs, logs) the kept results of ended predictions take together");
ABSL_FLAG(int, busy_poll_us, 200,
          "How long (µs) the thread reading the runner's socket may poll it before it sleeps, "
          "where the next frame is likely soon (a lone prediction's first frame, the gap before "
          "the next prediction; each window adapts to what comes): a thread that never slept "
          "need not be woken (tens of µs on some VMs). 0: never; off when fewer than 2 CPUs are "
          "usable (affinity, cgroup CPU quota)");
ABSL_FLAG(std::string, port_file, "",
          "Write the bound HTTP and gRPC ports here as JSON once serving (for tests and tools)");

namespace cog {
namespace {

bool IsRunnerDirectory(const std::filesystem::path& path) {
  std::error_code error;
  return std::filesystem::exists(path / "cog_runner" / "__main__.py", error);
}

// The runner ships beside the binary: in Bazel's runfiles when built, or in
// ../share/cog-server/runner when installed. Runfiles named by the environment
// come first: a test's own are current, the binary's are only as new as the
// last build of the binary itself.
std::string FindRunnerPath() {
  std::vector<std::filesystem::path> candidates;
  for (const char* variable : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(variable); dir != nullptr) {
      candidates.push_back(std::filesystem::path(dir) / "cog_runtime/runner");
    }
  }
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(exe.string() + ".runfiles/cog_runtime/runner");
    candidates.push_back(exe.parent_path() / "../share/cog-server/runner");
  }
  for (const auto& candidate : candidates) {
    if (IsRunnerDirectory(candidate)) return std::filesystem::canonical(candidate, error).string();
  }
  return "";
}

int ResolvePort() {
  int port = absl::GetFlag(FLAGS_port);
  if (port >= 0) return port;
  if (const char* env = std::getenv("PORT"); env != nullptr && absl::SimpleAtoi(env, &port)) {
    return port;
  }
  return 5000;
}

// Kubernetes readiness through a file, as Cog does: created once setup has
// succeeded (`marked`: not a stat() on every prediction), removed when the
// server can no longer predict (its runner is being restarted, or for good:
// DEFUNCT) and when it begins to shut down.
void MarkReady(const std::string& path, const HealthChange& change, bool* marked) {
  std::error_code error;
  if (change.shutting_down) {
    std::filesystem::remove(path, error);
    return;
  }
  const bool can_predict = change.setup_succeeded && change.status != HealthStatus::kDefunct &&
                           change.status != HealthStatus::kSetupFailed;
  if (!can_predict) {
    if (*marked) std::filesystem::remove(path, error);
    *marked = false;
    return;
  }
  if (*marked) return;
  *marked = true;
  if (std::filesystem::exists(path, error)) return;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  if (FILE* f = std::fopen(path.c_str(), "w"); f != nullptr) {
    std::fclose(f);
  } else {
    spdlog::warn("cannot create the readiness file {}: {}", path, std::strerror(errno));
  }
}

// The gRPC health service as on_health_change sees it (from any thread):
// there while the gRPC server runs, gone before it is destroyed.
class GrpcHealth {
 public:
  void Attach(grpc::HealthCheckServiceInterface* service) {
    absl::MutexLock lock(&mu_);
    service_ = service;
  }
  void Detach() { Attach(nullptr); }
  void Publish(const HealthChange& change) {
    absl::MutexLock lock(&mu_);
    if (service_ == nullptr) return;
    const bool live = change.status != HealthStatus::kDefunct &&
                      change.status != HealthStatus::kSetupFailed;
    const bool ready = change.status == HealthStatus::kReady && !change.shutting_down;
    service_->SetServingStatus("liveness", live);
    service_->SetServingStatus("readiness", ready);
    service_->SetServingStatus("", ready);
    service_->SetServingStatus("cog.v1.Predictor", ready);
  }

 private:
  absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* service_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Shutting down takes at most the grace period plus these: running
// predictions are canceled at the end of the grace period and get
// kCancelWait to stop; then the runner is stopped (SIGTERM after
// kRunnerStopGrace, SIGKILL a second later), which ends whatever still runs,
// and what is ending gets kEndedWait (its output files); terminal webhooks get
// what is left of the grace period, at least kWebhookDrain; answers still
// being written to slow clients get kAnswerDrain; open gRPC calls are
// canceled after kGrpcDrain. About 15 s in all, past the grace period.
constexpr absl::Duration kCancelWait = absl::Seconds(2);
constexpr absl::Duration kRunnerStopGrace = absl::Seconds(2);
constexpr absl::Duration kEndedWait = absl::Seconds(2);
constexpr absl::Duration kWebhookDrain = absl::Seconds(3);
constexpr absl::Duration kAnswerDrain = absl::Seconds(3);
constexpr auto kGrpcDrain = std::chrono::seconds(1);
// Past the grace period plus this, the process exits whatever still runs.
constexpr absl::Duration kShutdownLimit = absl::Seconds(30);

// A stuck component (a bug, a thread blocked in the kernel) must not keep the
// process from exiting: an orchestrator waits for the exit. Kills what the
// runner left (its guardian takes its own tree down with the server) and exits.
void StartShutdownWatchdog(absl::Duration limit) {
  std::thread([limit] {
    absl::SleepFor(limit);
    spdlog::critical("shutting down took longer than {}; exiting now", absl::FormatDuration(limit));
    OrphanReaper::KillAll(absl::Seconds(1));
    spdlog::shutdown();
    std::_Exit(1);
  }).detach();
}

int Run() {
  SetUpLogging();
  // Signals are taken by one thread with sigwait; block them everywhere else
  // before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // a terminal that goes away: drained like SIGTERM
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A write past a file-size limit (ulimit -f, RLIMIT_FSIZE), a download's,
  // fails with EFBIG and fails that prediction, instead of the signal's
  // default action ending the server.
  ::signal(SIGXFSZ, SIG_IGN);
  // A log line written after the reader of our stdout or stderr went away (a
  // log collector that died) fails with EPIPE instead of ending the server
  // (sockets already write with MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);

  // Nothing the predictor starts outlives the server; what a server that died
  // (kill -9, OOM) left in $TMPDIR goes now.
  OrphanReaper orphans;
  if (absl::Status reaping = orphans.Start(); !reaping.ok()) {
    spdlog::warn("{}; processes the predictor leaves behind may outlive the server",
                 std::string(reaping.message()));
  }
  for (const std::string& dir : RemoveStaleServerTempDirs(TempParent(), {"cog-runner", "cog-server"})) {
    spdlog::info("removed {}, left by a server that is gone", dir);
  }
  const std::string files_dir = absl::GetFlag(FLAGS_files_dir);
  if (files_dir.empty() && !absl::GetFlag(FLAGS_spawn_runner)) {
    spdlog::warn("--spawn-runner=false without --files-dir: Path inputs and outputs work only if the "
                 "runner sees {} at the same path; mount a volume in both containers and name it with "
                 "--files-dir", TempParent());
  }
  if (!files_dir.empty()) {
    std::error_code error;
    if (!std::filesystem::is_directory(files_dir, error)) {
      spdlog::critical("--files-dir {} is not a directory{}", files_dir,
                       error ? absl::StrCat(": ", error.message()) : "");
      return 2;
    }
    for (const std::string& dir : RemoveStaleServerTempDirs(files_dir, {"cog-server"})) {
      spdlog::info("removed {}, left by a server that is gone", dir);
    }
  }

  std::string working_directory = absl::GetFlag(FLAGS_working_directory);
  if (working_directory.empty()) working_directory = std::filesystem::current_path().string();
  working_directory = std::filesystem::absolute(working_directory).lexically_normal().string();
  absl::StatusOr<CogConfig> config = LoadCogConfig(working_directory);
  // A sidecar's runner reads cog.yaml itself (it is in the model's container,
  // not this one) and says in its Hello how many predictions it takes at once.
  const bool runner_reads_config = !absl::GetFlag(FLAGS_spawn_runner) && absl::IsNotFound(config.status());
  if (runner_reads_config) {
    spdlog::info("no cog.yaml in {}: the runner started elsewhere reads its own (--spawn-runner=false)",
                 working_directory);
    config = CogConfig{};
  }
  if (!config.ok()) {
    spdlog::critical("{}", std::string(config.status().message()));
    return 2;
  }

  absl::Notification shutdown_requested;
  auto request_shutdown = [&shutdown_requested] {
    if (!shutdown_requested.HasBeenNotified()) shutdown_requested.Notify();
  };

  GrpcHealth grpc_health;
  // Before the core and the gateway, which report to it, and gone after them.
  HeapTrimmer heap_trimmer;
  PredictionService::Options core_options;
  core_options.max_concurrency = config->max_concurrency;
  core_options.concurrency_from_runner = runner_reads_config;
  core_options.file_threads = std::max(4, config->max_concurrency);  // a stalled download holds one
  core_options.server_version = kServerVersion;
  std::string ready_file;
  if (const char* kubernetes = std::getenv("KUBERNETES_SERVICE_HOST");
      kubernetes != nullptr && *kubernetes != '\0') {
    ready_file = absl::GetFlag(FLAGS_ready_file);
    // One an earlier server left (killed, on an emptyDir that outlives its
    // container) would say ready through this one's setup.
    std::error_code error;
    if (!ready_file.empty() && std::filesystem::remove(ready_file, error)) {
      spdlog::info("removed {}, left by an earlier server", ready_file);
    }
  }
  core_options.on_health_change = [&grpc_health, ready_file,
                                   marked = false](const HealthChange& change) mutable {
    if (!ready_file.empty()) MarkReady(ready_file, change, &marked);
    grpc_health.Publish(change);
  };
  absl::StatusOr<OutboundPolicy> outbound =
      OutboundPolicy::Parse(absl::GetFlag(FLAGS_outbound_deny_cidrs));
  if (!outbound.ok()) {
    spdlog::critical("{}", std::string(outbound.status().message()));
    return 2;
  }
  core_options.files.transfer.outbound = *outbound;
  WebhookSender::Options webhook_options;
  webhook_options.outbound = *outbound;
  webhook_options.user_agent = absl::StrCat("cog-server/", kServerVersion);
  if (const char* token = std::getenv("WEBHOOK_AUTH_TOKEN"); token != nullptr) {
    webhook_options.auth_token = token;
  }
  if (const char* interval = std::getenv("COG_THROTTLE_RESPONSE_INTERVAL"); interval != nullptr) {
    double seconds = 0;
    if (absl::SimpleAtod(interval, &seconds) && seconds >= 0) {
      webhook_options.logs_interval = absl::Seconds(seconds);
    }
  }
  webhook_options.max_backlog_bytes =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_webhook_backlog_bytes)));
  WebhookCounts webhook_counts;  // made before the sender, which counts into it
  webhook_options.counts = &webhook_counts;
  WebhookSender webhooks(webhook_options);
  // Logs webhooks are rendered when sent, from the prediction as it is then.
  // The core is made below, before any request can start a prediction; the
  // sender stops before the core goes (stop_webhooks).
  PredictionService* core_for_webhooks = nullptr;
  core_options.make_webhook_observer = [&webhooks, &core_for_webhooks](const PredictionRequest& request) {
    return WebhookSender::ObserverFor(&webhooks, request, [&core_for_webhooks](const std::string& id) {
      return core_for_webhooks->Get(id);
    });
  };
  const std::string upload_url = absl::GetFlag(FLAGS_upload_url);
  if (!upload_url.empty() && !absl::StartsWith(upload_url, "http://") &&
      !absl::StartsWith(upload_url, "https://")) {
    spdlog::critical("--upload-url must be an http:// or https:// URL, not '{}'", upload_url);
    return 2;
  }
  core_options.files.upload_url = upload_url;
  core_options.files.temp_parent = files_dir;
  // A runner elsewhere names files of its own container's: the server reads
  // only what it put in the shared directory.
  core_options.files.confine_outputs = !absl::GetFlag(FLAGS_spawn_runner);
  core_options.files.max_data_uri_bytes =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_output_bytes)));
  core_options.healthcheck_interval =
      absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_healthcheck_interval)));
  core_options.healthcheck_timeout =
      absl::Seconds(std::max(0.1, absl::GetFlag(FLAGS_healthcheck_timeout)));
  core_options.files.transfer.user_agent = absl::StrCat("cog-server/", kServerVersion);
  core_options.files.transfer.stall_timeout =
      absl::Seconds(std::max(1.0, absl::GetFlag(FLAGS_file_stall_timeout)));
  // The front door's minimum rate for a client's body applies to the
  // server's own transfers too (over --file-stall-timeout).
  core_options.files.transfer.min_bytes_per_second = std::max<int64_t>(1, absl::GetFlag(FLAGS_min_body_rate));
  core_options.files.transfer.max_download_bytes =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_download_bytes)));
  const int64_t max_output_bytes = absl::GetFlag(FLAGS_max_output_bytes);
  if (max_output_bytes <= 0 || max_output_bytes > (int64_t{4} << 30) - kFrameOverheadBytes) {
    spdlog::critical("--max-output-bytes must be between 1 and {} (a frame's length is 32 bits)",
                     (int64_t{4} << 30) - kFrameOverheadBytes);
    return 2;
  }
  core_options.max_output_bytes = static_cast<uint64_t>(max_output_bytes);
  core_options.max_log_bytes = static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_log_bytes)));
  core_options.cancel_timeout = absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_cancel_timeout)));
  core_options.stray_output_bytes_per_second =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_stray_output_rate)));
  core_options.finished.max_count =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_finished_predictions_max)));
  core_options.finished.ttl =
      absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_finished_predictions_ttl)));
  core_options.finished.max_bytes = static_cast<size_t>(
      std::max<int64_t>(0, absl::GetFlag(FLAGS_finished_predictions_max_bytes)));
  PredictionMetrics metrics;
  metrics.ReportWebhooks(&webhook_counts);
  BusyPollCounts busy_poll_counts;  // outlives the supervisor and its connections
  core_options.on_completed = [&metrics](const Prediction& prediction) {
    metrics.Observe(prediction);
  };
  core_options.heap_trimmer = &heap_trimmer;
  PredictionService core(core_options);
  core_for_webhooks = &core;
  // On every way out, nothing asks the core for a snapshot once it is gone.
  absl::Cleanup stop_webhooks = [&webhooks] { webhooks.Stop(); };

  RunnerSupervisor::Options runner_options;
  runner_options.max_output_bytes = core_options.max_output_bytes;
  if (const int busy_poll_us = absl::GetFlag(FLAGS_busy_poll_us); busy_poll_us <= 0) {
    spdlog::info("busy polling the runner's socket is off: --busy_poll_us={}", busy_poll_us);
  } else if (const double cpus = UsableCpus(); cpus < 2) {
    // Polling where one CPU is all there is would take it from the runner.
    spdlog::info("busy polling the runner's socket is off: {:.2f} CPUs usable", cpus);
  } else {
    runner_options.busy_poll = {std::chrono::microseconds(busy_poll_us), &busy_poll_counts};
    metrics.ReportBusyPolling(&busy_poll_counts);
    spdlog::info("busy polling the runner's socket for up to {} µs a wait ({:.2f} CPUs usable)",
                 busy_poll_us, cpus);
  }
  runner_options.socket_path = absl::GetFlag(FLAGS_runner_socket);
  runner_options.restart_limit = std::max(0, absl::GetFlag(FLAGS_runner_restart_limit));
  runner_options.restart_window =
      absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_runner_restart_window)));
  if (absl::GetFlag(FLAGS_spawn_runner)) {
    std::string runner_path = absl::GetFlag(FLAGS_runner_path);
    if (runner_path.empty()) runner_path = FindRunnerPath();
    if (runner_path.empty() || !IsRunnerDirectory(runner_path)) {
      spdlog::critical("cannot find the Python runner (cog_runner/__main__.py); pass --runner_path");
      return 2;
    }
    RunnerCommand& command = runner_options.command;
    command.argv = {absl::GetFlag(FLAGS_python), "-m", "cog_runner", "--working-directory",
                    working_directory};
    if (!config->predict.empty()) {
      command.argv.insert(command.argv.end(), {"--predict", config->predict});
    }
    if (!config->train.empty()) command.argv.insert(command.argv.end(), {"--train", config->train});
    command.argv.insert(command.argv.end(),
                        {"--max-concurrency", absl::StrCat(config->max_concurrency)});
    const char* pythonpath = std::getenv("PYTHONPATH");
    command.extra_env = {
        absl::StrCat("PYTHONPATH=", runner_path,
                     pythonpath != nullptr && *pythonpath ? absl::StrCat(":", pythonpath) : ""),
        "PYTHONUNBUFFERED=1"};
    command.working_directory = working_directory;
  }
  RunnerSupervisor supervisor(runner_options, &core);

  const std::string host = absl::GetFlag(FLAGS_host);
  int grpc_port = absl::GetFlag(FLAGS_grpc_port);
  // A stream client is held to what a REST client is: an event it leaves
  // unread too long (after --header-timeout, at --min-body-rate; StreamStall)
  // ends the call.
  StreamStall stream_stall;
  stream_stall.grace = absl::Seconds(std::max(1.0, absl::GetFlag(FLAGS_header_timeout)));
  stream_stall.min_bytes_per_second = std::max<int64_t>(0, absl::GetFlag(FLAGS_min_body_rate));
  PredictorService grpc_service(&core, request_shutdown, stream_stall,
                                absl::GetFlag(FLAGS_max_json_depth));
  // After the service it uses: destroyed before it, and stopped on every way out.
  std::unique_ptr<grpc::Server> grpc_server;
  absl::Cleanup stop_grpc = [&grpc_health, &grpc_server] {
    grpc_health.Detach();
    if (grpc_server) grpc_server->Shutdown(std::chrono::system_clock::now() + kGrpcDrain);
  };
  if (grpc_port >= 0) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    // gRPC sets SO_REUSEPORT by default: a second server would share the port silently.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(absl::StrCat(host, ":", grpc_port), grpc::InsecureServerCredentials(),
                             &grpc_port);
    // The same bound as a REST body (gRPC's own default is 4 MiB): a request
    // past it is answered RESOURCE_EXHAUSTED before it is read whole.
    builder.SetMaxReceiveMessageSize(static_cast<int>(
        std::clamp<int64_t>(absl::GetFlag(FLAGS_max_body_bytes), 0, std::numeric_limits<int>::max())));
    // A compressed message is inflated whole before its size is checked: ~1 MB
    // of gzip became 1 GB in memory. Clients send uncompressed unless told to.
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
    builder.RegisterService(&grpc_service);
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr) {
      spdlog::critical("cannot listen for gRPC on {}:{}: the port is in use (or the address is "
                       "not this host's); choose another with --grpc-port",
                       host, absl::GetFlag(FLAGS_grpc_port));
      return 1;
    }
    grpc_health.Attach(grpc_server->GetHealthCheckService());
    grpc_health.Publish(HealthChange::Of(core.Health(/*with_setup_logs=*/false)));
  }

  RestGateway::Options rest_options;
  rest_options.host = host;
  rest_options.port = ResolvePort();
  rest_options.request_shutdown = request_shutdown;
  rest_options.metrics = &metrics;
  rest_options.max_body_bytes = static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_body_bytes)));
  rest_options.max_json_depth = std::max(1, absl::GetFlag(FLAGS_max_json_depth));
  rest_options.max_header_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_header_bytes)));
  rest_options.max_headers = static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_headers)));
  rest_options.max_connections = absl::GetFlag(FLAGS_max_connections);
  rest_options.max_buffered_body_bytes =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_buffered_body_bytes)));
  rest_options.header_timeout = absl::Seconds(absl::GetFlag(FLAGS_header_timeout));
  rest_options.keep_alive_timeout = absl::Seconds(absl::GetFlag(FLAGS_keep_alive_timeout));
  rest_options.min_body_bytes_per_second =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_min_body_rate)));
  rest_options.heap_trimmer = &heap_trimmer;
  RestGateway gateway(&core, rest_options);
  absl::StatusOr<int> http_port = gateway.Start();
  if (!http_port.ok()) {
    spdlog::critical("{}", std::string(http_port.status().message()));
    return 1;
  }

  if (absl::Status started = supervisor.Start(); !started.ok()) {
    spdlog::critical("cannot start the runner: {}", std::string(started.message()));
    core.OnRunnerGone(absl::StrCat("cannot start the runner: ", started.message()));
  }
  spdlog::info("serving {} on http://{}:{} and gRPC port {}", config->predict, host, *http_port,
               grpc_port);
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    const bool written = f != nullptr && std::fprintf(f, "{\"http\": %d, \"grpc\": %d}\n", *http_port, grpc_port) > 0;
    if ((f != nullptr && std::fclose(f) != 0) || !written || std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      // Whoever waits for it would wait for ever: said, though the server serves on.
      spdlog::error("cannot write --port-file {}: {}", port_file, std::strerror(errno));
    }
  }

  const bool await_explicit = absl::GetFlag(FLAGS_await_explicit_shutdown);
  std::thread signal_thread([&] {
    while (true) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      if (signal == SIGTERM && await_explicit) {
        spdlog::info("ignoring SIGTERM: waiting for POST /shutdown (--await-explicit-shutdown)");
        continue;
      }
      spdlog::info("received {}, shutting down", strsignal(signal));
      request_shutdown();
      return;
    }
  });
  signal_thread.detach();

  shutdown_requested.WaitForNotification();
  const absl::Time shutdown_started = absl::Now();
  const absl::Duration grace =
      absl::Seconds(std::max(0.0, absl::GetFlag(FLAGS_runner_shutdown_grace_period)));
  StartShutdownWatchdog(grace + kShutdownLimit);
  core.BeginShutdown();
  if (!core.WaitUntilIdle(grace)) {
    spdlog::warn("predictions still running after {}; canceling them", absl::FormatDuration(grace));
    core.CancelAll();
    core.WaitUntilIdle(kCancelWait);
  }
  // Whatever still runs (it ignored its cancel) ends when the runner goes, and
  // its client gets that answer.
  supervisor.Stop(kRunnerStopGrace);
  if (!core.WaitUntilIdle(kEndedWait)) spdlog::warn("predictions still ending while shutting down");
  // Terminal webhooks of what just ended still go out, ahead of the updates
  // before them.
  webhooks.PreferCompleted();
  if (!webhooks.Drain(std::max(shutdown_started + grace - absl::Now(), kWebhookDrain))) {
    spdlog::warn("some webhooks were not delivered before exiting");
  }
  gateway.Stop(kAnswerDrain);
  std::move(stop_grpc).Invoke();
  OrphanReaper::KillAll(absl::Seconds(1));
  spdlog::info("stopped in {}", absl::FormatDuration(absl::Now() - shutdown_started));
  return 0;
}

}  // namespace
}  // namespace cog

int main(int argc, char** argv) {
  // Request and response bodies of a MiB or more (several buffers of that size
  // per request) come from the heap and stay there for the next request:
  // glibc's defaults hand blocks over 128 KiB (adaptively up to 32 MiB) to
  // mmap() and give freed heap back past 128 KiB, so each such request paid
  // page faults to zero fresh pages (~20% of the server's time on a 1 MiB
  // string). Free heap over 64 MiB still goes back to the system at once, and
  // HeapTrimmer hands back the rest a second after a large transfer
  // (malloc_trim). One arena: glibc's per-thread arenas (up to 8 per core)
  // each kept up to 64 MiB that malloc_trim cannot release (it never shrinks
  // the top of a thread's arena): measured, a 10 MiB data URI left 193 MB of
  // RSS over four arenas; with one, the trim gives it back. Small blocks
  // rarely meet the arena's lock: each thread has its own cache for them.
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#ifdef NDEBUG
  // Debian builds Abseil with its debug checks: every Mutex::Lock records the
  // lock order in a global graph (~7% of a null prediction's instructions,
  // measured with callgrind) and aborts on a cycle. Optimised builds skip it;
  // the tests, built without NDEBUG, keep it and so still catch an inversion.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::SetProgramUsageMessage(
      "Serves a Cog model (cog.yaml in --working-directory) over the Cog HTTP API and gRPC.");
  // Cog spells its flags with hyphens (--await-explicit-shutdown); Abseil's
  // names use underscores. Accept both.
  std::vector<std::string> normalized(argv, argv + argc);
  std::vector<char*> args;
  for (std::string& arg : normalized) {
    if (arg.rfind("--", 0) == 0 && arg != "--") {
      const size_t end = std::min(arg.find('='), arg.size());
      std::replace(arg.begin() + 2, arg.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
    }
    args.push_back(arg.data());
  }
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return cog::Run();
}
