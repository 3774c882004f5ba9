#include "server/busy_poller.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace cog {

BusyPoller::BusyPoller(int fd, std::chrono::microseconds max)
    : fd_(fd), max_(max), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), window_(max) {}

BusyPoller::~BusyPoller() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
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
  // Never below zero: a reply for no request of ours.
  int awaited = awaited_.load(std::memory_order_relaxed);
  while (awaited > 0 &&
         !awaited_.compare_exchange_weak(awaited, awaited - 1, std::memory_order_seq_cst)) {
  }
}

ssize_t BusyPoller::Read(char* out, size_t size) {
  while (true) {
    const bool awaited = awaited_.load(std::memory_order_seq_cst) > 0;
    const auto start = std::chrono::steady_clock::now();
    if (awaited && window_.count() > 0 && can_poll_) {
      const ssize_t n = Poll(out, size);
      if (n >= 0 || errno != EAGAIN) return n;
    }
    if (!awaited) {
      sleeping_.store(true, std::memory_order_seq_cst);
      if (awaited_.load(std::memory_order_seq_cst) > 0) {  // Expect()ed meanwhile: poll
        sleeping_.store(false, std::memory_order_relaxed);
        continue;
      }
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, wake_fd_ >= 0 ? 2 : 1, -1);
    sleeping_.store(false, std::memory_order_relaxed);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (wake_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    if (fds[0].revents != 0) {  // data, the end of the stream or an error: read() tells
      const ssize_t n = ::read(fd_, out, size);
      if (awaited) Adapt(std::chrono::steady_clock::now() - start);
      return n;
    }
    // Woken because a prediction started: poll for its frames.
  }
}

ssize_t BusyPoller::Poll(char* out, size_t size) {
  const auto until = std::chrono::steady_clock::now() + window_;
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

void BusyPoller::Adapt(std::chrono::steady_clock::duration waited) {
  const std::chrono::microseconds least = std::max(max_ / 8, std::chrono::microseconds(1));
  if (waited <= window_) return;
  if (waited <= max_) {
    window_ = std::min(max_, std::max(window_ * 2, least));
  } else {
    window_ /= 2;
    if (window_ < least) window_ = std::chrono::microseconds(0);
  }
}

}  // namespace cog
