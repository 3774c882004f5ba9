#include "gateway/front_door.h"

#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
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
// Threads that have served no connection for this long end, down to a few.
constexpr absl::Duration kIdleThreadLifetime = absl::Seconds(30);
constexpr size_t kResidentThreads = 8;
// Threads beyond max_connections: a connection over the limit needs one,
// briefly, to be told 503.
constexpr int kSpareThreads = 16;

Clock::time_point After(absl::Duration duration) {
  return Clock::now() + absl::ToChronoNanoseconds(duration);
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
// Thread-safe. cpp-httplib owns it (new_task_queue), calls enqueue() from its
// accept loop and shutdown() once when it stops listening.
class ConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t max_threads) : max_threads_(max_threads) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> job) override {
    std::vector<std::thread> ended;
    {
      absl::MutexLock lock(&mu_);
      jobs_.push_back(std::move(job));
      if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
        auto self = threads_.emplace(threads_.end());
        // The new thread waits for mu_ before it looks at `self`.
        *self = std::thread([this, self] { Work(self); });
      }
      ended.swap(ended_);
    }
    for (std::thread& thread : ended) thread.join();
  }

  // Runs what is queued, then joins every thread.
  void shutdown() override {
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
        if (shutdown_) break;  // shutdown() joins this thread
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
};

void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage address{};
  socklen_t size = sizeof(address);
  const int got = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&address), &size)
                       : getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  if (got != 0) return;
  // As cpp-httplib reports them: FindClientSocket (rest_gateway.cc) compares.
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&address), size, host, sizeof(host), service,
                  sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return;
  }
  ip = host;
  port = std::atoi(service);
}

// One client connection: its socket, the bytes read from it and not yet
// used, and, while a request is being served, the view of it cpp-httplib
// reads: the head as the scanner checked it, then exactly the body, decoded
// if it was chunked, then end of stream. Bytes past the body stay buffered
// for the next request.
//
// Used by the one thread serving the connection; closes the socket when
// destroyed.
class Connection final : public httplib::Stream {
 public:
  enum class Wait { kReady, kTimeout, kStopped, kClosed };

  Connection(int fd, const FrontDoorOptions& options, int stop_event)
      : fd_(fd), options_(options), stop_event_(stop_event) {}
  ~Connection() override { ::close(fd_); }

  absl::string_view buffered() const {
    return absl::string_view(buffer_.get() + begin_, end_ - begin_);
  }

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

  // Serving a request whose head the scanner found complete at the front of
  // the buffer.
  void BeginRequest(const RequestHeadScanner& head) {
    framing_ = head.body();
    body_left_ = framing_.length;
    decoder_ = ChunkedBodyDecoder();
    head_left_ = head.head_size();
    if (head.transfer_encoding_size() > 0) {
      // The body reaches httplib decoded, so it must not read it as chunked.
      const size_t line = begin_ + head.transfer_encoding_offset();
      const size_t size = head.transfer_encoding_size();
      std::memmove(buffer_.get() + line, buffer_.get() + line + size, end_ - line - size);
      end_ -= size;
      head_left_ -= head.transfer_encoding_size();
    }
  }

  // Before httplib reads a body of known length: room for all of it and a
  // margin, so that it is not copied again and again as it grows, and so that
  // the JSON parser can read it in place (simdjson reads up to 64 bytes past
  // the end). Capped: the bytes have not arrived yet.
  void ReserveBody(httplib::Request& request) const {
    if (framing_.kind != BodyFraming::Kind::kLength || framing_.length == 0) return;
    request.body.reserve(static_cast<size_t>(std::min<uint64_t>(framing_.length, kMaxReserve)) +
                         kJsonPadding);
  }

  // After httplib has answered: whether the connection can carry another
  // request (its answer went out whole, and its body was read to the end, so
  // the next bytes are the next request's).
  bool EndRequest() {
    if (answered_ || write_failed_ || head_left_ > 0) return false;
    switch (framing_.kind) {
      case BodyFraming::Kind::kNone:
        break;
      case BodyFraming::Kind::kLength:
        if (body_left_ > 0) return false;
        break;
      case BodyFraming::Kind::kChunked: {
        size_t consumed = 0;
        if (decoder_.Advance(buffered(), &consumed) != ChunkedBodyDecoder::State::kEnd) return false;
        begin_ += consumed;
        break;
      }
    }
    framing_ = BodyFraming();
    // A connection waiting for its next request holds no buffer.
    if (begin_ == end_) {
      buffer_.reset();
      capacity_ = begin_ = end_ = 0;
    }
    return true;
  }

