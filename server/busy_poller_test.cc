#include "server/busy_poller.h"

#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace cog {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  ~SocketPair() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int reader() const { return fds_[0]; }
  void Write(const std::string& bytes) {
    ASSERT_EQ(::write(fds_[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void CloseWriter() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

// CPU time `thread` has used so far.
std::chrono::nanoseconds ThreadCpu(std::thread& thread) {
  clockid_t clock;
  EXPECT_EQ(pthread_getcpuclockid(thread.native_handle(), &clock), 0);
  timespec spent{};
  EXPECT_EQ(clock_gettime(clock, &spent), 0);
  return std::chrono::seconds(spent.tv_sec) + std::chrono::nanoseconds(spent.tv_nsec);
}

// Waits (30 s at most) until `thread` has used `cpu`; false if it never did.
bool UsesCpu(std::thread& thread, std::chrono::nanoseconds cpu) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ThreadCpu(thread) < cpu) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// What one Read() returned: the bytes, or "<end>", or "<error>".
std::string ReadOnce(BusyPoller& poller) {
  char buffer[64];
  const ssize_t n = poller.Read(buffer, sizeof buffer);
  if (n < 0) return "<error>";
  if (n == 0) return "<end>";
  return std::string(buffer, static_cast<size_t>(n));
}

TEST(BusyPollerTest, ReadsWhatComesAndTheEndWhetherAwaitedOrNot) {
  SocketPair pair;
  BusyPollCounts counts;
  BusyPoller poller(pair.reader(), {microseconds(200), &counts});
  pair.Write("idle");
  EXPECT_EQ(ReadOnce(poller), "idle");
  poller.Expect();
  std::string got;
  std::thread reader([&] { got = ReadOnce(poller); });
  // Written once its poll has run out: it sleeps, then reads.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (counts.missed.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(counts.missed.load(), 1u);
  pair.Write("awaited");
  reader.join();
  EXPECT_EQ(got, "awaited");
  poller.Fulfilled();
  poller.Fulfilled();  // one more than expected: no harm
  pair.CloseWriter();
  EXPECT_EQ(ReadOnce(poller), "<end>");
}

TEST(BusyPollerTest, AReaderAwaitingAReplyPollsInsteadOfSleeping) {
  // Polling shows as CPU used while nothing comes (a sleeper uses none).
  SocketPair pair;
  BusyPollCounts counts;
  BusyPoller poller(pair.reader(), {std::chrono::seconds(60), &counts});
  poller.Expect();
  std::string got;
  std::thread reader([&] { got = ReadOnce(poller); });
  EXPECT_TRUE(UsesCpu(reader, milliseconds(20))) << "the reader never polled";
  pair.Write("reply");
  reader.join();
  EXPECT_EQ(got, "reply");
  EXPECT_EQ(counts.caught.load(), 1u);
  EXPECT_EQ(counts.missed.load(), 0u);
}

TEST(BusyPollerTest, AReaderWithNothingAwaitedSleepsUntilWokenThenPolls) {
  SocketPair pair;
  BusyPoller poller(pair.reader(), {std::chrono::seconds(60)});
  std::string got;
  std::thread reader([&] { got = ReadOnce(poller); });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LT(ThreadCpu(reader), milliseconds(150)) << "polled with nothing awaited";
  poller.Expect();
  poller.Wake();
  EXPECT_TRUE(UsesCpu(reader, milliseconds(20))) << "not woken to poll";
  pair.Write("reply");
  reader.join();
  EXPECT_EQ(got, "reply");
}

TEST(BusyPollerTest, AWaitPollsNoLongerThanItsBound) {
  SocketPair pair;
  BusyPollCounts counts;
  BusyPoller poller(pair.reader(), {microseconds(1000), &counts});
  poller.Expect();
  std::string got;
  std::thread reader([&] { got = ReadOnce(poller); });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LT(ThreadCpu(reader), milliseconds(150)) << "polled past 1 ms";
  pair.Write("late");
  reader.join();
  EXPECT_EQ(got, "late");
  EXPECT_EQ(counts.caught.load(), 0u);
  EXPECT_EQ(counts.missed.load(), 1u);
}

TEST(BusyPollerTest, WaitsLongerThanTheBoundStopPollingAndShortOnesBringItBack) {
  // Replies 50 ms apart with a 10 ms bound: polling would never catch one,
  // so after a few waits the reader does not poll at all.
  SocketPair pair;
  BusyPoller poller(pair.reader(), {microseconds(10000)});
  EXPECT_EQ(poller.busy_window(), microseconds(10000));
  poller.Expect();
  for (int i = 0; i < 6; ++i) {
    std::thread writer([&] {
      std::this_thread::sleep_for(milliseconds(50));
      pair.Write("x");
    });
    EXPECT_EQ(ReadOnce(poller), "x");
    writer.join();
  }
  EXPECT_EQ(poller.busy_window(), microseconds(0));
  // A reply that came soon after the reader slept: polling would have caught
  // it, so the next wait polls again.
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(1));
    pair.Write("y");
  });
  EXPECT_EQ(ReadOnce(poller), "y");
  writer.join();
  EXPECT_GT(poller.busy_window(), microseconds(0));
}

