#include "gateway/front_door.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <list>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "server/json.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes asked of the kernel per read: a whole head in one go, a body in few.
constexpr size_t kReadChunk = 64 << 10;
// After an error answer, how long the client's remaining bytes are read and
// dropped before closing: a close with unread input sends a reset, which can
// destroy the answer before the client reads it.
constexpr auto kLinger = std::chrono::seconds(2);

// Whether a warning about a refused body may be logged now: at most one every
// 10 s, since any client can have its body refused.
bool BodyWarningDue() {
  static std::atomic<int64_t> last{0};  // Unix seconds
  int64_t before = last.load();
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  return now - before >= 10 && last.compare_exchange_strong(before, now);
}

// How long a keep-alive connection keeps its read buffer while it waits for
// its next request.
constexpr absl::Duration kKeepBufferWhileIdle = absl::Milliseconds(200);
// Threads that have served no connection for this long end, down to a few.
constexpr absl::Duration kIdleThreadLifetime = absl::Seconds(30);
constexpr size_t kResidentThreads = 8;
// Threads beyond max_connections: a thread that has just ended its
// connection (no longer counted) may not be idle yet when the next comes.
constexpr int kSpareThreads = 16;
// Connections told 503 that wait for their client to close (Serve), at most;
// past it the oldest is closed at once.
constexpr size_t kMaxRefusedLingering = 1024;

// Between now and a year from now: a timeout from a huge or negative flag
// must not overflow the clock.
Clock::time_point After(absl::Duration duration) {
  return Clock::now() +
         absl::ToChronoNanoseconds(std::clamp(duration, absl::ZeroDuration(), absl::Hours(24 * 365)));
}

int MillisecondsUntil(Clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

// The threads connections run on: one per open connection, made when
// a connection finds none idle, up to a cap; threads idle for a while end, a
// few stay. An idle server keeps few threads, and a burst of connections gets
// a thread each at once instead of queueing behind slow ones.
//
// Thread-safe. Serve() owns it: Enqueue() from its accept loop, Shutdown()
// once when it stops accepting.
class ConnectionThreads final {
 public:
  explicit ConnectionThreads(size_t max_threads) : max_threads_(max_threads) {}
  ~ConnectionThreads() { Shutdown(); }

  void Enqueue(std::function<void()> job) {
    std::vector<std::thread> ended;
    {
      absl::MutexLock lock(&mu_);
      jobs_.push_back(std::move(job));
      if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
        auto self = threads_.emplace(threads_.end());
        // The new thread waits for mu_ before it looks at `self`.
        try {
          *self = std::thread([this, self] { Work(self); });
          thread_failure_logged_ = false;
        } catch (const std::system_error& e) {
          // No thread to be had (a pids limit the model's threads filled): the
          // job waits for one of the threads there are.
          threads_.erase(self);
          if (!thread_failure_logged_) {
            spdlog::warn("cannot start a thread for another connection ({}): connections wait for "
                         "the {} threads there are", e.what(), threads_.size());
          }
          thread_failure_logged_ = true;
        }
      }
      ended.swap(ended_);
    }
    for (std::thread& thread : ended) thread.join();
  }

  // Runs what is queued, then joins every thread.
  void Shutdown() {
    std::list<std::thread> threads;
    std::vector<std::thread> ended;
    {
      absl::MutexLock lock(&mu_);
      shutdown_ = true;
      threads.splice(threads.end(), threads_);
      ended.swap(ended_);
    }
    for (std::thread& thread : threads) thread.join();
    for (std::thread& thread : ended) thread.join();
  }

 private:
  void Work(std::list<std::thread>::iterator self) {
    mu_.Lock();
    while (true) {
      ++idle_;
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !jobs_.empty() || shutdown_;
      };
      const bool woken = mu_.AwaitWithTimeout(absl::Condition(&has_work), kIdleThreadLifetime);
      --idle_;
      if (jobs_.empty()) {
        if (shutdown_) break;  // Shutdown() joins this thread
        if (!woken && threads_.size() > kResidentThreads) {
          // Whoever next takes ended_ (under mu_, so after this unlocks) joins it.
          ended_.push_back(std::move(*self));
          threads_.erase(self);
          break;
        }
        continue;
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      mu_.Unlock();
      job();
      job = nullptr;  // the connection's resources go now, not at the next job
      mu_.Lock();
    }
    mu_.Unlock();
  }

  const size_t max_threads_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::list<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> ended_ ABSL_GUARDED_BY(mu_);  // exited or exiting, to join
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool thread_failure_logged_ ABSL_GUARDED_BY(mu_) = false;  // since a thread last started
};

