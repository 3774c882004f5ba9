#include "server/runner_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include "server/frame_io.h"

namespace cog {

RunnerConnection::RunnerConnection(int fd, Listener* listener) : fd_(fd), listener_(listener) {}

RunnerConnection::~RunnerConnection() {
  Close();
  if (reader_.joinable()) reader_.join();
  ::close(fd_);
}

void RunnerConnection::Start() {
  reader_ = std::thread([this] { ReadLoop(); });
}

absl::Status RunnerConnection::Send(const v1::runner::ServerMessage& message) {
  absl::MutexLock lock(&write_mu_);
  if (closed_) return absl::UnavailableError("the runner connection is closed");
  return WriteFrame(fd_, message);
}

void RunnerConnection::Close() {
  absl::MutexLock lock(&write_mu_);
  if (closed_) return;
  closed_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

void RunnerConnection::ReadLoop() {
  FrameReader reader(fd_);
  while (true) {
    v1::runner::RunnerMessage message;
    absl::StatusOr<bool> more = reader.Next(&message);
    if (!more.ok()) {
      listener_->OnRunnerDisconnected(more.status());
      return;
    }
    if (!*more) {
      listener_->OnRunnerDisconnected(absl::OkStatus());
      return;
    }
    listener_->OnRunnerMessage(std::move(message));
  }
}

}  // namespace cog
