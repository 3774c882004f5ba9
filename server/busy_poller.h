// Reading the runner's socket without being woken: the reader thread polls the
// socket for a while before it sleeps, where the next frame is likely soon.
//
// On VMs, waking a thread that sleeps on an idle CPU costs tens of µs on both
// sides (the writer's send pays for the wake-up, the sleeper for getting its
// CPU back); a thread that never slept is not woken. A sequential prediction
// wakes the runner (its Predict), the reader (the runner's Done) and the
// client (the reply): polling takes the reader's wake-up off the path.
//
// Where polling pays is narrow, and the rest costs CPU other threads need
// (bench/README.md, "Busy polling the runner's socket"), so a wait polls only
//  * for a prediction that has sent nothing yet (its Done, mostly) while it
//    is the only one running: frames of a stream come while the reader
//    works, and with several predictions running the reader is rarely idle
//    (and its polls took CPU the connections' threads needed: none for
//    BusyPollOptions::overlap_hold after two predictions ran at once);
//  * or, with none running, for the next one's first frame: a client that
//    sends its next request as soon as it has the reply. Not after a
//    prediction that streamed: its client has a stream to finish first.
// How long each kind of wait polls adapts, as Linux's KVM halt polling does: a
// wait that ended within `max` of its start makes the window longer (polling
// would have caught it), a longer one makes it shorter, to nothing for
// predictions, or gaps between them, longer than `max`. Gaps between
// predictions are not polled at first, predictions are. So polling costs CPU
// only where it pays, at most `max` a wait.
//
// A reader that sleeps with nothing running is woken (through an eventfd,
// after the Predict is written: the runner's wake-up goes first) when a
// prediction starts, to poll while the runner works.
#ifndef COG_SERVER_BUSY_POLLER_H_
#define COG_SERVER_BUSY_POLLER_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cog {

// Waits that polled, for GET /metrics: whether the frame came while the
// reader polled, or it slept after all. Shared by successive connections.
struct BusyPollCounts {
  std::atomic<uint64_t> caught{0};
  std::atomic<uint64_t> missed{0};
};

struct BusyPollOptions {
  std::chrono::microseconds max{0};  // zero: no polling, no BusyPoller
  BusyPollCounts* counts = nullptr;  // not owned; may be null
  // Nothing is polled for this long after two predictions ran at once.
  std::chrono::milliseconds overlap_hold{100};
};

class BusyPoller {
 public:
  // Reads `fd` (a stream socket, not owned), polling for up to `options.max`
  // a wait.
  BusyPoller(int fd, BusyPollOptions options);
  ~BusyPoller();
  BusyPoller(const BusyPoller&) = delete;
  BusyPoller& operator=(const BusyPoller&) = delete;

  // A request whose replies come on fd is about to be sent: call before
  // sending it (its reply may be read before the send returns), Wake() after.
  void Expect();
  // Wakes a reader that sleeps with nothing awaited, so that it polls.
  void Wake();
  // A frame that is not a request's last came: until the next Expect() or
  // Fulfilled(), waits do not poll (the rest of a stream).
  void Progress() { streaming_.store(true, std::memory_order_relaxed); }
  // A request's last reply came (or it will never be sent).
  void Fulfilled();

  // As read(fd, out, size): at least a byte, 0 at the end of the stream, -1
  // with errno. Polls first where the header says. The reader thread only.
  ssize_t Read(char* out, size_t size);

  // How long the next wait polls with a request awaited, and with none (the
  // reader thread only; for tests).
  std::chrono::microseconds busy_window() const { return busy_window_; }
  std::chrono::microseconds idle_window() const { return idle_window_; }

 private:
  // Polls fd for up to `window`: what recv() said, or -1 with errno EAGAIN.
  ssize_t Poll(char* out, size_t size, std::chrono::microseconds window);
  // Lengthens or shortens `window` after a wait of `waited` that slept.
  void Adapt(std::chrono::microseconds* window, std::chrono::steady_clock::duration waited) const;

  const int fd_;
  const std::chrono::microseconds max_;
  BusyPollCounts* const counts_;
  const std::chrono::milliseconds overlap_hold_;
  int wake_fd_ = -1;  // an eventfd; -1 if none could be made (never woken)
  std::atomic<int> awaited_{0};
  std::atomic<bool> streaming_{false};
  // The last prediction to end streamed: the gap after it is not polled.
  std::atomic<bool> streamed_{false};
  // Nothing is polled until then (a steady_clock time since its epoch):
  // predictions overlapped.
  std::atomic<std::chrono::steady_clock::rep> overlapped_until_{0};
  // Set while the reader sleeps with nothing awaited (and only then).
  std::atomic<bool> sleeping_{false};
  std::chrono::microseconds busy_window_;
  std::chrono::microseconds idle_window_;
  bool can_poll_ = true;  // recv() works on fd (not so on a pipe)
};

}  // namespace cog

#endif  // COG_SERVER_BUSY_POLLER_H_