  // Answers with `status` and {"detail": ...} and closes: the request is not
  // served, and the connection is not used again.
  void Refuse(int status, absl::string_view detail) {
    held_.clear();  // whatever httplib began to answer is not sent
    if (!answered_ && !write_failed_) {
      std::string body = DumpJson(Json{{"detail", std::string(detail)}});
      std::string response =
          absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status),
                       "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                       "\r\nConnection: close\r\n", status == 503 ? "Retry-After: 1\r\n" : "",
                       "\r\n", body);
      WriteAll(response.data(), response.size());
    }
    answered_ = true;
    Linger();
  }

  // ---- httplib::Stream, as process_request() uses it ----

  bool is_readable() const override {
    return head_left_ > 0 || !buffered().empty() ||
           WaitForInput(After(options_.read_timeout), false) == Wait::kReady;
  }

  bool is_writable() const override {
    if (answered_ || write_failed_) return false;
    // A streamed body is about to wait for its first piece: the head goes now.
    if (!held_.empty() && !const_cast<Connection*>(this)->FlushHeld()) return false;
    pollfd out{fd_, POLLOUT, 0};
    if (::poll(&out, 1, MillisecondsUntil(After(options_.write_timeout))) <= 0 ||
        (out.revents & (POLLERR | POLLHUP)) != 0) {
      return false;
    }
    char byte;
    return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 0;  // 0: the client closed
  }

  ssize_t read(char* ptr, size_t size) override {
    if (answered_) return -1;
    if (head_left_ > 0) return Take(ptr, std::min(size, head_left_), &head_left_);
    switch (framing_.kind) {
      case BodyFraming::Kind::kNone:
        return 0;
      case BodyFraming::Kind::kLength:
        if (body_left_ == 0) return 0;
        if (!FillIfEmpty()) return -1;
        return Take(ptr, std::min<uint64_t>(size, body_left_), &body_left_);
      case BodyFraming::Kind::kChunked:
        return ReadChunked(ptr, size);
    }
    return -1;
  }

  ssize_t write(const char* ptr, size_t size) override {
    // Once refused, httplib's own fallback answer is dropped: the client has
    // its answer already.
    if (answered_) return static_cast<ssize_t>(size);
    if (write_failed_) return -1;
    // httplib writes a response's head, then its body: the head waits for the
    // body so that both leave in one send (one syscall, one packet).
    if (held_.empty() && size <= kMaxHeldHead && size >= 4 && std::memcmp(ptr + size - 4, "\r\n\r\n", 4) == 0) {
      held_.assign(ptr, size);
      return static_cast<ssize_t>(size);
    }
    written_ += size;
    return WriteAll(ptr, size) ? static_cast<ssize_t>(size) : -1;
  }

  // Bytes of the response written since the last call.
  size_t TakeWritten() { return std::exchange(written_, 0); }

  // Sends a held response head (end of a request without a body, or before a
  // streamed body waits for its first piece).
  bool FlushHeld() {
    if (held_.empty()) return !write_failed_;
    std::string head = std::move(held_);
    held_.clear();
    return WriteAll(head.data(), head.size());
  }

  // Asked for every request; a connection's addresses never change, so the
  // system is asked once per connection.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    if (!remote_known_) {
      AddressOf(fd_, /*peer=*/true, remote_ip_, remote_port_);
      remote_known_ = true;
    }
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (!local_known_) {
      AddressOf(fd_, /*peer=*/false, local_ip_, local_port_);
      local_known_ = true;
    }
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return fd_; }

 private:
  static constexpr size_t kMaxHeldHead = 16 * 1024;
  static constexpr uint64_t kMaxReserve = 64 << 20;
  std::string held_;  // a response head waiting for its body (write())
  size_t written_ = 0;
  mutable bool remote_known_ = false;
  mutable bool local_known_ = false;
  mutable std::string remote_ip_;
  mutable std::string local_ip_;
  mutable int remote_port_ = 0;
  mutable int local_port_ = 0;

  // Copies up to `size` buffered bytes to `ptr`, counting them off `*left`.
  template <typename Count>
  ssize_t Take(char* ptr, Count size, Count* left) {
    const size_t n = std::min<size_t>(static_cast<size_t>(size), buffered().size());
    std::memcpy(ptr, buffer_.get() + begin_, n);
    begin_ += n;
    *left -= static_cast<Count>(n);
    return static_cast<ssize_t>(n);
  }

  bool FillIfEmpty() {
    if (!buffered().empty()) return true;
    return FillWithinReadTimeout();
  }

  bool FillWithinReadTimeout() {
    return Fill(After(options_.read_timeout), /*watch_stop=*/false) == Wait::kReady;
  }

  ssize_t ReadChunked(char* ptr, size_t size) {
    while (true) {
      size_t consumed = 0;
      const ChunkedBodyDecoder::State state = decoder_.Advance(buffered(), &consumed);
      begin_ += consumed;
      switch (state) {
        case ChunkedBodyDecoder::State::kEnd:
          return 0;
        case ChunkedBodyDecoder::State::kMalformed:
          Refuse(400, decoder_.error());
          return -1;
        case ChunkedBodyDecoder::State::kNeedMore:
          if (!FillWithinReadTimeout()) return -1;
          continue;
        case ChunkedBodyDecoder::State::kData: {
          // Refused as soon as the chunk sizes say the body will be too large,
          // before its data is read.
          if (decoder_.announced() > options_.limits.max_body_bytes) {
            Refuse(413, BodyTooLargeDetail(options_.limits.max_body_bytes));
            return -1;
          }
          if (!FillIfEmpty()) return -1;
          uint64_t left = decoder_.data_remaining();
          const ssize_t n = Take(ptr, std::min<uint64_t>(size, left), &left);
          decoder_.TakeData(static_cast<size_t>(n));
          return n;
        }
      }
    }
  }

  // Sends the held head, if any, then `data`: in one sendmsg() when the
  // socket takes it all.
  bool WriteAll(const char* data, size_t size) {
    const Clock::time_point deadline = After(options_.write_timeout);
    std::string head = std::move(held_);
    held_.clear();
    size_t head_left = head.size();
    while (head_left + size > 0) {
      iovec parts[2];
      int count = 0;
      if (head_left > 0) parts[count++] = {head.data() + head.size() - head_left, head_left};
      if (size > 0) parts[count++] = {const_cast<char*>(data), size};
      msghdr message{};
      message.msg_iov = parts;
      message.msg_iovlen = static_cast<size_t>(count);
      ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        const size_t from_head = std::min(head_left, static_cast<size_t>(n));
        head_left -= from_head;
        n -= static_cast<ssize_t>(from_head);
        data += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd out{fd_, POLLOUT, 0};
        if (::poll(&out, 1, MillisecondsUntil(deadline)) > 0) continue;
      }
      write_failed_ = true;
      return false;
    }
    return true;
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
  // [begin_, end_): read, not used yet. Not zero-filled: only what recv()
  // writes is ever touched.
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  // The request being served.
  size_t head_left_ = 0;
  BodyFraming framing_;
  uint64_t body_left_ = 0;
  ChunkedBodyDecoder decoder_;
  bool answered_ = false;  // refused: nothing more goes out
  bool write_failed_ = false;
};

}  // namespace

