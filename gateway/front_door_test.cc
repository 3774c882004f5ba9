#include "gateway/front_door.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gateway/http_framing.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

// What the last /early answer's Send() returned: 1 whole on a kept connection, 0 not.
std::atomic<int> last_early_send{-1};

// What of the large piece /direct_stream's WriteNow left for the connection's thread.
std::atomic<int64_t> last_direct_rest{-1};

// A piece of `size` bytes that shows where each byte belongs.
std::string Marked(size_t size) {
  std::string piece(size, 'x');
  for (size_t i = 0; i < size; i += 4093) piece[i] = static_cast<char>('a' + i % 26);
  return piece;
}

// What the test server answers: POST /echo the body back, GET /ok "ok",
// GET /stream three chunks, anything else 404.
void Answer(HttpRequest& request, HttpResponse& response) {
  if (request.method == "POST" && request.path == "/echo") {
    response.Reply(200, "text/plain", request.body);
  } else if (request.method == "GET" && request.path == "/ok") {
    response.Reply(200, "text/plain", "ok");
  } else if (request.method == "GET" && request.path == "/stream") {
    response.content_type = "text/plain";
    response.stream = [](ResponseWriter& writer) {
      for (const char* piece : {"one ", "two ", "three"}) {
        if (!writer.Write(piece)) return;
      }
    };
  } else if (request.method == "GET" && request.path == "/slow_stream") {
    // A producer slower than any rate: an event every 150 ms, as a model's.
    response.content_type = "text/plain";
    response.stream = [](ResponseWriter& writer) {
      for (const char* piece : {"a", "b", "c", "d", "e"}) {
        absl::SleepFor(absl::Milliseconds(150));
        if (!writer.Write(piece)) return;
      }
    };
  } else if (request.method == "GET" && request.path == "/direct_stream") {
    // As the REST gateway's event stream writes: a piece from another thread,
    // what the socket takes at once, then what it left and more on the
    // connection's thread.
    response.content_type = "text/plain";
    response.stream = [](ResponseWriter& writer) {
      std::string rest;
      bool written = false;
      std::thread other([&] {
        written = writer.WriteNow("head ", &rest) && rest.empty() && writer.WriteNow(Marked(16 << 20), &rest);
      });
      other.join();
      last_direct_rest = written ? static_cast<int64_t>(rest.size()) : -1;
      if (written && writer.WriteFramed(rest)) writer.Write(" tail");
    };
  } else if (request.path == "/early") {
    // Answered from another thread while the handler waits, as a sync
    // prediction is; what the handler then sets is not sent.
    ASSERT_NE(request.early_answer, nullptr);
    const size_t size = request.body.empty() ? 5 : std::stoul(request.body);
    std::thread answerer([&request, size] {
      last_early_send = request.early_answer->Send(200, "text/plain", std::string(size, 'e')) ? 1 : 0;
    });
    answerer.join();
    response.Reply(500, "text/plain", "not this");
  } else if (request.path == "/throw") {
    throw std::runtime_error("the handler broke");
  } else {
    response.Reply(404, "text/plain", "no");
  }
}

// A front door serving Answer() on a free port.
class Served {
 public:
  explicit Served(FrontDoorOptions options) : server_(std::move(options), Answer) {
    absl::StatusOr<int> port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status();
    port_ = port.value_or(0);
    thread_ = std::thread([this] { server_.Serve(); });
  }
  ~Served() {
    server_.Shutdown();
    thread_.join();
  }
  int port() const { return port_; }
  FrontDoorServer& server() { return server_; }

 private:
  FrontDoorServer server_;
  int port_ = 0;
  std::thread thread_;
};

// A raw client socket.
class Client {
 public:
  // `receive_buffer`: SO_RCVBUF before connecting (0: the kernel's).
  explicit Client(int port, int receive_buffer = 0) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    if (receive_buffer > 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  }
  ~Client() { close(fd_); }

