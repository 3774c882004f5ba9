#include "server/webhook_sender.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

// A local HTTP/1.1 server on a port of its own: records each request's body
// and answers 200, or (hang) reads requests and never answers.
class TestReceiver {
 public:
  // Which receivers requests came to, in order, across receivers.
  struct Arrivals {
    absl::Mutex mu;
    std::vector<int> tags ABSL_GUARDED_BY(mu);
  };

  // With `arrivals`, each request adds `tag` to it.
  explicit TestReceiver(bool hang, Arrivals* arrivals = nullptr, int tag = 0)
      : hang_(hang), arrivals_(arrivals), tag_(tag) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), size) != 0 || listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      std::abort();
    }
    port_ = ntohs(address.sin_port);
    accepter_ = std::thread([this] { Accept(); });
  }

  ~TestReceiver() {
    shutdown(listener_, SHUT_RDWR);
    accepter_.join();
    close(listener_);
    absl::MutexLock lock(&mu_);
    for (int fd : connections_) shutdown(fd, SHUT_RDWR);
    // Readers end once their sockets are shut down.
    mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &readers_));
    for (int fd : connections_) close(fd);
  }

  std::string url(absl::string_view path = "/hook") const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

  // Waits (at most a minute) until `count` requests have arrived; their bodies.
  std::vector<std::string> WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return bodies_.size() >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Minutes(1));
    return bodies_;
  }

  std::vector<std::string> bodies() {
    absl::MutexLock lock(&mu_);
    return bodies_;
  }

 private:
  void Accept() {
    while (true) {
      const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      absl::MutexLock lock(&mu_);
      connections_.push_back(fd);
      ++readers_;
      std::thread([this, fd] { Serve(fd); }).detach();
    }
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (true) {
      const size_t head_end = buffer.find("\r\n\r\n");
      size_t length = 0;
      if (head_end != std::string::npos) {
        const size_t at = buffer.find("Content-Length: ");
        if (at != std::string::npos && at < head_end) {
          absl::SimpleAtoi(buffer.substr(at + 16, buffer.find("\r\n", at) - at - 16), &length);
        }
        if (buffer.size() >= head_end + 4 + length) {
          {
            absl::MutexLock lock(&mu_);
            bodies_.push_back(buffer.substr(head_end + 4, length));
          }
          if (arrivals_ != nullptr) {
            absl::MutexLock lock(&arrivals_->mu);
            arrivals_->tags.push_back(tag_);
          }
          buffer.erase(0, head_end + 4 + length);
          if (!hang_) {
            static constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if (send(fd, kOk, sizeof(kOk) - 1, MSG_NOSIGNAL) < 0) break;
          }
          continue;
        }
      }
      const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    absl::MutexLock lock(&mu_);
    --readers_;
  }

  const bool hang_;
  Arrivals* const arrivals_;
  const int tag_;
  int listener_ = -1;
  int port_ = 0;
  std::thread accepter_;
  absl::Mutex mu_;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<int> connections_ ABSL_GUARDED_BY(mu_);
  int readers_ ABSL_GUARDED_BY(mu_) = 0;
};

WebhookSender::Webhook Hook(const std::string& url, WebhookEvent event, std::string body) {
  return {url, event, std::move(body), nullptr, {}};
}

