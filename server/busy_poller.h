// Reading the runner's socket without being woken: while predictions are
// awaited, the reader thread polls the socket for a while before it sleeps.
//
// On VMs, waking a thread that sleeps on an idle CPU costs tens of µs on both
// sides (the writer's send pays for the wake-up, the sleeper for getting its
// CPU back); a thread that never slept is not woken. A sequential prediction
// wakes the runner (its Predict), the reader (the Done) and the HTTP or gRPC
// thread (the reply): the reader's wake-up is the one this takes off the path.
//
// How long a wait polls adapts, as Linux's KVM halt polling does: a wait that
// ended within `max` after it slept makes the window longer (polling would have
// caught it), one that lasted longer than `max` makes it shorter, to nothing
// for predictions or token streams slower than `max`. So polling costs CPU
// only where it pays, at most `max` a wait.
//
// A reader with nothing awaited sleeps, and is woken (through an eventfd,
// after the Predict is written: the runner's wake-up goes first) when a
// prediction starts, to poll while the runner works.
#ifndef COG_SERVER_BUSY_POLLER_H_
#define COG_SERVER_BUSY_POLLER_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>

namespace cog {

class BusyPoller {
 public:
  // Reads `fd` (a stream socket, not owned), polling for up to `max` a wait.
  BusyPoller(int fd, std::chrono::microseconds max);
  ~BusyPoller();
  BusyPoller(const BusyPoller&) = delete;
  BusyPoller& operator=(const BusyPoller&) = delete;

  // A request whose replies come on fd is about to be sent: call before
  // sending it (its reply may be read before the send returns), Wake() after.
  void Expect() { awaited_.fetch_add(1, std::memory_order_seq_cst); }
  // Wakes a reader that sleeps with nothing awaited, so that it polls.
  void Wake();
  // A request's last reply came (or it will never be sent).
  void Fulfilled();

  // As read(fd, out, size): at least a byte, 0 at the end of the stream, -1
  // with errno. Polls first while requests are awaited. The reader thread only.
  ssize_t Read(char* out, size_t size);

  // How long the next wait polls (the reader thread only; for tests).
  std::chrono::microseconds window() const { return window_; }

 private:
  // Polls fd for up to window_: what recv() said, or -1 with errno EAGAIN.
  ssize_t Poll(char* out, size_t size);
  // Lengthens or shortens window_ after a wait of `waited` that slept.
  void Adapt(std::chrono::steady_clock::duration waited);

  const int fd_;
  const std::chrono::microseconds max_;
  int wake_fd_ = -1;  // an eventfd; -1 if none could be made (never woken)
  std::atomic<int> awaited_{0};
  // Set while the reader sleeps with nothing awaited (and only then).
  std::atomic<bool> sleeping_{false};
  std::chrono::microseconds window_;
  bool can_poll_ = true;  // recv() works on fd (not so on a pipe)
};

}  // namespace cog

#endif  // COG_SERVER_BUSY_POLLER_H_