// The head of `response`: status line and fields, through the blank line.
std::string ResponseHead(const HttpResponse& response, const ParsedHead& request,
                         bool keep_alive) {
  std::string head;
  head.reserve(128);
  absl::StrAppend(&head, "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status), "\r\n");
  if (!response.content_type.empty()) {
    absl::StrAppend(&head, "Content-Type: ", response.content_type, "\r\n");
  }
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  if (!response.stream) {
    absl::StrAppend(&head, "Content-Length: ", response.body.size(), "\r\n");
  } else if (request.http_minor >= 1) {
    head.append("Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) {
    head.append("Connection: close\r\n");
  } else if (request.http_minor == 0) {
    head.append("Connection: keep-alive\r\n");  // else a 1.0 client reads to the close
  }
  head.append("\r\n");
  return head;
}

// The JSON body of an answer the front door makes itself: {"detail": ...}.
std::string DetailBody(absl::string_view detail) {
  return DumpJson(Json{{"detail", std::string(detail)}});
}

// One client connection: its socket and the bytes read from it and not yet
// used. Bytes past a request stay buffered for the next one.
//
// Used by the one thread serving the connection; closes the socket when
// destroyed.
class Connection final {
 public:
  enum class Wait { kReady, kTimeout, kStopped, kClosed };

  Connection(int fd, const FrontDoorOptions& options, int stop_event,
             const std::atomic<bool>* abandon = nullptr,
             std::atomic<uint64_t>* buffered_body_bytes = nullptr)
      : fd_(fd),
        options_(options),
        stop_event_(stop_event),
        abandon_(abandon),
        buffered_body_bytes_(buffered_body_bytes) {}
  ~Connection() {
    ReleaseBody();
    if (write_failed_) {
      // A reset, not a close: the kernel would otherwise go on feeding what
      // is queued (megabytes) to a client that reads too slowly.
      const linger abort{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    }
    ::close(fd_);
  }

  bool failed() const { return answered_ || write_failed_; }

  absl::string_view buffered() const {
    return absl::string_view(buffer_.get() + begin_, end_ - begin_);
  }
  void Consume(size_t n) { begin_ += n; }

  // Waits until the socket has input (or the server stops, if `watch_stop`).
  Wait WaitForInput(Clock::time_point deadline, bool watch_stop) const {
    while (true) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_event_, POLLIN, 0}};
      const int ready = ::poll(fds, watch_stop ? 2 : 1, MillisecondsUntil(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return Wait::kClosed;
      if (watch_stop && (fds[1].revents & POLLIN) != 0) return Wait::kStopped;
      if (fds[0].revents != 0) return Wait::kReady;  // input, end of input or error: read says
      if (Clock::now() >= deadline) return Wait::kTimeout;
    }
  }

  // Appends what the socket has to the buffer, waiting for it until
  // `deadline` (or until the server stops, if `watch_stop`). kClosed: the
  // client's input ended, or the socket failed.
  Wait Fill(Clock::time_point deadline, bool watch_stop) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (capacity_ - end_ < kReadChunk) {
      // Room for a whole read: move what is left to the front, or grow (a
      // head being scanned; the scanner bounds it).
      const size_t left = end_ - begin_;
      const size_t capacity = std::max(capacity_, left + kReadChunk);
      std::unique_ptr<char[]> grown(capacity == capacity_ ? nullptr : new char[capacity]);
      char* to = grown ? grown.get() : buffer_.get();
      if (left > 0) std::memmove(to, buffer_.get() + begin_, left);
      if (grown) buffer_ = std::move(grown);
      capacity_ = capacity;
      begin_ = 0;
      end_ = left;
    }
    while (true) {
      const ssize_t n = ::recv(fd_, buffer_.get() + end_, capacity_ - end_, MSG_DONTWAIT);
      if (n > 0) {
        end_ += static_cast<size_t>(n);
        return Wait::kReady;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        return Wait::kClosed;
      }
      if (errno == EINTR) continue;
      if (const Wait wait = WaitForInput(deadline, watch_stop); wait != Wait::kReady) return wait;
    }
  }

  // Reads a body framed as `framing` (its head consumed) into `*body`, with
  // kJsonPadding of capacity left past its end. False if the request cannot
  // be served: the client's input ended or the socket failed, or the body was
  // refused (answered here).
  // With `expect_continue` (and no byte of the body here yet), 100 Continue
  // is sent first, once a Content-Length body is counted in the server's
  // budget: a body refused is then never sent.
  bool ReadBody(const BodyFraming& framing, std::string* body, bool expect_continue) {
    // Counted while it is read (what a client can make last: a body sent at
    // once and then trickled) and parsed (HttpRequest::release_body); given
    // back here if it is refused.
    absl::Cleanup release = [this] { ReleaseBody(); };
    body_started_ = Clock::now();
    body_bytes_ = buffered().size();  // what came with the head counts
    if (framing.kind == BodyFraming::Kind::kLength && !CountBody(framing.length, /*claim_only=*/true)) {
      return false;
    }
    const bool has_body = framing.kind == BodyFraming::Kind::kChunked ||
                          (framing.kind == BodyFraming::Kind::kLength && framing.length > 0);
    if (expect_continue && has_body && buffered().empty() && !Send({"HTTP/1.1 100 Continue\r\n\r\n"})) {
      return false;
    }
    switch (framing.kind) {
      case BodyFraming::Kind::kNone:
        return true;
      case BodyFraming::Kind::kLength:
        if (!ReadLengthBody(framing.length, body)) return false;
        break;
      case BodyFraming::Kind::kChunked:
        if (!ReadChunkedBody(body)) return false;
        break;
    }
    if (body->capacity() - body->size() < kJsonPadding) body->reserve(body->size() + kJsonPadding);
    std::move(release).Cancel();
    return true;
  }

  bool body_counted() const { return body_counted_ > 0; }

  // Gives back what the body being read counted in the server's budget.
  void ReleaseBody() {
    if (body_counted_ > 0 && buffered_body_bytes_ != nullptr) {
      buffered_body_bytes_->fetch_sub(body_counted_);
    }
    body_counted_ = 0;
  }

  // Lets the read buffer go when it holds nothing (a connection that idles).
  void ReleaseBufferIfEmpty() {
    if (begin_ != end_) return;
    buffer_.reset();
    capacity_ = begin_ = end_ = 0;
  }

  // The same for a buffer grown past its usual size (a large head).
  void ReleaseBufferIfGrown() {
    if (capacity_ > kReadChunk) ReleaseBufferIfEmpty();
  }

  // Answers with `status` and {"detail": ...} and closes: the request is not
  // served, and the connection is not used again.
  void Refuse(int status, absl::string_view detail, absl::string_view retry_after = {}) {
    if (!failed()) {
      HttpResponse response;
      response.Reply(status, "application/json", DetailBody(detail));
      if (!retry_after.empty()) response.headers.emplace_back("Retry-After", std::string(retry_after));
      Send({ResponseHead(response, ParsedHead(), /*keep_alive=*/false), response.body});
    }
    answered_ = true;
    Linger();
  }

  // Sends `parts` in order, in one sendmsg() when the socket takes them all.
  // With `wait`, until every byte is out, or the socket has taken none for the
  // write timeout or, past the grace, has fallen behind the minimum rate (the
  // connection has then failed: a client reading a large answer a few bytes
  // at a time does not hold its thread); without, only what the socket takes
  // now. Returns the bytes sent.
  size_t Write(std::initializer_list<absl::string_view> parts, bool wait) {
    if (write_failed_) return 0;
    iovec iov[4];
    size_t count = 0;
    for (absl::string_view part : parts) {
      if (!part.empty()) iov[count++] = {const_cast<char*>(part.data()), part.size()};
    }
    size_t sent = 0;
    size_t first = 0;
    Clock::time_point deadline = After(options_.write_timeout);
    // While the client holds the write up: since when, and what it had taken
    // then and at the last look. What it has taken is what it acknowledged:
    // bytes sent less those the kernel still queues (megabytes on loopback).
    std::optional<Clock::time_point> held_since;
    int64_t taken_then = 0;
    int64_t taken_last = 0;
    while (first < count) {
      msghdr message{};
      message.msg_iov = iov + first;
      message.msg_iovlen = count - first;
      ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        while (n > 0 && first < count) {
          const size_t taken = std::min(iov[first].iov_len, static_cast<size_t>(n));
          iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + taken;
          iov[first].iov_len -= taken;
          n -= static_cast<ssize_t>(taken);
          if (iov[first].iov_len == 0) ++first;
        }
        deadline = After(options_.write_timeout);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait) break;
        const int64_t taken = static_cast<int64_t>(sent) - static_cast<int64_t>(Unsent());
        if (!held_since.has_value()) {
          held_since = Clock::now();
          taken_then = taken_last = taken;
        }
        if (taken != taken_last) {  // acknowledged bytes are progress too
          taken_last = taken;
          deadline = After(options_.write_timeout);
        }
        const Clock::time_point now = Clock::now();
        const Clock::time_point rate_due =
            RateDeadline(*held_since, static_cast<uint64_t>(std::max<int64_t>(0, taken - taken_then)));
        const bool abandoned = abandon_ != nullptr && abandon_->load();
        if (now < deadline && now < rate_due && !abandoned) {
          // The kernel says there is room only once a third of its buffer has
          // drained: the acknowledgements are looked at again each second.
          pollfd out{fd_, POLLOUT, 0};
          ::poll(&out, 1, MillisecondsUntil(std::min({deadline, rate_due, now + std::chrono::seconds(1)})));
          continue;  // an error on the socket fails the next send
        }
      }
      write_failed_ = true;
      break;
    }
    written_ += sent;
    return sent;
  }

  // Bytes written to the socket that its peer has not acknowledged yet.
  size_t Unsent() const {
    int queued = 0;
    if (::ioctl(fd_, SIOCOUTQ, &queued) != 0 || queued < 0) return 0;
    return static_cast<size_t>(queued);
  }

  // Write() with waiting; false if the connection has failed.
  bool Send(std::initializer_list<absl::string_view> parts) {
    Write(parts, /*wait=*/true);
    return !write_failed_;
  }

  // Ends a connection whose last answer went out whole: if the client has
  // sent more (pipelined requests that will not be served), its bytes are
  // read and dropped first (Linger), since closing with unread input sends a
  // reset that can destroy the answer before the client reads it.
  void Close() {
    pollfd in{fd_, POLLIN, 0};
    if (!buffered().empty() || (::poll(&in, 1, 0) > 0 && (in.revents & POLLIN) != 0)) Linger();
  }

  // Bytes of responses sent since the last call.
  size_t TakeWritten() { return std::exchange(written_, 0); }

 private:
  static constexpr uint64_t kMaxReserve = 64 << 20;

  // Counts the memory a body takes so far (`size` bytes) in the server's
  // budget, as it grows with what arrives: a length only claimed costs
  // nothing (a few connections claiming 100 MiB and sending nothing kept
  // every other large body out). With `claim_only`, only checks that a body
  // of `size` would fit now. Refuses it with 503 if not.
  bool CountBody(uint64_t size, bool claim_only = false) {
    if (buffered_body_bytes_ == nullptr || size <= kUncountedBodyBytes || size <= body_counted_) {
      return true;
    }
    const uint64_t more = size - body_counted_;
    const uint64_t limit = options_.max_buffered_body_bytes;
    uint64_t held = buffered_body_bytes_->load();
    do {
      if (held + more > limit) {
        if (BodyWarningDue()) {
          spdlog::warn("refused a request body with 503: bodies being read already hold {} bytes of "
                       "--max-buffered-body-bytes={} (this message: at most every 10 s)",
                       held, limit);
        }
        Refuse(503,
               absl::StrCat("The server is reading ", held,
                            " bytes of request bodies, and this one (", size,
                            " bytes) would pass its limit, --max-buffered-body-bytes=", limit,
                            "; retry shortly"),
               "1");
        return false;
      }
      if (claim_only) return true;
    } while (!buffered_body_bytes_->compare_exchange_weak(held, held + more));
    body_counted_ = size;
    return true;
  }

  bool ReadLengthBody(uint64_t length, std::string* body) {
    // Room for all of it and the padding, so that it is not copied as it
    // grows; capped, since the bytes have not arrived yet.
    body->reserve(static_cast<size_t>(std::min<uint64_t>(length, kMaxReserve)) + kJsonPadding);
    const size_t first = static_cast<size_t>(std::min<uint64_t>(length, buffered().size()));
    body->append(buffer_.get() + begin_, first);
    begin_ += first;
    // The rest straight from the socket into the body, which grows (by
    // doubling) only as bytes arrive: a length that is only claimed costs
    // nothing.
    size_t got = body->size();
    while (got < length) {
      if (got == body->size()) {
        const uint64_t grown = std::min<uint64_t>(length, std::max<uint64_t>(2 * got, kReadChunk));
        if (!CountBody(grown)) return false;
        body->resize(static_cast<size_t>(grown));
      }
      const ssize_t n = ::recv(fd_, body->data() + got, body->size() - got, MSG_DONTWAIT);
      if (n > 0) {
        got += static_cast<size_t>(n);
        body_bytes_ += static_cast<uint64_t>(n);
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
      if (errno == EINTR) continue;
      if (!WaitForBody()) return false;
    }
    return true;
  }

  bool ReadChunkedBody(std::string* body) {
    ChunkedBodyDecoder decoder;
    while (true) {
      size_t consumed = 0;
      const ChunkedBodyDecoder::State state = decoder.Advance(buffered(), &consumed);
      begin_ += consumed;
      switch (state) {
        case ChunkedBodyDecoder::State::kEnd:
          return true;
        case ChunkedBodyDecoder::State::kMalformed:
          Refuse(400, decoder.error());
          return false;
        case ChunkedBodyDecoder::State::kNeedMore:
          if (!FillBody()) return false;
          break;
        case ChunkedBodyDecoder::State::kData: {
          // Refused as soon as the chunk sizes say the body will be too large,
          // before its data is read.
          if (decoder.announced() > options_.limits.max_body_bytes) {
            Refuse(413, BodyTooLargeDetail(options_.limits.max_body_bytes));
            return false;
          }
          if (buffered().empty() && !FillBody()) return false;
          const size_t n = static_cast<size_t>(
              std::min<uint64_t>(decoder.data_remaining(), buffered().size()));
          body->append(buffer_.get() + begin_, n);
          begin_ += n;
          decoder.TakeData(n);
          if (!CountBody(body->capacity())) return false;
          break;
        }
      }
    }
  }

  // Reads more of a body into the buffer, within the read timeout and the
  // body's rate.
  bool FillBody() {
    const size_t before = end_ - begin_;
    const Wait wait = WaitForBodyInput(/*fill=*/true);
    if (wait == Wait::kReady) body_bytes_ += (end_ - begin_) - before;
    if (wait == Wait::kTimeout) RefuseSlowBody();
    return wait == Wait::kReady;
  }

  // Waits for more of a body, within the read timeout and the body's rate.
  bool WaitForBody() {
    const Wait wait = WaitForBodyInput(/*fill=*/false);
    if (wait == Wait::kTimeout) RefuseSlowBody();
    return wait == Wait::kReady;
  }

  // Waits for the body's next bytes until they are due (reading them, with
  // `fill`), looking every second at whether the server gave up on requests
  // in progress (AbandonInProgress): kStopped then. A body trickled at the
  // minimum rate (100 MiB at 4 KiB/s: 7 hours) held the shutdown.
  Wait WaitForBodyInput(bool fill) {
    const Clock::time_point due = BodyDeadline();
    while (true) {
      if (abandon_ != nullptr && abandon_->load()) return Wait::kStopped;  // bytes still coming or not
      const Clock::time_point until =
          abandon_ != nullptr ? std::min(due, Clock::now() + std::chrono::seconds(1)) : due;
      const Wait wait = fill ? Fill(until, /*watch_stop=*/false) : WaitForInput(until, /*watch_stop=*/false);
      if (wait != Wait::kTimeout || Clock::now() >= due) return wait;
    }
  }

  // When the body's next byte is due: within read_timeout of now, and by
  // when the bytes so far keep the minimum rate after the grace.
  Clock::time_point BodyDeadline() const {
    return std::min(After(options_.read_timeout), RateDeadline(body_started_, body_bytes_));
  }

  // When a transfer that began at `started` and has moved `bytes` falls
  // behind the minimum rate.
  Clock::time_point RateDeadline(Clock::time_point started, uint64_t bytes) const {
    const uint64_t rate = options_.min_body_bytes_per_second;
    if (rate == 0) return Clock::time_point::max();
    // In seconds, capped at a year: a grace from a huge --header-timeout
    // must not overflow the clock.
    const double due = std::min(absl::ToDoubleSeconds(options_.body_grace) +
                                    static_cast<double>(bytes) / static_cast<double>(rate),
                                365.0 * 24 * 3600);
    return started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due));
  }

  void RefuseSlowBody() {
    const Clock::time_point now = Clock::now();
    if (now >= RateDeadline(body_started_, body_bytes_)) {
      const double seconds = std::chrono::duration<double>(now - body_started_).count();
      Refuse(408, absl::StrCat("The request body arrived too slowly: ", body_bytes_, " bytes in ",
                               absl::StrFormat("%.1f", seconds), " s; after the first ",
                               absl::FormatDuration(options_.body_grace), " a body must average ",
                               options_.min_body_bytes_per_second, " bytes/s"));
      return;
    }
    Refuse(408, absl::StrCat("The request body stopped arriving: no byte for ",
                             absl::FormatDuration(options_.read_timeout)));
  }

  // Stops sending, then reads and drops what the client still sends, until
  // it closes, kLinger has passed or the server stops, so that the answer is
  // not lost to a reset.
  void Linger() {
    ::shutdown(fd_, SHUT_WR);
    const Clock::time_point deadline = Clock::now() + kLinger;
    char sink[16 << 10];
    while (WaitForInput(deadline, /*watch_stop=*/true) == Wait::kReady) {
      const ssize_t n = ::recv(fd_, sink, sizeof(sink), 0);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
  }

  const int fd_;
  const FrontDoorOptions& options_;
  const int stop_event_;
  const std::atomic<bool>* const abandon_;  // FrontDoorServer::AbandonInProgress
  // [begin_, end_): read, not used yet. Not zero-filled: only what recv()
  // writes is ever touched.
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t written_ = 0;
  bool answered_ = false;  // refused: nothing more goes out
  bool write_failed_ = false;
  // The body being read: when its reading began, and its bytes since.
  Clock::time_point body_started_;
  uint64_t body_bytes_ = 0;
  // The server's count of bodies held (FrontDoorOptions::max_buffered_body_bytes),
  // or null; and what this connection's body adds to it.
  std::atomic<uint64_t>* const buffered_body_bytes_;
  uint64_t body_counted_ = 0;
};

