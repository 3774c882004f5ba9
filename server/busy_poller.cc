#include "server/busy_poller.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace cog {

BusyPoller::BusyPoller(int fd, BusyPollOptions options)
    : fd_(fd),
      max_(options.max),
      counts_(options.counts),
      overlap_hold_(options.overlap_hold),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      busy_window_(options.max),
      idle_window_(0) {}

BusyPoller::~BusyPoller() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void BusyPoller::Expect() {
  streaming_.store(false, std::memory_order_relaxed);
  if (awaited_.fetch_add(1, std::memory_order_seq_cst) > 0) {
    overlapped_until_.store(
        (std::chrono::steady_clock::now() + overlap_hold_).time_since_epoch().count(),
        std::memory_order_relaxed);
  }
}

void BusyPoller::Wake() {
  // Pairs with Read(): it sets sleeping_ then looks at awaited_, Expect() set
  // awaited_ before this looks at sleeping_; sequentially consistent, at least
  // one of the two sees the other's store, so a reader never sleeps through a
  // prediction (it would only be woken by the reply, as without polling).
  if (wake_fd_ >= 0 && sleeping_.load(std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    // Full only after 2^64-1 wake-ups nobody read: nothing to do then.
    (void)!::write(wake_fd_, &one, sizeof one);
  }
}

void BusyPoller::Fulfilled() {
  streamed_.store(streaming_.exchange(false, std::memory_order_relaxed), std::memory_order_relaxed);
  // Never below zero: a reply for no request of ours.
  int awaited = awaited_.load(std::memory_order_relaxed);
  while (awaited > 0 &&
         !awaited_.compare_exchange_weak(awaited, awaited - 1, std::memory_order_seq_cst)) {
  }
}

ssize_t BusyPoller::Read(char* out, size_t size) {
  while (true) {
    const int awaited = awaited_.load(std::memory_order_seq_cst);
    const bool idle = awaited == 0;
    std::chrono::microseconds* window = idle ? &idle_window_ : &busy_window_;
    // Whether this wait is one polling may pay for (see the header).
    const auto start = std::chrono::steady_clock::now();
    const bool adapts =
        (idle ? !streamed_.load(std::memory_order_relaxed)
              : awaited == 1 && !streaming_.load(std::memory_order_relaxed)) &&
        start.time_since_epoch().count() >= overlapped_until_.load(std::memory_order_relaxed);
    if (adapts && window->count() > 0 && can_poll_) {
      const ssize_t n = Poll(out, size, *window);
      if (n >= 0 || errno != EAGAIN) {
        if (n >= 0 && counts_ != nullptr) counts_->caught.fetch_add(1, std::memory_order_relaxed);
        return n;
      }
      if (can_poll_ && counts_ != nullptr) counts_->missed.fetch_add(1, std::memory_order_relaxed);
    }
    if (!idle) {
      // Only a reader with nothing awaited is woken by Wake(): this one sleeps
      // in read() alone, as without polling (one system call, not two).
      const ssize_t n = ::read(fd_, out, size);
      if (adapts && n >= 0) Adapt(window, std::chrono::steady_clock::now() - start);
      return n;
    }
    sleeping_.store(true, std::memory_order_seq_cst);
    if (awaited_.load(std::memory_order_seq_cst) > 0) {  // Expect()ed meanwhile: poll
      sleeping_.store(false, std::memory_order_relaxed);
      // The prediction came but not its frame: the idle poll caught nothing.
      if (adapts) Adapt(window, std::chrono::steady_clock::duration::max());
      continue;
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, wake_fd_ >= 0 ? 2 : 1, -1);
    sleeping_.store(false, std::memory_order_relaxed);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (adapts) Adapt(window, std::chrono::steady_clock::now() - start);
    if (wake_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    // Data, the end of the stream or an error: read() tells. Else woken
    // because a prediction started: poll for its frames.
    if (fds[0].revents != 0) return ::read(fd_, out, size);
  }
}

ssize_t BusyPoller::Poll(char* out, size_t size, std::chrono::microseconds window) {
  const auto until = std::chrono::steady_clock::now() + window;
  while (true) {
    const ssize_t n = ::recv(fd_, out, size, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == ENOTSOCK) {  // recv() cannot poll a pipe, say; read() reads it
      can_poll_ = false;
      errno = EAGAIN;
      return -1;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= until) {
      errno = EAGAIN;
      return -1;
    }
  }
}

void BusyPoller::Adapt(std::chrono::microseconds* window,
                       std::chrono::steady_clock::duration waited) const {
  const std::chrono::microseconds least = std::max(max_ / 8, std::chrono::microseconds(1));
  if (waited <= *window) return;
  if (waited <= max_) {
    *window = std::min(max_, std::max(*window * 2, least));
  } else {
    *window /= 2;
    if (*window < least) *window = std::chrono::microseconds(0);
  }
}

}  // namespace cog