TEST(WebhookSenderTest, HungDestinationsHoldOnlyTheirOwnPredictionsWebhooks) {
  std::vector<std::unique_ptr<TestReceiver>> hung;
  for (int i = 0; i < 8; ++i) hung.push_back(std::make_unique<TestReceiver>(/*hang=*/true));
  TestReceiver good(/*hang=*/false);
  WebhookSender::Options options;
  options.request_timeout = absl::Hours(1);  // the hung ones never give up during the test
  WebhookSender sender(options);
  for (size_t i = 0; i < hung.size(); ++i) {
    const std::string id = absl::StrCat("hung-", i);
    sender.Send(id, Hook(hung[i]->url(), WebhookEvent::kStart, "start " + id));
    sender.Send(id, Hook(hung[i]->url(), WebhookEvent::kCompleted, "completed " + id));
  }
  for (auto& receiver : hung) receiver->WaitFor(1);

  sender.Send("good", Hook(good.url(), WebhookEvent::kStart, "start"));
  sender.Send("good", Hook(good.url(), WebhookEvent::kOutput, "output"));
  sender.Send("good", Hook(good.url(), WebhookEvent::kCompleted, "completed"));
  EXPECT_EQ(good.WaitFor(3), (std::vector<std::string>{"start", "output", "completed"}));
  EXPECT_FALSE(sender.Drain(absl::ZeroDuration())) << "the hung ones are still out";
  for (size_t i = 0; i < hung.size(); ++i) {
    // Each hung prediction's completed waits behind its unanswered start.
    EXPECT_EQ(hung[i]->bodies(), std::vector<std::string>{absl::StrCat("start hung-", i)});
  }
  sender.Stop();  // abandons them
}

// A backlog of 400 bytes (300 for all but completed webhooks), counted into
// `counts`, for receivers that may hang for an hour.
WebhookSender::Options SmallBacklog(WebhookCounts* counts) {
  WebhookSender::Options options;
  options.request_timeout = absl::Hours(1);
  options.max_backlog_bytes = 400;
  options.counts = counts;
  return options;
}

TEST(WebhookSenderTest, BodiesWaitingForReceiversAreBoundedInAll) {
  TestReceiver hung(/*hang=*/true);
  TestReceiver good(/*hang=*/false);
  WebhookCounts counts;
  WebhookSender sender(SmallBacklog(&counts));
  // Delivered webhooks leave the backlog: 5 x 100 bytes, one after another.
  for (int i = 0; i < 5; ++i) {
    sender.Send(absl::StrCat("g", i), Hook(good.url(), WebhookEvent::kCompleted, std::string(100, 'a' + i)));
    ASSERT_TRUE(sender.Drain(absl::Minutes(1)));
  }
  EXPECT_EQ(good.bodies().size(), 5u);
  EXPECT_EQ(sender.backlog_bytes(), 0u);
  // A receiver that never answers holds what is sent to it: past 300 bytes
  // output webhooks are dropped, and completed ones still have 100.
  sender.Send("a", Hook(hung.url(), WebhookEvent::kOutput, std::string(100, 'a')));
  sender.Send("b", Hook(hung.url(), WebhookEvent::kOutput, std::string(100, 'b')));
  sender.Send("c", Hook(hung.url(), WebhookEvent::kOutput, std::string(100, 'c')));
  sender.Send("d", Hook(hung.url(), WebhookEvent::kOutput, std::string(100, 'd')));     // dropped
  sender.Send("e", Hook(hung.url(), WebhookEvent::kCompleted, std::string(90, 'e')));   // fits
  sender.Send("f", Hook(hung.url(), WebhookEvent::kCompleted, std::string(20, 'f')));   // dropped
  EXPECT_EQ(counts.dropped.load(), 2u);  // d and f, never queued: they cannot come
  std::vector<std::string> held = hung.WaitFor(4);
  EXPECT_EQ(sender.backlog_bytes(), 390u);
  std::sort(held.begin(), held.end());
  EXPECT_EQ(held, (std::vector<std::string>{std::string(100, 'a'), std::string(100, 'b'),
                                            std::string(100, 'c'), std::string(90, 'e')}));
  sender.Stop();
}

