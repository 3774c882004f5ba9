#include "server/runner_supervisor.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "server/orphan_reaper.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

// A spawned runner that closed its socket cleanly is normally exiting: this
// long to do so before it is killed.
constexpr absl::Duration kExitAfterCloseWait = absl::Seconds(1);
// After the runner exited, its reader normally sees the end of the stream at
// once (after the frames still buffered); a descendant that kept the socket
// open gets this long before the socket is shut down under it.
constexpr absl::Duration kCloseAfterExitWait = absl::Seconds(2);
// SIGTERM, then SIGKILL after this long.
constexpr absl::Duration kKillGrace = absl::Seconds(1);
// What Stop() allows the supervision thread beyond the grace period before it
// kills the runner itself.
constexpr absl::Duration kStopMargin = absl::Seconds(5);

}  // namespace

RunnerSupervisor::RunnerSupervisor(Options options, PredictionService* service)
    : options_(std::move(options)), service_(service) {}

RunnerSupervisor::~RunnerSupervisor() { Stop(absl::Seconds(2)); }

absl::Status RunnerSupervisor::Start() {
  absl::StatusOr<std::unique_ptr<RunnerListenSocket>> socket =
      options_.socket_path.empty() ? RunnerListenSocket::CreatePrivate()
                                   : RunnerListenSocket::CreateAt(options_.socket_path);
  if (!socket.ok()) return socket.status();
  socket_ = std::move(*socket);

  if (spawning()) {
    command_ = options_.command;
    command_.argv.push_back("--socket");
    command_.argv.push_back(socket_->path());
    if (absl::Status spawned = Spawn(); !spawned.ok()) return spawned;
  } else {
    spdlog::info("waiting for a runner to connect to {}", socket_->path());
  }
  supervisor_ = std::thread([this] { Supervise(); });
  return absl::OkStatus();
}

absl::Status RunnerSupervisor::Spawn() {
  {
    absl::MutexLock lock(&mu_);
    process_exited_ = false;  // the last runner's watcher is done: TearDown joined it
  }
  // What this runner starts inherits the marker, and only what holds it is
  // killed when it ends (TearDown): not a process that came to the server
  // otherwise (as a container's PID 1 it adopts every orphan there).
  RunnerCommand command = command_;
  runner_marker_ = absl::StrCat("COG_RUNNER_INSTANCE=", ::getpid(), "-", ++spawns_);
  command.extra_env.push_back(runner_marker_);
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process =
      RunnerProcess::Spawn(command, [this](int wait_status) { OnProcessExit(wait_status); });
  if (!process.ok()) return process.status();
  absl::MutexLock lock(&mu_);
  process_ = std::move(*process);
  spdlog::info("runner started (pid {}) on {}", process_->pid(), socket_->path());
  return absl::OkStatus();
}

void RunnerSupervisor::Supervise() {
  std::deque<absl::Time> restarts;  // those within the window
  // Restarts the server asked for (RestartRunner) within the window: not
  // counted toward the limit, but backed off like the others from the second
  // on, so that a model that ignores every cancel does not re-run its setup
  // back to back.
  std::deque<absl::Time> requested_restarts;
  bool spawned = spawning();        // Start() spawned the first runner
  while (true) {
    const std::optional<std::string> reason = Serve(spawned);
    const bool requested = restart_requested_;
    spawned = false;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    bool restart = false;
    if (reason.has_value()) {
      const absl::Time now = absl::Now();
      while (!restarts.empty() && now - restarts.front() >= options_.restart_window) {
        restarts.pop_front();
      }
      const bool within_limit = options_.restart_limit > 0 &&
                                (requested || static_cast<int>(restarts.size()) < options_.restart_limit);
      if (stopping) {
        spdlog::info("{}", *reason);
      } else {
        spdlog::error("{}", *reason);
      }
      // While the connection still stands: the service lets go of it first.
      restart = service_->OnRunnerGone(*reason, !stopping && within_limit);
      if (!stopping && !within_limit && service_->Health(/*with_setup_logs=*/false).status == HealthStatus::kDefunct) {
        spdlog::critical(
            "the runner stopped again after {} restart(s) within {}: not restarting it "
            "(--runner-restart-limit={}, --runner-restart-window); the server is DEFUNCT",
            restarts.size(), absl::FormatDuration(options_.restart_window),
            options_.restart_limit);
      }
    }
    TearDown();
    if (!restart) break;
    absl::Duration backoff = options_.restart_backoff;
    if (requested) {
      const absl::Time now = absl::Now();
      while (!requested_restarts.empty() && now - requested_restarts.front() >= options_.restart_window) {
        requested_restarts.pop_front();
      }
      requested_restarts.push_back(now);
      if (requested_restarts.size() == 1 || !spawning()) {
        spdlog::warn("restarting the runner now (a restart the server asked for: not counted toward "
                     "--runner-restart-limit)");
        continue;
      }
      for (size_t i = 2; i < requested_restarts.size() && backoff < options_.max_restart_backoff; ++i) {
        backoff *= 2;
      }
      backoff = std::min(backoff, options_.max_restart_backoff);
      spdlog::warn("restarting the runner in {} (a restart the server asked for, {} within {}: not counted "
                   "toward --runner-restart-limit)",
                   absl::FormatDuration(backoff), requested_restarts.size(),
                   absl::FormatDuration(options_.restart_window));
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), backoff)) break;
      continue;
    }
    restarts.push_back(absl::Now());
    if (!spawning()) {
      spdlog::warn("waiting for a new runner to connect to {} (restart {} of at most {} within {})",
                   socket_->path(), restarts.size(), options_.restart_limit,
                   absl::FormatDuration(options_.restart_window));
      continue;
    }
    for (size_t i = 1; i < restarts.size() && backoff < options_.max_restart_backoff; ++i) {
      backoff *= 2;
    }
    backoff = std::min(backoff, options_.max_restart_backoff);
    spdlog::warn("restarting the runner in {} (restart {} of at most {} within {})",
                 absl::FormatDuration(backoff), restarts.size(), options_.restart_limit,
                 absl::FormatDuration(options_.restart_window));
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), backoff)) break;
  }
  absl::MutexLock lock(&mu_);
  supervision_done_ = true;
}