// A streamed response's body, in chunks (HTTP/1.1) or as it comes, delimited
// by the connection's close (HTTP/1.0).
class StreamWriter final : public ResponseWriter {
 public:
  StreamWriter(Connection& connection, bool chunked)
      : connection_(connection), chunked_(chunked) {}

  bool Write(absl::string_view data) override {
    if (data.empty()) return !connection_.failed();
    char size[24];
    const Parts parts = Framed(data, size);
    return connection_.Send({parts[0], parts[1], parts[2]});
  }

  bool WriteNow(absl::string_view data, std::string* rest) override {
    rest->clear();
    if (data.empty()) return !connection_.failed();
    char size[24];
    const Parts parts = Framed(data, size);
    size_t sent = connection_.Write({parts[0], parts[1], parts[2]}, /*wait=*/false);
    if (connection_.failed()) return false;
    for (absl::string_view part : parts) {
      if (sent >= part.size()) {
        sent -= part.size();
      } else {
        const absl::string_view left = part.substr(sent);
        rest->append(left.data(), left.size());
        sent = 0;
      }
    }
    return true;
  }

  bool WriteFramed(absl::string_view framed) override {
    return framed.empty() ? !connection_.failed() : connection_.Send({framed});
  }

  bool End() { return !chunked_ || connection_.Send({"0\r\n\r\n"}); }