  bool Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response: "<status> <body>", or "" if the connection ended first.
  std::string Response(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const size_t end = input_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t at = input_.find("Content-Length: ");
        if (at != std::string::npos && at < end) {
          const size_t eol = input_.find("\r\n", at);
          EXPECT_TRUE(absl::SimpleAtoi(input_.substr(at + 16, eol - at - 16), &length));
        }
        if (input_.size() >= end + 4 + length) {
          std::string response =
              absl::StrCat(input_.substr(9, 3), " ", input_.substr(end + 4, length));
          input_.erase(0, end + 4 + length);
          return response;
        }
      }
      if (!Receive(deadline)) return "";
    }
  }

  // The bytes received, raw, until they contain `until` (the connection's
  // close if empty) or `timeout` passes.
  std::string Raw(absl::Duration timeout, absl::string_view until) {
    const absl::Time deadline = absl::Now() + timeout;
    while (until.empty() || !absl::StrContains(input_, until)) {
      if (!Receive(deadline)) break;
    }
    size_t end = input_.size();
    if (!until.empty() && absl::StrContains(input_, until)) end = input_.find(std::string(until)) + until.size();
    std::string raw = input_.substr(0, end);
    input_.erase(0, end);
    return raw;
  }

  // Whether the server closed the connection within `timeout`.
  bool Closed(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Receive(deadline)) {
    }
    return absl::Now() < deadline;
  }

 private:
  bool Receive(absl::Time deadline) {
    pollfd in{fd_, POLLIN, 0};
    const int wait_ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (poll(&in, 1, wait_ms) <= 0) return false;
    char buffer[65536];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    input_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  std::string input_;

 public:
  // Reads up to `chunk` bytes at a time with `pause` between reads, until
  // `until` bytes came, `timeout` passed, the connection ended, or nothing
  // came for 6 s; returns how many bytes came.
  size_t ReadSlowly(size_t chunk, absl::Duration pause, size_t until, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string buffer(chunk, '\0');
    size_t received = 0;
    while (received < until && absl::Now() < deadline) {
      pollfd in{fd_, POLLIN, 0};
      if (poll(&in, 1, 6000) <= 0) break;
      const ssize_t got = recv(fd_, buffer.data(), chunk, 0);
      if (got <= 0) break;
      received += static_cast<size_t>(got);
      absl::SleepFor(pause);
    }
    return received;
  }
};

FrontDoorOptions SmallLimits() {
  FrontDoorOptions options;
  options.limits.max_body_bytes = 1000;
  options.limits.max_header_bytes = 4096;
  options.limits.max_headers = 10;
  options.max_connections = 8;
  options.header_timeout = absl::Milliseconds(300);
  options.keep_alive_timeout = absl::Seconds(30);
  return options;
}

// SmallLimits with a minimum body rate after a grace.
FrontDoorOptions WithRate(absl::Duration grace, uint64_t bytes_per_second) {
  FrontDoorOptions options = SmallLimits();
  options.body_grace = grace;
  options.min_body_bytes_per_second = bytes_per_second;
  return options;
}

TEST(FrontDoorTest, ServesKeepAliveAndPipelinedRequests) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 ok");
  ASSERT_TRUE(client.Send(
      "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
      "POST /echo HTTP/1.1\r\n\r\n"
      "GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 hello");
  EXPECT_EQ(client.Response(), "200 abcde");
  EXPECT_EQ(client.Response(), "200 ");  // no framing: no body
  EXPECT_EQ(client.Response(), "200 ok");
}

TEST(FrontDoorTest, AChunkedBodyOverTheLimitIs413BeforeItIsSent) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "200\r\n" + std::string(512, 'a') + "\r\n"
                          "200\r\n"));  // the second chunk's data never comes
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "413 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "larger than 1000 bytes")) << response;
}

TEST(FrontDoorTest, HeadLimitsAre431WithTheirReason) {
  Served served(SmallLimits());
  std::string many = "GET /ok HTTP/1.1\r\n";
  for (int i = 0; i < 11; ++i) absl::StrAppend(&many, "X-", i, ": y\r\n");
  Client client(served.port());
  ASSERT_TRUE(client.Send(many + "\r\n"));
  std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "431 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "--max-headers")) << response;
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));

  Client big(served.port());
  big.Send("GET /ok HTTP/1.1\r\nX-Big: " + std::string(20000, 'v'));
  response = big.Response();
  EXPECT_TRUE(absl::StartsWith(response, "431 ")) << response;
}

TEST(FrontDoorTest, AHeadNotCompleteInTimeIs408AndClosed) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /ok HTT"));
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "408 ")) << response;
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));
}

