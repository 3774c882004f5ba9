// FrontDoorServer: the HTTP/1.1 server of the REST gateway, with a front door
// that slow, idle, hostile or too many clients cannot get past.
//
// Per connection it
//   * refuses connections beyond `max_connections` with 503 at once;
//   * reads each request's head within `header_timeout` of its first byte
//     (408 and close after that; a new connection that sends nothing for
//     `header_timeout` is closed) and within the limits of `limits`
//     (414 / 431 / 413 / 400 / 501 with {"detail": ...}, then close), never
//     holding much more than `limits.max_header_bytes` for it;
//   * reads the body whole (Content-Length, or chunked, decoded and refused
//     with 413 once it passes `limits.max_body_bytes`), answering
//     `Expect: 100-continue` first; 408 and close for a body that stops for
//     `read_timeout`, or falls behind `min_body_bytes_per_second` after
//     `body_grace` (an answer the client reads as slowly: the connection is
//     closed);
//   * calls the handler on the connection's thread, then writes its answer
//     (the head and body in one send; a streamed one chunked as it comes),
//     unless the handler had it sent from another thread already
//     (HttpRequest::early_answer);
//   * after an answer that ends the connection (Connection: close, HTTP/1.0)
//     or a refusal, reads and drops what the client still sends before
//     closing, so that the answer is not lost to a reset;
//   * waits at most `keep_alive_timeout` for the next request, and wakes at
//     once when the server stops.
// Connections run on a pool that grows to max_connections threads as needed,
// so that idle and half-open connections never take the last thread from a
// health check.
//
// Why not cpp-httplib's server, which this was built on until 2026-11: Debian
// builds it as a shared library with its limits compiled in (no deadline for
// a head, no limit on chunked bodies or connections, a backlog of 5,
// SO_REUSEPORT); it gives a handler no socket to watch for a client's close;
// and its request loop (a head read a byte at a time through a virtual call,
// header maps compared with tolower per character, regex routing, an
// ostringstream per answer) cost ~60,000 instructions of a null prediction's
// ~115,000 in the server (callgrind).
//
// Listen(), then Serve() on a thread of yours, and Shutdown() (any thread) to
// stop: it shuts the listening socket down (new connections are refused; the
// descriptor is closed with the server), wakes idle connections, and Serve()
// returns once every connection has ended.
#ifndef COG_GATEWAY_FRONT_DOOR_H_
#define COG_GATEWAY_FRONT_DOOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/http_framing.h"
#include "gateway/http_message.h"
#include "server/heap_trimmer.h"

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
  // A body, a request's coming in or an answer's going out, must keep up this
  // average rate once `body_grace` has passed: by `body_grace` + n / rate
  // after it began, n bytes must have moved. A client trickling a byte every
  // few seconds, or reading an answer that slowly (each read or write within
  // its timeout), would otherwise hold a connection, and a thread, for as long
  // as the body is long. 4 KiB/s (32 kbit/s) is slow enough for a poor link,
  // and holding 256 connections that way costs a client 1 MiB/s. 0 turns the
  // rate off.
  absl::Duration body_grace = absl::Seconds(10);
  uint64_t min_body_bytes_per_second = 4 << 10;
  // Told what each request moved (its body and answer), to hand the heap back
  // after large ones. Not owned; null: never trimmed.
  HeapTrimmer* heap_trimmer = nullptr;
  // Most bytes of request bodies held at once, all connections together, from
  // when a body starts to arrive until its request is answered; bodies of
  // kUncountedBodyBytes or less are not counted (max_connections bounds
  // those). A body that would pass it is refused with 503 and Retry-After
  // (by its Content-Length before a byte of it is read; a chunked one as its
  // chunk sizes pass it). Bodies sent fast and then trickled at the minimum
  // rate hold their memory for hours (100 MiB at 4 KiB/s: 7 h), so without it
  // a few hundred connections could hold more than the machine has.
  uint64_t max_buffered_body_bytes = uint64_t{1} << 30;
};

// A body this large or smaller is not counted in max_buffered_body_bytes.
inline constexpr uint64_t kUncountedBodyBytes = 1 << 20;

class FrontDoorServer {
 public:
  // Called for each request on its connection's thread, concurrently for
  // different connections. An exception it throws is answered with 500.
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;

  FrontDoorServer(FrontDoorOptions options, Handler handler);
  ~FrontDoorServer();

  // Binds `host`:`port` (0: a free port) without SO_REUSEPORT, so that a port
  // in use is an error, and listens with the system's largest backlog.
  // Returns the bound port.
  absl::StatusOr<int> Listen(const std::string& host, int port);
  // Accepts and serves connections until Shutdown(); returns once every
  // connection has ended. Call once, after Listen().
  void Serve();
  // Stops accepting, wakes connections waiting for a request; requests being
  // served finish. Idempotent; callable before, during or after listening.
  void Shutdown();
  // After Shutdown: answers still being written (to a client reading a large
  // one slowly, above --min-body-rate) and bodies still being read are given
  // up within a second, their connections reset, so that shutting down has a
  // bound.
  void AbandonInProgress() { abandon_ = true; }

  // Connections open now (for tests and metrics).
  int open_connections() const { return open_connections_.load(); }
  // Bytes of request bodies counted against max_buffered_body_bytes now.
  uint64_t buffered_body_bytes() const { return buffered_body_bytes_.load(); }

 private:
  // One connection, from accept to close.
  void ServeConnection(int fd);
  void ServeRequests(int fd);

  const FrontDoorOptions options_;
  const Handler handler_;
  std::atomic<int> listener_{-1};
  std::atomic<int> open_connections_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abandon_{false};
  std::atomic<int64_t> last_limit_warning_{0};  // Unix seconds: warned at most every 10 s
  std::atomic<uint64_t> buffered_body_bytes_{0};  // counted against max_buffered_body_bytes
  // Readable once Shutdown() is called: connections waiting for a request
  // poll it next to their socket.
  int stop_event_ = -1;
};

}  // namespace cog

#endif  // COG_GATEWAY_FRONT_DOOR_H_