 private:
  using Parts = std::array<absl::string_view, 3>;

  // `data` as it goes out: a chunk (its size line, written into `size`, the
  // data, CRLF), or the data alone when the close delimits the body.
  Parts Framed(absl::string_view data, char (&size)[24]) const {
    if (!chunked_) return {absl::string_view(), data, absl::string_view()};
    const int length = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return {absl::string_view(size, static_cast<size_t>(length)), data, "\r\n"};
  }

  Connection& connection_;
  const bool chunked_;
};

// HttpRequest::early_answer: sends what the socket takes at once on the
// calling thread; the connection's thread sends the rest, if any, once the
// handler has returned.
class ConnectionEarlyAnswer final : public EarlyAnswer {
 public:
  // `pipelined`: the client's next request is in the connection's buffer
  // already (no poll of the socket would say so).
  ConnectionEarlyAnswer(Connection& connection, const ParsedHead& request,
                        const std::atomic<bool>& stopping, bool pipelined)
      : connection_(connection), request_(request), stopping_(stopping), pipelined_(pipelined) {}

  bool Send(int status, absl::string_view content_type, std::string body) override {
    response_.Reply(status, std::string(content_type), std::move(body));
    keep_alive_ = request_.keep_alive && !stopping_;
    head_ = ResponseHead(response_, request_, keep_alive_);
    sent_ = connection_.Write({head_, Body()}, /*wait=*/false);
    used_ = true;
    return keep_alive_ && !pipelined_ && sent_ == head_.size() + Body().size();
  }

