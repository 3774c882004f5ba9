// FrontDoorServer: cpp-httplib's Server with a front door that slow, idle,
// hostile or too many clients cannot get past.
//
// cpp-httplib 0.11 (built by Debian as a shared library, its CPPHTTPLIB_*
// limits compiled in) gives each connection a thread for its whole life, reads
// a head line of any length into memory, counts no header fields, has no
// deadline for a whole head (only per read, so a byte every few seconds keeps
// a connection for ever), no size limit for chunked bodies, no connection
// limit, a listen backlog of 5, and sets SO_REUSEPORT (a second server on the
// same port shares it silently). Its options cannot change any of that, so
// this subclass takes over the one virtual it offers for it,
// process_and_close_socket(): per connection it
//   * refuses connections beyond `max_connections` with 503 at once;
//   * reads each request's head itself, within `header_timeout` of its first
//     byte (408 and close after that; a new connection that sends nothing
//     for `header_timeout` is closed) and within the limits of `limits`
//     (414 / 431 / 413 / 400 / 501 with {"detail": ...}, then close), never
//     holding much more than `limits.max_header_bytes` for it;
//   * delimits the body itself (Content-Length, or chunked decoded here and
//     refused with 413 once it passes `limits.max_body_bytes`);
//   * hands the head and body to httplib's own process_request(), which
//     routes and answers as before;
//   * waits at most `keep_alive_timeout` for the next request, and wakes at
//     once when the server stops.
// Connections run on a pool that grows to max_connections threads as needed,
// so that idle and half-open connections never take the last thread from a
// health check.
//
// Use it as an httplib::Server: routes, handlers, error handler. Then
// Listen(), listen_after_bind() on a thread of yours, and Shutdown() (any
// thread) to stop: it closes the listening socket, wakes idle connections,
// and listen_after_bind() returns once every connection has ended.
#ifndef COG_GATEWAY_FRONT_DOOR_H_
#define COG_GATEWAY_FRONT_DOOR_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/http_framing.h"
#include "httplib.h"

namespace cog {

struct FrontDoorOptions {
  RequestLimits limits;
  int max_connections = 256;
  // From a connection's first byte of a request to the end of its head.
  absl::Duration header_timeout = absl::Seconds(10);
  // How long a connection may wait for its next request.
  absl::Duration keep_alive_timeout = absl::Seconds(60);
  // How long one read of a body, or one write of a response, may wait.
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(5);
};

class FrontDoorServer final : public httplib::Server {
 public:
  explicit FrontDoorServer(FrontDoorOptions options);
  ~FrontDoorServer() override;

  // Binds `host`:`port` (0: a free port) without SO_REUSEPORT, so that a port
  // in use is an error, and listens with the system's largest backlog.
  // Returns the bound port.
  absl::StatusOr<int> Listen(const std::string& host, int port);
  // Stops accepting, wakes connections waiting for a request; requests being
  // served finish. Idempotent; callable before, during or after listening.
  void Shutdown();

  // Connections open now (for tests and metrics).
  int open_connections() const { return open_connections_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  void Serve(int fd);
  // Hands free heap pages back to the system (malloc_trim) kTrimDelay after
  // the last request that moved kTrimAfterBytes or more: such a request
  // leaves its buffers free in the arenas of the threads that made them, and
  // glibc keeps them (a 10 MiB data URI: ~300 MB of RSS kept). Not after every
  // such request: back-to-back ones would pay page faults for each buffer.
  void TrimWhenIdle();
  static constexpr uint64_t kTrimAfterBytes = 8 << 20;
  static constexpr absl::Duration kTrimDelay = absl::Seconds(1);

  const FrontDoorOptions options_;
  std::atomic<int> open_connections_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> last_limit_warning_{0};  // Unix seconds: warned at most every 10 s
  // Readable once Shutdown() is called: connections waiting for a request
  // poll it next to their socket.
  int stop_event_ = -1;

  absl::Mutex trim_mu_;
  bool trim_stop_ ABSL_GUARDED_BY(trim_mu_) = false;
  std::optional<absl::Time> large_transfer_end_ ABSL_GUARDED_BY(trim_mu_);
  std::thread trimmer_;  // runs TrimWhenIdle(); last, so it starts after the rest
};

}  // namespace cog

#endif  // COG_GATEWAY_FRONT_DOOR_H_