TEST(WebhookSenderTest, ARenderedLogsWebhookIsBoundedLikeTheRest) {
  // A logs webhook's body (the whole prediction) is made when it is sent:
  // it counts from then, and is dropped if it does not fit.
  TestReceiver hung(/*hang=*/true);
  WebhookCounts counts;
  WebhookSender sender(SmallBacklog(&counts));
  auto logs = [&](const std::string& id, size_t size) {
    WebhookSender::Webhook hook = Hook(hung.url(), WebhookEvent::kLogs, "");
    hook.render = [size]() -> absl::StatusOr<std::string> { return std::string(size, 'l'); };
    sender.Send(id, std::move(hook));
  };
  sender.Send("a", Hook(hung.url(), WebhookEvent::kOutput, std::string(100, 'a')));
  hung.WaitFor(1);
  logs("b", 150);   // 250 in all: fits
  hung.WaitFor(2);
  logs("c", 5000);  // past 300: dropped when rendered
  sender.Send("d", Hook(hung.url(), WebhookEvent::kCompleted, std::string(100, 'd')));  // 350: fits
  hung.WaitFor(3);
  // c is dropped on the sending thread, when it is rendered: never sent.
  const absl::Time deadline = absl::Now() + absl::Minutes(1);
  while (counts.dropped.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(counts.dropped.load(), 1u);
  EXPECT_EQ(sender.backlog_bytes(), 350u);
  EXPECT_EQ(hung.bodies().size(), 3u);
  sender.Stop();
}

TEST(WebhookSenderTest, TransfersAtOnceAreBoundedRetriesIncluded) {
  TestReceiver::Arrivals arrivals;
  std::vector<std::unique_ptr<TestReceiver>> hung;
  for (int i = 0; i < 3; ++i) hung.push_back(std::make_unique<TestReceiver>(/*hang=*/true, &arrivals, i));
  WebhookSender::Options options;
  options.request_timeout = absl::Milliseconds(300);
  options.first_backoff = absl::Milliseconds(50);
  options.terminal_attempts = 3;  // completed webhooks are retried
  options.max_transfers = 1;
  WebhookSender sender(options);
  for (int i = 0; i < 3; ++i) {
    sender.Send(absl::StrCat("p", i), Hook(hung[i]->url(), WebhookEvent::kCompleted, "done"));
  }
  ASSERT_TRUE(sender.Drain(absl::Minutes(1)));
  // One transfer at a time, its retries included: each receiver's three
  // attempts come together (a retry waiting for its time once left its
  // place to the next prediction's webhook, then started on top of it).
  absl::MutexLock lock(&arrivals.mu);
  ASSERT_EQ(arrivals.tags.size(), 9u);
  for (size_t i = 0; i < 9; i += 3) {
    EXPECT_EQ(arrivals.tags[i], arrivals.tags[i + 1]) << i;
    EXPECT_EQ(arrivals.tags[i], arrivals.tags[i + 2]) << i;
  }
}

TEST(WebhookSenderTest, LogsAreRenderedOnlyWhenSentAndTheCompletedSupersedesTheRest) {
  TestReceiver receiver(/*hang=*/false);
  WebhookSender::Options options;
  options.logs_interval = absl::Hours(1);  // one logs webhook, then only the completed
  WebhookSender sender(options);
  std::atomic<int> renders{0};
  auto logs = [&] {
    WebhookSender::Webhook hook = Hook(receiver.url(), WebhookEvent::kLogs, "");
    hook.render = [&renders]() -> absl::StatusOr<std::string> {
      return absl::StrCat("logs ", ++renders);
    };
    sender.Send("p", std::move(hook));
  };
  logs();
  receiver.WaitFor(1);
  // A burst within the interval: one queued update, replaced 10000 times.
  for (int i = 0; i < 10000; ++i) logs();
  sender.Send("p", Hook(receiver.url(), WebhookEvent::kCompleted, "completed"));
  ASSERT_TRUE(sender.Drain(absl::Minutes(1)));
  EXPECT_EQ(renders.load(), 1);
  EXPECT_EQ(receiver.bodies(), (std::vector<std::string>{"logs 1", "completed"}));
}

TEST(WebhookSenderTest, TheObserverWantsEachOutputOnlyWithOutputEvents) {
  // Otherwise the runner may send outputs several at once (Predict.batch_outputs).
  WebhookSender sender(WebhookSender::Options{});
  const auto wants = [&sender](std::vector<WebhookEvent> filter) {
    PredictionRequest request;
    request.webhook = "http://127.0.0.1:9/hook";
    request.webhook_events_filter = std::move(filter);
    return WebhookSender::ObserverFor(&sender, request, nullptr)->WantsEachOutput();
  };
  EXPECT_TRUE(wants({}));  // every event
  EXPECT_TRUE(wants({WebhookEvent::kOutput, WebhookEvent::kCompleted}));
  EXPECT_FALSE(wants({WebhookEvent::kCompleted}));
  EXPECT_FALSE(wants({WebhookEvent::kStart, WebhookEvent::kLogs, WebhookEvent::kCompleted}));
  sender.Stop();
}

TEST(WebhookSenderTest, AtShutdownTheCompletedWebhookGoesAheadOfTheUpdatesQueuedBeforeIt) {
  TestReceiver slow(/*hang=*/true);  // each update waits out its timeout there
  TestReceiver receiver(/*hang=*/false);
  WebhookSender::Options options;
  options.request_timeout = absl::Seconds(1);
  WebhookSender sender(options);
  sender.Send("p", Hook(slow.url(), WebhookEvent::kOutput, "output 0"));
  slow.WaitFor(1);  // on its way, holding the rest of the queue
  for (int i = 1; i <= 50; ++i) sender.Send("p", Hook(slow.url(), WebhookEvent::kOutput, absl::StrCat("output ", i)));
  sender.Send("p", Hook(receiver.url(), WebhookEvent::kCompleted, "completed"));
  sender.PreferCompleted();
  // 50 more seconds of updates before it, otherwise.
  EXPECT_TRUE(sender.Drain(absl::Seconds(20)));
  EXPECT_EQ(receiver.bodies(), std::vector<std::string>{"completed"});
  EXPECT_EQ(slow.bodies().size(), 1u);
}

TEST(WebhookSenderTest, ALogsUpdateWithNothingLeftToRenderIsDropped) {
  TestReceiver receiver(/*hang=*/false);
  WebhookSender sender(WebhookSender::Options{});
  WebhookSender::Webhook logs = Hook(receiver.url(), WebhookEvent::kLogs, "");
  logs.render = []() -> absl::StatusOr<std::string> { return absl::NotFoundError("ended"); };
  sender.Send("p", std::move(logs));
  ASSERT_TRUE(sender.Drain(absl::Minutes(1)));
  sender.Send("p", Hook(receiver.url(), WebhookEvent::kCompleted, "completed"));
  ASSERT_TRUE(sender.Drain(absl::Minutes(1)));
  EXPECT_EQ(receiver.bodies(), std::vector<std::string>{"completed"});
}

TEST(WebhookSenderTest, ADestinationThePolicyRefusesIsNotRetried) {
  TestReceiver receiver(/*hang=*/false);
  WebhookSender::Options options;
  options.outbound = *OutboundPolicy::Parse("127.0.0.0/8");
  options.first_backoff = absl::Hours(1);  // a retry would hold Drain past its deadline
  WebhookSender sender(options);
  sender.Send("p", Hook(receiver.url(), WebhookEvent::kCompleted, "completed"));
  EXPECT_TRUE(sender.Drain(absl::Minutes(1)));
  EXPECT_TRUE(receiver.bodies().empty());
}

TEST(WebhookSenderTest, OnlyHttpAndHttpsAreSpoken) {
  TestReceiver receiver(/*hang=*/false);
  WebhookSender::Options options;
  options.first_backoff = absl::Hours(1);
  WebhookSender sender(options);
  const std::string port = receiver.url().substr(receiver.url().rfind(':'));
  for (const std::string& url : {"gopher://127.0.0.1" + port + "/_x", "dict://127.0.0.1" + port + "/i",
                                 "telnet://127.0.0.1" + port}) {
    sender.Send(url, Hook(url, WebhookEvent::kCompleted, "completed"));
  }
  EXPECT_TRUE(sender.Drain(absl::Minutes(1)));
  EXPECT_TRUE(receiver.bodies().empty());
}

}  // namespace
}  // namespace cog