  bool used() const { return used_; }
  bool keep_alive() const { return keep_alive_; }
  // On the connection's thread, after the handler: sends what is left.
  bool Finish() {
    const absl::string_view head(head_);
    const absl::string_view body = Body();
    if (sent_ >= head.size()) return connection_.Send({body.substr(sent_ - head.size())});
    return connection_.Send({head.substr(sent_), body});
  }

 private:
  // What follows the head: nothing for a HEAD request.
  absl::string_view Body() const {
    return request_.head_only ? absl::string_view() : absl::string_view(response_.body);
  }

  Connection& connection_;
  const ParsedHead& request_;
  const std::atomic<bool>& stopping_;
  const bool pipelined_;
  // Written by Send() before the handler's thread learns of it (the handler
  // returns after it), read by the connection's thread after the handler.
  bool used_ = false;
  bool keep_alive_ = false;
  HttpResponse response_;
  std::string head_;
  size_t sent_ = 0;  // bytes of head_, then of response_.body
};

// What a handler that threw is answered with.
void InternalError(HttpResponse& response, absl::string_view what) {
  spdlog::error("request failed: {}", std::string(what));
  response = HttpResponse();
  response.Reply(500, "application/json", DetailBody(absl::StrCat("Internal Server Error: ", what)));
}

}  // namespace