FrontDoorServer::FrontDoorServer(FrontDoorOptions options)
    : options_(std::move(options)), stop_event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  const size_t max_threads = static_cast<size_t>(std::max(1, options_.max_connections)) + kSpareThreads;
  new_task_queue = [max_threads] { return new ConnectionThreads(max_threads); };
  // What httplib writes in its Keep-Alive header; the front door enforces it.
  set_keep_alive_timeout(static_cast<time_t>(
      absl::ToInt64Seconds(absl::Ceil(options_.keep_alive_timeout, absl::Seconds(1)))));
  set_keep_alive_max_count(100000);  // advertised only: the front door closes no busy connection
  trimmer_ = std::thread([this] { TrimWhenIdle(); });
  set_payload_max_length(options_.limits.max_body_bytes);
  // httplib's default socket options add SO_REUSEPORT, with which a second
  // server binds the same port and silently takes part of its connections.
  // SO_REUSEADDR alone still lets a restarted server bind while connections
  // of the old one linger in TIME_WAIT.
  set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

FrontDoorServer::~FrontDoorServer() {
  {
    absl::MutexLock lock(&trim_mu_);
    trim_stop_ = true;
  }
  if (trimmer_.joinable()) trimmer_.join();
  Shutdown();
  if (stop_event_ >= 0) ::close(stop_event_);
}

