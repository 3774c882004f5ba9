#include "server/runner_supervisor.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace cog {

RunnerSupervisor::RunnerSupervisor(Options options, PredictionService* service)
    : options_(std::move(options)), service_(service) {}

RunnerSupervisor::~RunnerSupervisor() { Stop(absl::Seconds(2)); }

absl::Status RunnerSupervisor::Start() {
  absl::StatusOr<std::unique_ptr<RunnerListenSocket>> socket =
      options_.socket_path.empty() ? RunnerListenSocket::CreatePrivate()
                                   : RunnerListenSocket::CreateAt(options_.socket_path);
  if (!socket.ok()) return socket.status();
  socket_ = std::move(*socket);

  if (!options_.command.argv.empty()) {
    RunnerCommand command = options_.command;
    command.argv.push_back("--socket");
    command.argv.push_back(socket_->path());
    absl::StatusOr<std::unique_ptr<RunnerProcess>> process =
        RunnerProcess::Spawn(command, [this](int wait_status) { OnProcessExit(wait_status); });
    if (!process.ok()) return process.status();
    process_ = std::move(*process);
    spdlog::info("runner started (pid {}) on {}", process_->pid(), socket_->path());
  } else {
    spdlog::info("waiting for a runner to connect to {}", socket_->path());
  }
  acceptor_ = std::thread([this] { AwaitConnection(); });
  return absl::OkStatus();
}

void RunnerSupervisor::AwaitConnection() {
  absl::StatusOr<int> fd = socket_->Accept(options_.connect_timeout);
  if (!fd.ok()) {
    if (!absl::IsCancelled(fd.status())) ReportGone(std::string(fd.status().message()));
    return;
  }
  absl::MutexLock lock(&mu_);
  if (stopping_ || gone_reported_) {
    ::close(*fd);
    return;
  }
  connection_ = std::make_unique<RunnerConnection>(*fd, this, RunnerFrameLimit(options_.max_output_bytes));
  service_->OnRunnerConnected(connection_.get());
  connection_->Start();
}

void RunnerSupervisor::OnRunnerMessage(v1::runner::RunnerMessage message) {
  if (message.has_hello()) {
    spdlog::info("runner {} (Python {}, pid {}) connected", message.hello().runner_version(),
                 message.hello().python_version(), message.hello().pid());
  }
  service_->OnRunnerMessage(message);
}

void RunnerSupervisor::OnProcessExit(int wait_status) {
  {
    absl::MutexLock lock(&mu_);
    // Connected: the reader thread reports it, once it has read the frames
    // the runner sent before it died (its end of the socket closed with it,
    // and the socket is not inherited by its children), so that the service
    // hears a prediction's events and the runner's end from one thread.
    if (connection_ != nullptr) return;
  }
  // Unblocks a runner that died before connecting.
  if (socket_ != nullptr) socket_->Abort();
  ReportGone(absl::StrCat("The runner process ", DescribeWaitStatus(wait_status)));
}

void RunnerSupervisor::OnRunnerDisconnected(absl::Status why) {
  // When the process is ours, its exit status says more than a closed socket:
  // give it a moment to be reaped, then report whichever is known.
  std::string reason;
  if (process_ != nullptr && process_->WaitForExit(absl::Seconds(2))) {
    reason = absl::StrCat("The runner process ", DescribeWaitStatus(*process_->exit_status()));
  }
  if (reason.empty()) {
    reason = why.ok() ? "The runner closed its connection"
                      : absl::StrCat("The runner connection broke: ", why.message());
  }
  ReportGone(reason);
}

void RunnerSupervisor::ReportGone(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (gone_reported_) return;
    gone_reported_ = true;
    if (stopping_) return;
  }
  spdlog::error("{}", reason);
  service_->OnRunnerGone(reason);
}

void RunnerSupervisor::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (connection_ != nullptr) {
      v1::runner::ServerMessage message;
      message.mutable_shutdown();
      connection_->Send(message).IgnoreError();
    }
  }
  if (process_ != nullptr && !process_->WaitForExit(grace)) process_->Terminate(absl::Seconds(1));
  if (socket_ != nullptr) socket_->Abort();
  if (acceptor_.joinable()) acceptor_.join();
  std::unique_ptr<RunnerConnection> connection;
  {
    absl::MutexLock lock(&mu_);
    connection = std::move(connection_);
  }
  connection.reset();  // closes the socket and joins the reader
  process_.reset();    // reaps the child
  socket_.reset();     // removes the socket file and its private directory
}

std::string RunnerSupervisor::socket_path() const {
  return socket_ != nullptr ? socket_->path() : options_.socket_path;
}

}  // namespace cog