TEST(FrontDoorTest, AHeadTrickledByteByByteStillHasOneDeadline) {
  Served served(SmallLimits());  // header_timeout 300 ms
  Client client(served.port());
  const absl::Time start = absl::Now();
  const std::string head = "GET /ok HTTP/1.1\r\nX-Slow: " + std::string(100, 'v');
  for (char byte : head) {  // each read comes well within any per-read timeout
    if (!client.Send(std::string(1, byte))) break;
    absl::SleepFor(absl::Milliseconds(20));
    if (absl::Now() - start > absl::Seconds(5)) break;
  }
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "408 ")) << response;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(FrontDoorTest, ConnectionsOverTheLimitAre503AndTheOthersServed) {
  Served served(SmallLimits());
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<Client>(served.port()));
    ASSERT_TRUE(idle.back()->Send("GET /ok HTTP/1.1\r\n\r\n"));
    ASSERT_EQ(idle.back()->Response(), "200 ok");
  }
  Client refused(served.port());
  refused.Send("GET /ok HTTP/1.1\r\n\r\n");
  const std::string response = refused.Response();
  EXPECT_TRUE(absl::StartsWith(response, "503 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "--max-connections")) << response;
  idle.pop_back();  // one leaves: a new one is served
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (served.server().open_connections() > 7 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  Client admitted(served.port());
  admitted.Send("GET /ok HTTP/1.1\r\n\r\n");
  EXPECT_EQ(admitted.Response(), "200 ok");
}

TEST(FrontDoorTest, ShutdownClosesIdleConnectionsAtOnce) {
  auto served = std::make_unique<Served>(SmallLimits());
  Client client(served->port());
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\n\r\n"));
  ASSERT_EQ(client.Response(), "200 ok");
  const absl::Time start = absl::Now();
  served.reset();  // Shutdown() and join
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "not the 30 s keep-alive timeout";
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));
}

TEST(FrontDoorTest, APortInUseIsAnErrorNotAShare) {
  Served first(SmallLimits());
  FrontDoorServer second(SmallLimits(), Answer);
  absl::StatusOr<int> port = second.Listen("127.0.0.1", first.port());
  ASSERT_FALSE(port.ok());
  EXPECT_TRUE(absl::StrContains(port.status().message(), absl::StrCat(":", first.port())))
      << port.status();
  EXPECT_TRUE(absl::StrContains(port.status().message(), "in use")) << port.status();
}

TEST(FrontDoorTest, AStreamedAnswerIsChunkedAndTheConnectionStaysOpen) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"));
  const std::string raw = client.Raw(absl::Seconds(10), "0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 OK\r\n")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "Transfer-Encoding: chunked\r\n")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "\r\n\r\n4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"))
      << raw;
  EXPECT_EQ(client.Response(), "200 ok");
}

// Decodes a chunked body that ends with the last chunk (the front door's own
// decoder of request bodies); "" if it is malformed or cut short.
std::string Dechunk(absl::string_view raw) {
  ChunkedBodyDecoder decoder;
  std::string body;
  while (true) {
    size_t consumed = 0;
    const ChunkedBodyDecoder::State state = decoder.Advance(raw, &consumed);
    raw.remove_prefix(consumed);
    if (state == ChunkedBodyDecoder::State::kEnd) return raw.empty() ? body : "";
    const size_t n = static_cast<size_t>(std::min<uint64_t>(decoder.data_remaining(), raw.size()));
    if (state != ChunkedBodyDecoder::State::kData || n == 0) return "";
    body.append(raw.data(), n);
    decoder.TakeData(n);
    raw.remove_prefix(n);
  }
}