FrontDoorServer::FrontDoorServer(FrontDoorOptions options, Handler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      stop_event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

FrontDoorServer::~FrontDoorServer() {
  Shutdown();
  if (const int listener = listener_.exchange(-1); listener >= 0) ::close(listener);
  if (stop_event_ >= 0) ::close(stop_event_);
}

absl::StatusOr<int> FrontDoorServer::Listen(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string service = absl::StrCat(port);
  if (const int error = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints,
                                    &addresses);
      error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port, ": ", gai_strerror(error)));
  }
  int error = 0;
  int listener = -1;
  for (addrinfo* address = addresses; address != nullptr && listener < 0;
       address = address->ai_next) {
    const int fd = ::socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno;
      continue;
    }
    // SO_REUSEADDR lets a restarted server bind while connections of the old
    // one linger in TIME_WAIT; no SO_REUSEPORT, with which a second server
    // would bind the same port and silently take part of its connections.
    const int yes = 1;
    const int no = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (address->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof(no));
    // The system's largest backlog: a burst of connections that overflows it
    // waits for the client's SYN retransmit (a second or more).
    if (::bind(fd, address->ai_addr, address->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      error = errno;
      ::close(fd);
      continue;
    }
    listener = fd;
  }
  freeaddrinfo(addresses);
  if (listener < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for HTTP on ", host, ":", port, ": ",
        error == EADDRINUSE ? "the port is in use by another process"
                            : (error != 0 ? std::strerror(error) : "cannot bind")));
  }
  sockaddr_storage bound{};
  socklen_t size = sizeof(bound);
  getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &size);
  const int bound_port = ntohs(bound.ss_family == AF_INET6
                                   ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (const int old = listener_.exchange(listener); old >= 0) ::close(old);
  return bound_port;
}