absl::StatusOr<int> FrontDoorServer::Listen(const std::string& host, int port) {
  errno = 0;
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    const int error = errno;
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for HTTP on ", host, ":", port, ": ",
        error == EADDRINUSE ? "the port is in use by another process"
                            : (error != 0 ? std::strerror(error) : "cannot bind")));
  }
  // httplib listens with a backlog of 5 (compiled in): a burst of connections
  // overflows it, and the overflow waits for the client's SYN retransmit (a
  // second or more). listen() on a listening socket only sets its backlog.
  ::listen(svr_sock_, SOMAXCONN);
  return bound;
}

void FrontDoorServer::Shutdown() {
  stopping_ = true;
  if (stop_event_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(stop_event_, &one, sizeof(one));
  }
  // As httplib's stop(), which acts only once its accept loop has started:
  // stopping before that would leave the loop running. Its loop ends when the
  // socket is gone, started or not.
  const socket_t sock = svr_sock_.exchange(INVALID_SOCKET);
  if (sock != INVALID_SOCKET) {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
}

bool FrontDoorServer::process_and_close_socket(socket_t sock) {
  if (open_connections_.fetch_add(1) >= options_.max_connections) {
    // Not counted while it is told: it must not keep out the next one.
    open_connections_.fetch_sub(1);
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    if (int64_t last = last_limit_warning_.load();
        now - last >= 10 && last_limit_warning_.compare_exchange_strong(last, now)) {
      spdlog::warn("refusing HTTP connections with 503: {} are open (--max-connections)",
                   options_.max_connections);
    }
    Connection(sock, options_, stop_event_)
        .Refuse(503, absl::StrCat("The server has ", options_.max_connections,
                                  " connections open, its limit (--max-connections); "
                                  "try again later"));
    return true;
  }
  Serve(sock);
  open_connections_.fetch_sub(1);
  return true;
}

void FrontDoorServer::TrimWhenIdle() {
  absl::MutexLock lock(&trim_mu_);
  while (!trim_stop_) {
    if (!large_transfer_end_.has_value()) {
      auto wanted = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return trim_stop_ || large_transfer_end_.has_value();
      };
      trim_mu_.Await(absl::Condition(&wanted));
      continue;
    }
    const absl::Time due = *large_transfer_end_ + kTrimDelay;
    if (absl::Now() < due) {
      trim_mu_.AwaitWithDeadline(absl::Condition(&trim_stop_), due);
      continue;  // a later large transfer may have moved it
    }
    large_transfer_end_.reset();
    trim_mu_.Unlock();
    malloc_trim(0);
    trim_mu_.Lock();
  }
}

void FrontDoorServer::Serve(int fd) {
  Connection connection(fd, options_, stop_event_);
  bool first = true;
  while (!stopping_) {
    // Idle until the next request starts: nothing is said when that wait ends.
    if (connection.buffered().empty()) {
      const Clock::time_point idle_deadline =
          After(first ? options_.header_timeout : options_.keep_alive_timeout);
      if (connection.Fill(idle_deadline, /*watch_stop=*/true) != Connection::Wait::kReady) return;
    }
    // From its first byte, a request has header_timeout to send its head.
    const Clock::time_point head_deadline = After(options_.header_timeout);
    RequestHeadScanner head(options_.limits);
    RequestHeadScanner::Result scanned;
    while ((scanned = head.Scan(connection.buffered())) == RequestHeadScanner::Result::kIncomplete) {
      const Connection::Wait wait = connection.Fill(head_deadline, /*watch_stop=*/true);
      if (wait == Connection::Wait::kTimeout) {
        return connection.Refuse(
            408, absl::StrCat("Request headers were not complete within ",
                              absl::FormatDuration(options_.header_timeout)));
      }
      if (wait != Connection::Wait::kReady) return;
    }
    if (scanned == RequestHeadScanner::Result::kRefused) {
      spdlog::debug("refused a request: {} {}", head.refusal().status, head.refusal().detail);
      return connection.Refuse(head.refusal().status, head.refusal().detail);
    }
    connection.BeginRequest(head);
    bool connection_closed = false;
    const bool written =
        process_request(connection, /*close_connection=*/stopping_.load(), connection_closed,
                        [&connection](httplib::Request& request) { connection.ReserveBody(request); });
    if (connection.TakeWritten() + head.body().length >= kTrimAfterBytes) {
      absl::MutexLock lock(&trim_mu_);
      large_transfer_end_ = absl::Now();
    }
    if (!connection.FlushHeld() || !written || connection_closed || !connection.EndRequest()) return;
    first = false;
  }
}

}  // namespace cog
