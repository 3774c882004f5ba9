#include "server/runner_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/server_temp_dir.h"

namespace cog {
namespace {

constexpr int kSocketBufferBytes = 4 << 20;

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<int> Listen(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("runner socket path is too long (",
                                                   path.size(), " bytes, at most ",
                                                   sizeof(address.sun_path) - 1, "): ", path));
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("creating socket for", path);
  ::unlink(path.c_str());  // a stale socket from an earlier run
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, 4) != 0) {
    absl::Status status = ErrnoError("listening on", path);
    ::close(fd);
    return status;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunnerListenSocket>> RunnerListenSocket::CreatePrivate() {
  // Named with the server's pid: a later server removes it if this one dies.
  absl::StatusOr<std::string> dir = MakeServerTempDir(TempParent(), "cog-runner");
  if (!dir.ok()) return dir.status();
  const std::string pattern = *dir;
  const std::string path = pattern + "/runner.sock";
  absl::StatusOr<int> fd = Listen(path);
  if (!fd.ok()) {
    ::rmdir(pattern.c_str());
    return fd.status();
  }
  return std::unique_ptr<RunnerListenSocket>(new RunnerListenSocket(*fd, path, pattern));
}

absl::StatusOr<std::unique_ptr<RunnerListenSocket>> RunnerListenSocket::CreateAt(
    const std::string& path) {
  absl::StatusOr<int> fd = Listen(path);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<RunnerListenSocket>(new RunnerListenSocket(*fd, path, ""));
}

RunnerListenSocket::RunnerListenSocket(int listen_fd, std::string path, std::string private_dir)
    : listen_fd_(listen_fd), path_(std::move(path)), private_dir_(std::move(private_dir)) {
  if (::pipe2(abort_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) abort_pipe_[0] = abort_pipe_[1] = -1;
}

RunnerListenSocket::~RunnerListenSocket() {
  ::close(listen_fd_);
  for (int fd : abort_pipe_) {
    if (fd >= 0) ::close(fd);
  }
  ::unlink(path_.c_str());
  if (!private_dir_.empty()) ::rmdir(private_dir_.c_str());
}

absl::StatusOr<int> RunnerListenSocket::Accept(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (aborted_.load()) return absl::CancelledError("stopped waiting for the runner");
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {abort_pipe_[0], POLLIN, 0}};
    const int wait_ms =
        static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int ready = ::poll(fds, abort_pipe_[0] >= 0 ? 2 : 1, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("waiting for the runner on", path_);
    }
    if (fds[1].revents != 0) {
      char bytes[64];  // drained: the Wake()s so far count once
      while (::read(abort_pipe_[0], bytes, sizeof(bytes)) > 0) {
      }
      return absl::CancelledError("stopped waiting for the runner");
    }
    if (ready == 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the runner did not connect to ", path_, " within ", absl::FormatDuration(timeout)));
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      // A Unix stream socket holds at most its sender's SO_SNDBUF in flight
      // (208 KiB by default): a 1 MiB Predict frame would cross in five or
      // more rounds, each waking the runner and then the server again. Asked
      // for 4 MiB (the kernel caps it at net.core.wmem_max); memory is only
      // taken while bytes are in flight.
      const int bytes = kSocketBufferBytes;
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
      return fd;
    }
    if (errno != EINTR && errno != ECONNABORTED) return ErrnoError("accepting on", path_);
  }
}

void RunnerListenSocket::Abort() {
  aborted_ = true;
  Wake();
}

void RunnerListenSocket::Wake() {
  if (abort_pipe_[1] >= 0) {
    const char byte = 1;
    (void)!::write(abort_pipe_[1], &byte, 1);
  }
}

}  // namespace cog