void FrontDoorServer::Serve() {
  ConnectionThreads threads(static_cast<size_t>(std::max(1, options_.max_connections)) +
                            kSpareThreads);
  const int listener = listener_.load();
  // Connections over --max-connections are told 503 from here, not from a
  // connection thread: a flood of idle connections once queued behind the
  // 2 s each took to be told (a fresh client waited 27 s for its 503 behind
  // 1,000). The answer is written at once (it fits any socket's buffer);
  // then the socket waits here, among those polled, until its client closes
  // or kLinger passes, its input read and dropped (a close with unread input
  // sends a reset, which can destroy the answer before the client reads it).
  HttpResponse over_limit;
  over_limit.Reply(503, "application/json",
                   DetailBody(absl::StrCat("The server has ", options_.max_connections,
                                           " connections open, its limit (--max-connections); "
                                           "try again later")));
  over_limit.headers.emplace_back("Retry-After", "1");
  const std::string refusal =
      ResponseHead(over_limit, ParsedHead(), /*keep_alive=*/false) + over_limit.body;
  struct Refused {
    int fd;
    Clock::time_point deadline;
  };
  std::deque<Refused> refused;  // oldest first: the deadlines are in order
  std::vector<pollfd> fds;
  char sink[16 << 10];
  // Accepts that failed for want of descriptors or memory, since the last
  // warning (at most one every 10 s: each retry, every 10 ms, said it).
  int64_t accept_failures = 0;
  int64_t last_accept_warning = 0;  // Unix seconds
  while (listener >= 0 && !stopping_) {
    fds.assign({{listener, POLLIN, 0}, {stop_event_, POLLIN, 0}});
    for (const Refused& r : refused) fds.push_back({r.fd, POLLIN, 0});
    const int timeout = refused.empty() ? -1 : MillisecondsUntil(refused.front().deadline);
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("HTTP accept loop: poll failed: {}", std::strerror(errno));
      break;
    }
    if ((fds[1].revents & POLLIN) != 0) break;
    if ((fds[0].revents & (POLLERR | POLLNVAL)) != 0) break;
    // Refused sockets whose client closed, failed or had its time.
    const Clock::time_point now = Clock::now();
    size_t kept = 0;
    for (size_t i = 0; i < refused.size(); ++i) {
      bool done = refused[i].deadline <= now;
      if (!done && fds[i + 2].revents != 0) {
        const ssize_t n = ::recv(refused[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
        done = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
      }
      if (done) {
        ::close(refused[i].fd);
      } else {
        refused[kept++] = refused[i];
      }
    }
    refused.resize(kept);
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the connection waits in the backlog
        // until some are freed, instead of this loop spinning.
        ++accept_failures;
        if (const int64_t now = absl::ToUnixSeconds(absl::Now()); now - last_accept_warning >= 10) {
          spdlog::warn("HTTP accept failed {} times: {}; connections wait in the backlog and are "
                       "retried every 10 ms (this message: at most every 10 s)",
                       accept_failures, std::strerror(errno));
          last_accept_warning = now;
          accept_failures = 0;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      continue;
    }
    if (open_connections_.fetch_add(1) >= options_.max_connections) {
      open_connections_.fetch_sub(1);  // not counted while it is told: it must not keep out the next one
      if (int64_t last = last_limit_warning_.load(), seconds = absl::ToUnixSeconds(absl::Now());
          seconds - last >= 10 && last_limit_warning_.compare_exchange_strong(last, seconds)) {
        spdlog::warn("refusing HTTP connections with 503: {} are open (--max-connections)",
                     options_.max_connections);
      }
      [[maybe_unused]] const ssize_t sent =
          ::send(fd, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_WR);
      if (refused.size() >= kMaxRefusedLingering) {  // the oldest goes now
        ::close(refused.front().fd);
        refused.pop_front();
      }
      refused.push_back({fd, Clock::now() + kLinger});
      continue;
    }
    // Answers go out as whole writes; without this, Nagle and delayed ACKs
    // would hold a keep-alive answer back by ~40 ms.
    const int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    threads.Enqueue([this, fd] { ServeConnection(fd); });
  }
  for (const Refused& r : refused) ::close(r.fd);
  threads.Shutdown();  // every connection ends first
}

void FrontDoorServer::Shutdown() {
  stopping_ = true;
  if (stop_event_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(stop_event_, &one, sizeof(one));
  }
  // Refuses new connections now; the descriptor is closed when the server is
  // destroyed, so that the accept loop never sees its number reused.
  if (const int listener = listener_.load(); listener >= 0) ::shutdown(listener, SHUT_RDWR);
}

void FrontDoorServer::ServeConnection(int fd) {
  ServeRequests(fd);  // counted in open_connections_ by the accept loop
  open_connections_.fetch_sub(1);
}

void FrontDoorServer::ServeRequests(int fd) {
  Connection connection(fd, options_, stop_event_, &abandon_, &buffered_body_bytes_);
  bool first = true;
  while (!stopping_) {
    // Idle until the next request starts: nothing is said when that wait ends.
    if (connection.buffered().empty()) {
      const Clock::time_point idle_deadline =
          After(first ? options_.header_timeout : options_.keep_alive_timeout);
      // The read buffer (64 KiB) is kept for a client that sends its next
      // request soon, and let go by one that idles: freeing it after every
      // request made glibc consolidate its fastbins each time (the block is
      // past its threshold): 2.8% of the server's CPU (perf) with 32 busy
      // keep-alive connections.
      Connection::Wait wait = connection.Fill(std::min(idle_deadline, After(kKeepBufferWhileIdle)),
                                              /*watch_stop=*/true);
      if (wait == Connection::Wait::kTimeout && Clock::now() < idle_deadline) {
        connection.ReleaseBufferIfEmpty();
        wait = connection.WaitForInput(idle_deadline, /*watch_stop=*/true);  // without a buffer
        if (wait == Connection::Wait::kReady) wait = connection.Fill(idle_deadline, /*watch_stop=*/true);
      }
      if (wait != Connection::Wait::kReady) return;
    }
    // Empty lines before a request line are ignored (RFC 9112 section 2.2: a
    // client may send a CRLF after a body).
    if (absl::StartsWith(connection.buffered(), "\r\n")) {
      size_t blank = 0;
      while (connection.buffered().substr(blank, 2) == "\r\n") blank += 2;
      connection.Consume(blank);
      if (connection.buffered().empty()) continue;
    }
    // From its first byte, a request has header_timeout to send its head.
    const Clock::time_point head_deadline = After(options_.header_timeout);
    RequestHeadScanner scanner(options_.limits);
    RequestHeadScanner::Result scanned;
    while ((scanned = scanner.Scan(connection.buffered())) == RequestHeadScanner::Result::kIncomplete) {
      const Connection::Wait wait = connection.Fill(head_deadline, /*watch_stop=*/true);
      if (wait == Connection::Wait::kTimeout) {
        return connection.Refuse(
            408, absl::StrCat("Request headers were not complete within ",
                              absl::FormatDuration(options_.header_timeout)));
      }
      if (wait != Connection::Wait::kReady) return;
    }
    if (scanned == RequestHeadScanner::Result::kRefused) {
      spdlog::debug("refused a request: {} {}", scanner.refusal().status, scanner.refusal().detail);
      return connection.Refuse(scanner.refusal().status, scanner.refusal().detail);
    }
    HttpRequest request;
    ParsedHead parsed;
    if (std::optional<Refusal> refusal =
            ParseRequestHead(connection.buffered().substr(0, scanner.head_size()), &request, &parsed)) {
      spdlog::debug("refused a request: {} {}", refusal->status, refusal->detail);
      return connection.Refuse(refusal->status, refusal->detail);
    }
    connection.Consume(scanner.head_size());
    const BodyFraming& framing = scanner.body();
    // HTTP/1.0 has no chunked framing: one that says it is closed after it
    // (RFC 9112 section 6.1), whatever it asked.
    if (parsed.http_minor == 0 && framing.kind == BodyFraming::Kind::kChunked) parsed.keep_alive = false;
    try {
      if (!connection.ReadBody(framing, &request.body, parsed.expect_continue)) return;
    } catch (const std::bad_alloc&) {
      // Address space or overcommit limits: this request fails, not the server.
      std::string().swap(request.body);
      if (BodyWarningDue()) spdlog::warn("refused a request body with 503: out of memory (this message: at most every 10 s)");
      return connection.Refuse(503, "The server has no memory for this request's body now; retry shortly",
                               "1");
    }
    connection.ReleaseBufferIfGrown();  // a large head's buffer is not kept through the handler
    request.socket = fd;
    request.stop_event = stop_event_;
    if (connection.body_counted()) request.release_body = [&connection] { connection.ReleaseBody(); };
    ConnectionEarlyAnswer early_answer(connection, parsed, stopping_, !connection.buffered().empty());
    request.early_answer = &early_answer;

    const size_t body_size = request.body.size();  // the handler may let it go
    HttpResponse response;
    try {
      handler_(request, response);
    } catch (const std::exception& e) {
      InternalError(response, e.what());
    } catch (...) {
      InternalError(response, "unknown error");
    }
    // An HTTP/1.0 stream ends with the connection.
    const bool keep_alive =
        early_answer.used() ? early_answer.keep_alive()
                            : parsed.keep_alive && !stopping_ &&
                                  !(response.stream && parsed.http_minor == 0);
    bool sent;
    if (early_answer.used()) {
      sent = early_answer.Finish();
    } else if (!response.stream) {
      const std::string head = ResponseHead(response, parsed, keep_alive);
      sent = connection.Send({head, parsed.head_only ? absl::string_view() : response.body});
    } else {
      connection.Send({ResponseHead(response, parsed, keep_alive)});
      if (!parsed.head_only) {
        // Called even if the head could not go: the stream's owner learns
        // from its first write that the client is gone.
        StreamWriter writer(connection, /*chunked=*/parsed.http_minor >= 1);
        response.stream(writer);
        writer.End();
      }
      sent = !connection.failed();
    }
    connection.ReleaseBody();  // if the handler did not
    const uint64_t moved = connection.TakeWritten() + body_size;
    if (options_.heap_trimmer != nullptr) options_.heap_trimmer->Released(moved);
    if (!sent) return;
    if (!keep_alive) return connection.Close();
    first = false;
  }
}

}  // namespace cog