TEST(BusyPollerTest, TheRestOfAStreamAndConcurrentPredictionsAreNotPolled) {
  // A prediction that sent a frame (Progress) streams: the reader is rarely
  // idle between its frames. Nor with two predictions running.
  for (const bool streaming : {true, false}) {
    SocketPair pair;
    // No hold after an overlap: two still running is what must keep the
    // reader from polling.
    BusyPoller poller(pair.reader(), {std::chrono::seconds(60), nullptr, milliseconds(0)});
    poller.Expect();
    if (streaming) {
      poller.Progress();
    } else {
      poller.Expect();
    }
    std::string got;
    std::thread reader([&] { got = ReadOnce(poller); });
    std::this_thread::sleep_for(milliseconds(300));
    EXPECT_LT(ThreadCpu(reader), milliseconds(150)) << (streaming ? "streaming" : "two running");
    pair.Write("z");
    reader.join();
    EXPECT_EQ(got, "z");
  }
}

TEST(BusyPollerTest, AfterPredictionsOverlappedALonePredictionIsNotPolledForAWhile) {
  // Concurrent load: the reader's polls would take CPU the connections need.
  SocketPair pair;
  BusyPoller poller(pair.reader(), {std::chrono::seconds(60)});
  poller.Expect();
  poller.Expect();
  poller.Fulfilled();  // one left running, a moment after two ran at once
  std::string got;
  std::thread reader([&] { got = ReadOnce(poller); });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LT(ThreadCpu(reader), milliseconds(150)) << "polled right after an overlap";
  pair.Write("z");
  reader.join();
  EXPECT_EQ(got, "z");
}

TEST(BusyPollerTest, GapsBetweenPredictionsArePolledOnceTheyAreSeenShort) {
  // A client that sends its next request as soon as it has the reply: the
  // reader learns to poll for the next prediction between them.
  SocketPair pair;
  BusyPoller poller(pair.reader(), {microseconds(10000)});
  EXPECT_EQ(poller.idle_window(), microseconds(0));
  for (int i = 0; i < 3; ++i) {
    std::thread client([&] {
      std::this_thread::sleep_for(milliseconds(1));
      poller.Expect();
      pair.Write("r");
      poller.Wake();
    });
    EXPECT_EQ(ReadOnce(poller), "r");
    poller.Fulfilled();
    client.join();
  }
  EXPECT_GT(poller.idle_window(), microseconds(0));
}

TEST(BusyPollerTest, TheGapAfterAStreamingPredictionIsNotPolled) {
  // Its client has a stream to finish before it sends the next request.
  for (const bool streamed : {true, false}) {
    SocketPair pair;
    BusyPoller poller(pair.reader(), {std::chrono::seconds(60)});
    std::thread client([&] {
      std::this_thread::sleep_for(milliseconds(1));
      poller.Expect();
      pair.Write("first");
      poller.Wake();
    });
    EXPECT_EQ(ReadOnce(poller), "first");
    client.join();
    ASSERT_GT(poller.idle_window(), microseconds(0)) << "a short gap: gaps are polled";
    if (streamed) poller.Progress();  // "first" was an item, more followed
    pair.Write("done");
    EXPECT_EQ(ReadOnce(poller), "done");
    poller.Fulfilled();
    std::string got;
    std::thread reader([&] { got = ReadOnce(poller); });
    if (streamed) {
      std::this_thread::sleep_for(milliseconds(300));
      EXPECT_LT(ThreadCpu(reader), milliseconds(150)) << "polled the gap after a stream";
    } else {
      EXPECT_TRUE(UsesCpu(reader, milliseconds(20))) << "did not poll the gap";
    }
    pair.Write("next");
    reader.join();
    EXPECT_EQ(got, "next");
  }
}

TEST(BusyPollerTest, ManyRequestsAndRepliesInTurnAllArrive) {
  // A ping-pong like the server's and the runner's, racing Wake() against
  // the reader going to sleep each time: every reply is read, none twice.
  SocketPair to_runner;
  SocketPair from_runner;
  BusyPoller poller(from_runner.reader(), {microseconds(50)});
  std::thread runner([&] {
    char byte;
    while (::read(to_runner.reader(), &byte, 1) == 1) from_runner.Write(std::string(1, byte));
    from_runner.CloseWriter();
  });
  for (int i = 0; i < 2000; ++i) {
    const std::string request(1, static_cast<char>('a' + i % 26));
    poller.Expect();
    to_runner.Write(request);
    poller.Wake();
    ASSERT_EQ(ReadOnce(poller), request) << "request " << i;
    poller.Fulfilled();
  }
  to_runner.CloseWriter();
  EXPECT_EQ(ReadOnce(poller), "<end>");
  runner.join();
}

}  // namespace
}  // namespace cog
