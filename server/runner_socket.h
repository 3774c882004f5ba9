// RunnerListenSocket: the Unix socket the runner connects to.
//
// The server always listens and the runner always connects, whether the server
// spawned the runner (single container) or another container started it
// (Kubernetes sidecar). In the default mode the socket lives in a fresh private
// directory (mode 0700) that is removed with this object; with an explicit path
// the socket file is removed but its directory is left alone.
//
// Accept() and Abort() / Wake() may be called from different threads; nothing
// else is thread-safe. The socket outlives the runners that connect to it: a
// supervisor accepts again after one dies.
#ifndef COG_SERVER_RUNNER_SOCKET_H_
#define COG_SERVER_RUNNER_SOCKET_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cog {

class RunnerListenSocket {
 public:
  // Listens on "runner.sock" in a new 0700 directory under $TMPDIR (or /tmp),
  // named with the server's pid (see server_temp_dir.h).
  static absl::StatusOr<std::unique_ptr<RunnerListenSocket>> CreatePrivate();
  // Listens at `path`, replacing a stale socket file left there.
  static absl::StatusOr<std::unique_ptr<RunnerListenSocket>> CreateAt(const std::string& path);

  ~RunnerListenSocket();
  RunnerListenSocket(const RunnerListenSocket&) = delete;
  RunnerListenSocket& operator=(const RunnerListenSocket&) = delete;

  const std::string& path() const { return path_; }

  // Waits for one connection. The caller owns the returned fd. Fails with
  // DeadlineExceeded after `timeout`, Cancelled after Abort().
  absl::StatusOr<int> Accept(absl::Duration timeout);

  // Makes a pending Accept() and every later one return Cancelled.
  void Abort();

  // Makes a pending Accept() (or, if none is pending, the next one) return
  // Cancelled once; later ones wait as usual. For a runner that died before
  // it connected.
  void Wake();

 private:
  RunnerListenSocket(int listen_fd, std::string path, std::string private_dir);

  int listen_fd_;
  int abort_pipe_[2] = {-1, -1};  // a byte in it interrupts Accept()
  std::atomic<bool> aborted_{false};
  std::string path_;
  std::string private_dir_;  // empty when the path was given
};

}  // namespace cog

#endif  // COG_SERVER_RUNNER_SOCKET_H_