std::optional<std::string> RunnerSupervisor::Serve(bool spawned) {
  restart_requested_ = false;
  if (spawning() && !spawned) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return std::nullopt;
    }
    if (absl::Status started = Spawn(); !started.ok()) {
      return absl::StrCat("cannot start the runner: ", started.message());
    }
  }

  // Connect.
  const absl::Time deadline = absl::Now() + options_.connect_timeout;
  int fd = -1;
  while (fd < 0) {
    absl::StatusOr<int> accepted =
        socket_->Accept(std::max(absl::ZeroDuration(), deadline - absl::Now()));
    if (accepted.ok()) {
      fd = *accepted;
      break;
    }
    if (!absl::IsCancelled(accepted.status())) {
      KillRunner(absl::ZeroDuration());
      return std::string(accepted.status().message());
    }
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
      if (!stopping && process_exited_) {
        // Died before it connected (its socket was never ours to read).
        return absl::StrCat("The runner process ", DescribeWaitStatus(wait_status_));
      }
    }
    if (stopping) {
      KillRunner(kKillGrace);
      return std::nullopt;
    }
    // Otherwise a Wake() meant for an earlier runner: wait on.
  }
  {
    absl::MutexLock lock(&mu_);
    connection_fd_ = fd;
    disconnected_ = false;
    disconnect_status_ = absl::OkStatus();
    restart_reason_.reset();
  }
  connection_ = std::make_unique<RunnerConnection>(
      fd, this, RunnerFrameLimit(options_.max_output_bytes), options_.busy_poll);
  service_->OnRunnerConnected(connection_.get(), this);
  if (absl::Status reading = connection_->Start(); !reading.ok()) {
    OnRunnerDisconnected(std::move(reading));  // as if it hung up: restarted within the limit
  }

  // Serve until something ends it.
  enum class End { kStop, kRestart, kDisconnected, kExited };
  End end;
  std::string restart_reason;
  absl::Duration grace;
  {
    absl::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stopping_ || restart_reason_.has_value() || disconnected_ || process_exited_;
    };
    mu_.Await(absl::Condition(&ended));
    grace = stop_grace_;
    if (stopping_) {
      end = End::kStop;
    } else if (restart_reason_.has_value()) {
      end = End::kRestart;
      restart_reason = *restart_reason_;
    } else if (disconnected_) {
      end = End::kDisconnected;
    } else {
      end = End::kExited;
    }
  }

  auto await = [this](const bool* flag, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(flag), timeout);
  };
  auto exit_reason = [this]() {
    absl::MutexLock lock(&mu_);
    return absl::StrCat("The runner process ", DescribeWaitStatus(wait_status_));
  };
  std::string reason;
  switch (end) {
    case End::kStop: {
      // The runner cancels what still runs, reports it, and exits.
      v1::runner::ServerMessage message;
      message.mutable_shutdown();
      connection_->Send(message).IgnoreError();
      if (!await(spawning() ? &process_exited_ : &disconnected_, grace)) KillRunner(kKillGrace);
      reason = "The runner was stopped: the server is shutting down";
      break;
    }
    case End::kRestart:
      restart_requested_ = true;
      KillRunner(absl::ZeroDuration());  // it did not obey a cancel: no second chance
      reason = absl::StrCat(restart_reason, spawning() ? "; the runner was killed"
                                                       : "; the runner's connection was closed");
      break;
    case End::kDisconnected: {
      absl::Status why;
      {
        absl::MutexLock lock(&mu_);
        why = disconnect_status_;
      }
      const std::string what = why.ok() ? "The runner closed its connection"
                                        : absl::StrCat("The runner connection broke: ", why.message());
      if (!spawning()) {
        reason = what;
      } else if (why.ok() && await(&process_exited_, kExitAfterCloseWait)) {
        reason = exit_reason();  // says more than a closed socket
      } else {
        KillRunner(why.ok() ? kKillGrace : absl::ZeroDuration());
        std::optional<int> status;
        {
          absl::MutexLock lock(&mu_);
          if (process_ != nullptr) status = process_->exit_status();
        }
        // It may have died of its own accord in the meantime: say which.
        reason = absl::StrCat(what, "; the runner process ",
                              status.has_value() ? DescribeWaitStatus(*status) : "was killed");
      }
      break;
    }
    case End::kExited:
      // Its end of the socket closed with it: the reader hands over what it
      // sent, then sees the end of the stream. A descendant that kept the
      // socket open has it shut down under it below.
      await(&disconnected_, kCloseAfterExitWait);
      reason = exit_reason();
      break;
  }
  ShutDownConnection();
  AwaitDisconnected();
  KillRunner(absl::ZeroDuration());
  return reason;
}