// A piece written from another thread without waiting goes out in order and
// whole: what the socket did not take (16 MiB to a client that reads later)
// is sent, framed as it was, before what the connection's thread writes next.
TEST(FrontDoorTest, AChunkWrittenFromAnotherThreadAndFinishedByTheConnectionArrivesInOrder) {
  Served served(SmallLimits());
  Client client(served.port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(client.Send("GET /direct_stream HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"));
  const std::string raw = client.Raw(absl::Seconds(30), "\r\n0\r\n\r\n");
  const size_t body = raw.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << raw.substr(0, 200);
  EXPECT_TRUE(Dechunk(absl::string_view(raw).substr(body + 4)) == "head " + Marked(16 << 20) + " tail")
      << raw.size() << " bytes";
  EXPECT_GT(last_direct_rest.load(), 0) << "the socket took 16 MiB at once: nothing was left to finish";
  EXPECT_EQ(client.Response(), "200 ok");
}

// The minimum rate is the client's to keep, not the producer's: a stream
// whose events come slower than it, read at once by its client, runs to its end.
TEST(FrontDoorTest, AStreamSlowerThanTheRateIsNotCutOff) {
  Served served(WithRate(absl::Milliseconds(100), 1 << 20));
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /slow_stream HTTP/1.1\r\n\r\n"));
  const std::string raw = client.Raw(absl::Seconds(10), "0\r\n\r\n");
  EXPECT_TRUE(absl::StrContains(raw, "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n0\r\n\r\n"))
      << raw;
}

TEST(FrontDoorTest, Http10GetsItsAnswerAndTheConnectionCloses) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.0\r\n\r\n"));
  const std::string raw = client.Raw(absl::Seconds(10), "");
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 OK\r\n")) << raw;
  EXPECT_FALSE(absl::StrContains(raw, "chunked")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "Connection: close\r\n")) << raw;
  EXPECT_TRUE(absl::EndsWith(raw, "\r\n\r\none two three")) << raw;

  Client keep(served.port());
  ASSERT_TRUE(keep.Send("GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  // Said, or a 1.0 client reads to a close that does not come.
  const std::string kept = keep.Raw(absl::Seconds(10), "ok");
  EXPECT_TRUE(absl::StrContains(kept, "Connection: keep-alive\r\n")) << kept;
  ASSERT_TRUE(keep.Send("GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(keep.Response(), "200 ok");
  EXPECT_TRUE(keep.Closed(absl::Seconds(5)));
}

// RFC 9112: a 1.0 request's Expect is ignored, and a chunked 1.0 body
// closes the connection after its answer; empty lines before a request line
// are skipped (a client may send a CRLF after a body).
TEST(FrontDoorTest, Http10FramingAndBlankLinesBeforeARequest) {
  Served served(SmallLimits());
  Client old(served.port());
  ASSERT_TRUE(old.Send("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                       "Connection: keep-alive\r\n\r\n"));
  const std::string answer = old.Raw(absl::Seconds(1), "");
  EXPECT_EQ(answer, "") << "no 100 Continue to a 1.0 client";
  ASSERT_TRUE(old.Send("hi"));
  EXPECT_EQ(old.Response(), "200 hi");

  Client chunked(served.port());
  ASSERT_TRUE(chunked.Send("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                           "2\r\nab\r\n0\r\n\r\n"));
  const std::string raw = chunked.Raw(absl::Seconds(10), "");
  EXPECT_TRUE(absl::StrContains(raw, "Connection: close\r\n")) << raw;
  EXPECT_TRUE(absl::EndsWith(raw, "ab")) << raw;

  Client blank(served.port());
  ASSERT_TRUE(blank.Send("POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(blank.Response(), "200 x");
  EXPECT_EQ(blank.Response(), "200 ok");
}

TEST(FrontDoorTest, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(client.Raw(absl::Seconds(10), "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("hello"));
  EXPECT_EQ(client.Response(), "200 hello");
}

TEST(FrontDoorTest, HeadGetsTheHeadOnly) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("HEAD /ok HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"));
  const std::string raw = client.Raw(absl::Seconds(10), "ok");
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 OK\r\n")) << raw;
  // The HEAD's Content-Length says 2, and no body follows it: the next
  // answer starts right after its blank line.
  EXPECT_TRUE(absl::StrContains(raw, "Content-Length: 2\r\n\r\nHTTP/1.1 200 OK\r\n")) << raw;
}

TEST(FrontDoorTest, AHandlerThatThrowsIs500AndTheServerServesOn) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /throw HTTP/1.1\r\n\r\n"));
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "500 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "the handler broke")) << response;
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 ok");
}

TEST(FrontDoorTest, ABodyThatStopsArrivingIs408) {
  FrontDoorOptions options = SmallLimits();
  options.read_timeout = absl::Milliseconds(200);
  Served served(options);
  Client client(served.port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"));
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "408 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "stopped arriving")) << response;
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));
}

// Each byte comes well within read_timeout, but the body falls behind the
// minimum rate once the grace has passed: refused, long before it would end.
TEST(FrontDoorTest, ABodyTrickledTooSlowlyIs408AfterItsGrace) {
  Served served(WithRate(absl::Milliseconds(300), 100));
  Client client(served.port());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nContent-Length: 900\r\n\r\n"));
  std::string response;
  for (int i = 0; i < 900 && absl::Now() - start < absl::Seconds(8); ++i) {
    if (!client.Send("x")) break;  // refused and closed: the send may fail
    response = client.Response(absl::Milliseconds(50));
    if (!response.empty()) break;
  }
  if (response.empty()) response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "408 ")) << response;
  EXPECT_TRUE(absl::StrContains(response, "arrived too slowly")) << response;
  EXPECT_TRUE(absl::StrContains(response, "100 bytes/s")) << response;
  // ~20 bytes a second: behind 100/s from the grace's end on, so refused
  // soon after it, not after the 45 s the whole body would take.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));
}

// Bodies sent fast and then trickled held their memory for hours: past the
// server's budget for bodies a new one is refused, 503 with Retry-After, by
// its length before its bytes are read, or as its bytes arrive; what is
// counted is what arrived (a length only claimed costs nothing); small bodies
// are not counted; an answered request gives its part back.
TEST(FrontDoorTest, BodiesPastTheServersBudgetAre503UntilOthersAreAnswered) {
  FrontDoorOptions options = SmallLimits();
  options.limits.max_body_bytes = 8 << 20;
  options.max_buffered_body_bytes = 3 << 20;
  options.read_timeout = absl::Seconds(10);
  Served served(options);
  const std::string two_mib_head = absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: ", 2 << 20, "\r\n\r\n");
  Client claimer(served.port());
  ASSERT_TRUE(claimer.Send(two_mib_head + "x"));  // a claim: counts nothing
  Client holder(served.port());
  ASSERT_TRUE(holder.Send(two_mib_head + std::string((2 << 20) - 1, 'x')));  // counted: 2 of the 3 MiB
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (served.server().buffered_body_bytes() < (2u << 20) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(served.server().buffered_body_bytes(), 2u << 20) << "only what arrived counts, not the claim";

  Client refused(served.port());
  ASSERT_TRUE(refused.Send(two_mib_head));
  const std::string answer = refused.Raw(absl::Seconds(10), "}");
  EXPECT_TRUE(absl::StartsWith(answer, "HTTP/1.1 503 ")) << answer;
  EXPECT_TRUE(absl::StrContains(answer, "Retry-After: 1\r\n")) << answer;
  EXPECT_TRUE(absl::StrContains(answer, "would pass its limit, --max-buffered-body-bytes=3145728")) << answer;

  Client asking(served.port());  // refused before it is told to send its body
  ASSERT_TRUE(asking.Send(absl::StrCat("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: ", 2 << 20,
                                       "\r\n\r\n")));
  const std::string refusal = asking.Raw(absl::Seconds(10), "}");
  EXPECT_TRUE(absl::StartsWith(refusal, "HTTP/1.1 503 ")) << refusal;

  Client chunked(served.port());  // refused as its bytes pass the budget
  chunked.Send(absl::StrFormat("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", 2 << 20) +
               std::string(2 << 20, 'c'));  // may fail once refused
  EXPECT_TRUE(absl::StartsWith(chunked.Response(), "503 "));

  Client small(served.port());  // 1 MiB is not counted
  ASSERT_TRUE(small.Send(absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: ", 1 << 20, "\r\n\r\n") +
                         Marked(1 << 20)));
  EXPECT_EQ(small.Response(), "200 " + Marked(1 << 20));

  ASSERT_TRUE(holder.Send("y"));
  EXPECT_EQ(holder.Response().size(), 4u + (2 << 20));
  Client after(served.port());  // the holder's 2 MiB were given back
  ASSERT_TRUE(after.Send(two_mib_head + Marked(2 << 20)));
  EXPECT_EQ(after.Response(), "200 " + Marked(2 << 20));
}

// A body that keeps the rate is read whole however long it takes.
TEST(FrontDoorTest, ASlowBodyThatKeepsTheRateIsServed) {
  Served served(WithRate(absl::Milliseconds(300), 1000));
  Client client(served.port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"));
  // 100 bytes every 50 ms, 2,000 bytes/s, for 0.5 s: past the grace, and far
  // enough ahead of the rate that a stall of the test's thread is absorbed.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.Send(std::string(100, 'a' + i)));
    absl::SleepFor(absl::Milliseconds(50));
  }
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "200 ")) << response;
  EXPECT_EQ(response.size(), 4 + 1000u) << response;
}

// A client that reads a large answer a little at a time (each read keeping
// the write within its timeout) falls behind the rate: the server gives up on
// it and closes, long before the answer would be out.
TEST(FrontDoorTest, AnAnswerReadTooSlowlyEndsTheConnection) {
  Served served(WithRate(absl::Milliseconds(300), 64 << 10));
  Client client(served.port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(client.Send("POST /early HTTP/1.1\r\nContent-Length: 8\r\n\r\n16000000"));
  const absl::Time start = absl::Now();
  // ~10 KiB/s at most; 0 bytes for 6 s would be the write timeout (5 s).
  const size_t received = client.ReadSlowly(1024, absl::Milliseconds(100), 16000000, absl::Seconds(20));
  // Cut off soon after the grace, not after the ~26 minutes the answer would take.
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << received << " bytes read";
  // The server still serves others.
  Client other(served.port());
  ASSERT_TRUE(other.Send("GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(other.Response(), "200 ok");
}

// A client that reads slowly but above the rate gets the whole answer.
TEST(FrontDoorTest, AnAnswerReadSlowlyButAboveTheRateArrivesWhole) {
  Served served(WithRate(absl::Milliseconds(300), 100 << 10));
  Client client(served.port(), /*receive_buffer=*/8192);
  ASSERT_TRUE(client.Send("POST /early HTTP/1.1\r\nContent-Length: 7\r\n\r\n1000000"));
  // ~400 KiB/s at most.
  const size_t received = client.ReadSlowly(4096, absl::Milliseconds(10), 1000001, absl::Seconds(30));
  EXPECT_GT(received, 1000000u) << "the head and 1,000,000 bytes of body";
}

TEST(FrontDoorTest, ALargeBodyArrivesWhole) {
  FrontDoorOptions options = SmallLimits();
  options.limits.max_body_bytes = 8 << 20;
  Served served(options);
  const std::string body = Marked(5 << 20);
  Client client(served.port());
  std::thread sender([&] {
    client.Send(absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n"));
    client.Send(body);
  });
  const std::string response = client.Response(absl::Seconds(30));
  sender.join();
  EXPECT_EQ(response.size(), body.size() + 4);
  EXPECT_TRUE(response == "200 " + body);
}

TEST(FrontDoorTest, AnAnswerSentEarlyFromAnotherThreadIsTheAnswer) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /early HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 eeeee");
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 ok");  // after the /early handler's end
  EXPECT_EQ(last_early_send, 1) << "sent whole, the connection kept: nothing left for its thread";
  // Larger than the socket takes at once: the connection's thread sends the
  // rest after the handler.
  const size_t large = 8 << 20;
  ASSERT_TRUE(client.Send(absl::StrCat("POST /early HTTP/1.1\r\nContent-Length: ",
                                       std::to_string(large).size(), "\r\n\r\n", large,
                                       "GET /ok HTTP/1.1\r\n\r\n")));
  const std::string response = client.Response(absl::Seconds(30));
  EXPECT_EQ(response.size(), 4 + large);
  EXPECT_TRUE(response == "200 " + std::string(large, 'e'));
  EXPECT_EQ(last_early_send, 0) << "the connection's thread had the rest to send";
  EXPECT_EQ(client.Response(), "200 ok");
  // Whole, but the next request is already in the server's buffer (pipelined),
  // or the connection is to be closed: the connection's thread has work.
  last_early_send = -1;
  ASSERT_TRUE(client.Send("GET /early HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 eeeee");
  EXPECT_EQ(client.Response(), "200 ok");  // after the /early handler's end
  EXPECT_EQ(last_early_send, 0);
  last_early_send = -1;
  ASSERT_TRUE(client.Send("GET /early HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(client.Response(), "200 eeeee");
  EXPECT_EQ(client.Response(), "") << "closed";
  EXPECT_EQ(last_early_send, 0);
}

TEST(FrontDoorTest, AClosingConnectionReadsWhatTheClientStillSendsInsteadOfResettingIt) {
  // Closing a socket with unread input sends a reset, which can destroy an
  // answer still in flight; the server reads the client's remaining bytes
  // first, so the client's sending ends normally, not with a reset.
  Served served(SmallLimits());
  Client client(served.port());
  bool sent_whole = false;
  std::thread sender([&] {
    sent_whole = client.Send("GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n" +
                             std::string(4 << 20, 'x'));
  });
  EXPECT_EQ(client.Response(), "200 ok");
  sender.join();
  EXPECT_TRUE(sent_whole);
  EXPECT_TRUE(client.Closed(absl::Seconds(5)));
}

TEST(FrontDoorTest, AnUnsupportedVersionIs505) {
  Served served(SmallLimits());
  Client client(served.port());
  ASSERT_TRUE(client.Send("GET /ok HTTP/2.0\r\n\r\n"));
  const std::string response = client.Response();
  EXPECT_TRUE(absl::StartsWith(response, "505 ")) << response;
}

}  // namespace
}  // namespace cog