void RunnerSupervisor::OnRunnerMessage(v1::runner::RunnerMessage message) {
  if (message.has_hello()) {
    spdlog::info("runner {} (Python {}, pid {}) connected", message.hello().runner_version(),
                 message.hello().python_version(), message.hello().pid());
  }
  service_->OnRunnerMessage(std::move(message));
}

void RunnerSupervisor::OnRunnerDisconnected(absl::Status why) {
  // The reader's last act: every frame before this has been handed over.
  absl::MutexLock lock(&mu_);
  disconnected_ = true;
  disconnect_status_ = std::move(why);
}

void RunnerSupervisor::OnProcessExit(int wait_status) {
  absl::MutexLock lock(&mu_);
  process_exited_ = true;
  wait_status_ = wait_status;
  // Unblocks the wait for a runner that died before connecting.
  if (connection_fd_ < 0 && socket_ != nullptr) socket_->Wake();
}

void RunnerSupervisor::RestartRunner(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (connection_fd_ >= 0 && !restart_reason_.has_value()) restart_reason_ = reason;
}

void RunnerSupervisor::ShutDownConnection() {
  {
    absl::MutexLock lock(&mu_);
    // Not Close() first: it waits for a writer that may be blocked on a full
    // socket; shutdown(2) makes that writer fail at once.
    if (connection_fd_ >= 0) ::shutdown(connection_fd_, SHUT_RDWR);
  }
  connection_->Close();  // later sends fail without touching the socket
}

void RunnerSupervisor::AwaitDisconnected() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&disconnected_));
}

void RunnerSupervisor::KillRunner(absl::Duration grace) {
  RunnerProcess* process;
  {
    absl::MutexLock lock(&mu_);
    process = process_.get();  // destroyed only by this thread (TearDown)
  }
  if (process != nullptr) process->Terminate(grace);
}

void RunnerSupervisor::TearDown() {
  std::unique_ptr<RunnerProcess> process;
  {
    absl::MutexLock lock(&mu_);
    process = std::move(process_);
    connection_fd_ = -1;  // before the fd is closed: Stop() may not touch it any more
  }
  connection_.reset();  // joins the reader and closes the socket
  const bool spawned = process != nullptr;
  process.reset();      // joins its watcher; it was reaped already
  // What the runner started outside its process group (a setsid() helper, a
  // daemon) came to this process, a subreaper, when the runner's guardian
  // was killed, and would outlive the runner that replaces it: what holds
  // its marker goes now. No thread waits for any of it.
  if (spawned) OrphanReaper::KillAll(absl::Seconds(1), runner_marker_);
}

void RunnerSupervisor::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_grace_ = grace;
  }
  if (socket_ != nullptr) socket_->Abort();
  if (supervisor_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return supervision_done_; };
      if (!mu_.AwaitWithTimeout(absl::Condition(&done), grace + kStopMargin)) {
        // Stuck (a send to a runner that reads nothing, say): cut it loose.
        spdlog::error("the runner did not stop within {}; killing it",
                      absl::FormatDuration(grace + kStopMargin));
        if (process_ != nullptr) process_->Signal(SIGKILL);
        if (connection_fd_ >= 0) ::shutdown(connection_fd_, SHUT_RDWR);
      }
    }
    supervisor_.join();
  }
  socket_.reset();  // removes the socket file and its private directory
}

std::string RunnerSupervisor::socket_path() const {
  return socket_ != nullptr ? socket_->path() : options_.socket_path;
}

}  // namespace cog
