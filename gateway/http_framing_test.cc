#include "gateway/http_framing.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace cog {
namespace {

using Result = RequestHeadScanner::Result;

RequestLimits Limits() {
  RequestLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 5;
  limits.max_body_bytes = 100;
  return limits;
}

TEST(RequestHeadScannerTest, FindsTheHeadAndItsContentLength) {
  RequestHeadScanner scanner(Limits());
  const std::string head = "POST /predictions HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
  EXPECT_EQ(scanner.Scan(head + "{\"input\":{}}"), Result::kComplete);
  EXPECT_EQ(scanner.head_size(), head.size());
  EXPECT_EQ(scanner.body().kind, BodyFraming::Kind::kLength);
  EXPECT_EQ(scanner.body().length, 12u);
}

TEST(RequestHeadScannerTest, ResumesAcrossPiecesOneByteAtATime) {
  RequestHeadScanner scanner(Limits());
  const std::string head = "GET /health-check HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 1; i < head.size(); ++i) {
    ASSERT_EQ(scanner.Scan(absl::string_view(head).substr(0, i)), Result::kIncomplete) << i;
  }
  EXPECT_EQ(scanner.Scan(head), Result::kComplete);
  EXPECT_EQ(scanner.body().kind, BodyFraming::Kind::kNone);
}

TEST(RequestHeadScannerTest, ChunkedInAnyCaseIsChunked) {
  RequestHeadScanner scanner(Limits());
  const std::string head =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nA: b\r\n\r\n";
  ASSERT_EQ(scanner.Scan(head), Result::kComplete);
  EXPECT_EQ(scanner.body().kind, BodyFraming::Kind::kChunked);
}

TEST(RequestHeadScannerTest, TooManyFieldsIs431NamingTheFlag) {
  RequestHeadScanner scanner(Limits());
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 6; ++i) head += "X-" + std::to_string(i) + ": y\r\n";
  EXPECT_EQ(scanner.Scan(head + "\r\n"), Result::kRefused);
  EXPECT_EQ(scanner.refusal().status, 431);
  EXPECT_NE(scanner.refusal().detail.find("more than 5 header fields"), std::string::npos);
  EXPECT_NE(scanner.refusal().detail.find("--max-headers"), std::string::npos);
}

TEST(RequestHeadScannerTest, AHeadTooLargeIsRefusedBeforeItEnds) {
  RequestLimits limits = Limits();
  limits.max_headers = 100;
  RequestHeadScanner scanner(limits);
  std::string head = "GET / HTTP/1.1\r\n";
  while (head.size() <= 1024) head += "X-Long: " + std::string(100, 'v') + "\r\n";
  EXPECT_EQ(scanner.Scan(head), Result::kRefused);  // no blank line yet
  EXPECT_EQ(scanner.refusal().status, 431);
  EXPECT_NE(scanner.refusal().detail.find("larger than 1024 bytes; raise --max-header-bytes"),
            std::string::npos);
}

TEST(RequestHeadScannerTest, ALongFieldLineIsRefusedWhileItArrives) {
  RequestLimits limits = Limits();
  limits.max_header_bytes = 1 << 20;
  RequestHeadScanner scanner(limits);
  const std::string partial = "GET / HTTP/1.1\r\nX-Big: " + std::string(kMaxHeaderLineBytes, 'v');
  EXPECT_EQ(scanner.Scan(partial), Result::kRefused);
  EXPECT_EQ(scanner.refusal().status, 431);
}

TEST(RequestHeadScannerTest, ALongRequestLineIs414) {
  RequestLimits limits = Limits();
  limits.max_header_bytes = 1 << 20;
  RequestHeadScanner scanner(limits);
  EXPECT_EQ(scanner.Scan("GET /" + std::string(kMaxRequestLineBytes, 'a')), Result::kRefused);
  EXPECT_EQ(scanner.refusal().status, 414);
}

TEST(RequestHeadScannerTest, AContentLengthOverTheBodyLimitIs413AtOnce) {
  RequestHeadScanner scanner(Limits());
  EXPECT_EQ(scanner.Scan("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), Result::kRefused);
  EXPECT_EQ(scanner.refusal().status, 413);
  EXPECT_EQ(scanner.refusal().detail,
            "Request body is larger than 100 bytes; raise --max-body-bytes to accept it");
}

TEST(RequestHeadScannerTest, FramingThatTwoParsersCouldReadDifferentlyIsRefused) {
  const struct {
    const char* head;
    int status;
  } cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
      {"POST / HTTP/1.1\nHost: x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHo\rst: x\r\n\r\n", 400},
      {"\r\n", 400},
  };
  for (const auto& c : cases) {
    RequestHeadScanner scanner(Limits());
    EXPECT_EQ(scanner.Scan(c.head), Result::kRefused) << c.head;
    EXPECT_EQ(scanner.refusal().status, c.status) << c.head;
  }
  RequestHeadScanner same_twice(Limits());
  EXPECT_EQ(same_twice.Scan("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            Result::kComplete);
}

// Decodes `body` fed in pieces of `step` bytes, as a connection would.
std::string Decode(ChunkedBodyDecoder& decoder, const std::string& body, size_t step,
                   ChunkedBodyDecoder::State* last) {
  std::string buffer, out;
  size_t fed = 0;
  while (true) {
    size_t consumed = 0;
    *last = decoder.Advance(buffer, &consumed);
    buffer.erase(0, consumed);
    if (*last == ChunkedBodyDecoder::State::kData && !buffer.empty()) {
      const size_t n = std::min<uint64_t>(decoder.data_remaining(), buffer.size());
      out += buffer.substr(0, n);
      buffer.erase(0, n);
      decoder.TakeData(n);
      continue;
    }
    if (*last == ChunkedBodyDecoder::State::kEnd || *last == ChunkedBodyDecoder::State::kMalformed ||
        fed == body.size()) {
      return out;
    }
    buffer += body.substr(fed, step);
    fed = std::min(body.size(), fed + step);
  }
}

TEST(ChunkedBodyDecoderTest, DecodesWhateverThePieces) {
  const std::string body = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
  for (size_t step : {1, 2, 3, 7, 100}) {
    ChunkedBodyDecoder decoder;
    ChunkedBodyDecoder::State last;
    EXPECT_EQ(Decode(decoder, body, step, &last), "hello 0123456789") << step;
    EXPECT_EQ(last, ChunkedBodyDecoder::State::kEnd) << step;
    EXPECT_EQ(decoder.announced(), 16u);
  }
}

TEST(ChunkedBodyDecoderTest, AnnouncesTheSizeBeforeTheDataArrives) {
  ChunkedBodyDecoder decoder;
  size_t consumed = 0;
  EXPECT_EQ(decoder.Advance("40000000\r\n", &consumed), ChunkedBodyDecoder::State::kData);
  EXPECT_EQ(decoder.announced(), 0x40000000u);
}

TEST(ChunkedBodyDecoderTest, MalformedBodiesSaySo) {
  for (const char* body : {"x\r\n", "5\r\nhelloXX", "5\nhello\r\n0\r\n\r\n",
                           "fffffffffffffffff\r\n", "5 junk\r\nhello\r\n"}) {
    ChunkedBodyDecoder decoder;
    ChunkedBodyDecoder::State last;
    Decode(decoder, body, 100, &last);
    EXPECT_EQ(last, ChunkedBodyDecoder::State::kMalformed) << body;
    EXPECT_NE(decoder.error().find("Malformed chunked request body"), std::string::npos);
  }
  ChunkedBodyDecoder endless;
  ChunkedBodyDecoder::State last;
  Decode(endless, std::string(2000, '1'), 100, &last);
  EXPECT_EQ(last, ChunkedBodyDecoder::State::kMalformed) << "a size line with no end";
}

std::optional<Refusal> Parse(absl::string_view head, HttpRequest* request, ParsedHead* parsed) {
  return ParseRequestHead(head, request, parsed);
}

TEST(ParseRequestHeadTest, ReadsMethodTargetDecodedPathAndFieldsInOrder) {
  HttpRequest request;
  ParsedHead parsed;
  ASSERT_EQ(Parse("PUT /predictions/a%20b%2Fc?x=%20#f HTTP/1.1\r\nHost: h\r\n"
                  "Content-Type:  application/json \t\r\nX-Empty:\r\nhost: second\r\n\r\n",
                  &request, &parsed),
            std::nullopt);
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.target, "/predictions/a%20b%2Fc?x=%20#f");
  EXPECT_EQ(request.path, "/predictions/a%20b%2Fc");  // as sent: split before decoding
  EXPECT_EQ(PercentDecode(request.path), "/predictions/a b/c");
  ASSERT_EQ(request.headers.size(), 4u);
  EXPECT_EQ(request.headers[1].first, "Content-Type");
  EXPECT_EQ(request.headers[1].second, "application/json");
  EXPECT_EQ(request.headers[2].second, "");
  ASSERT_NE(request.Header("HOST"), nullptr);
  EXPECT_EQ(*request.Header("HOST"), "h");  // the first of its name
  EXPECT_EQ(request.Header("Accept"), nullptr);
  EXPECT_EQ(parsed.http_minor, 1);
  EXPECT_TRUE(parsed.keep_alive);
  EXPECT_FALSE(parsed.expect_continue);
  EXPECT_FALSE(parsed.head_only);
}

TEST(ParseRequestHeadTest, APercentNotFollowedByTwoHexDigitsStaysAsItIs) {
  HttpRequest request;
  ParsedHead parsed;
  ASSERT_EQ(Parse("GET /a%2x%4%%41% HTTP/1.1\r\n\r\n", &request, &parsed), std::nullopt);
  EXPECT_EQ(PercentDecode(request.path), "/a%2x%4%A%");
}

TEST(ParseRequestHeadTest, KeepAliveFollowsTheVersionAndConnection) {
  struct Case {
    const char* head;
    bool keep_alive;
  };
  for (const Case& c : {Case{"GET / HTTP/1.1\r\n\r\n", true},
                        Case{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
                        Case{"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
                        Case{"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", false}}) {
    HttpRequest request;
    ParsedHead parsed;
    ASSERT_EQ(Parse(c.head, &request, &parsed), std::nullopt) << c.head;
    EXPECT_EQ(parsed.keep_alive, c.keep_alive) << c.head;
  }
}

TEST(ParseRequestHeadTest, HeadIsServedAsGetWithoutABody) {
  HttpRequest request;
  ParsedHead parsed;
  ASSERT_EQ(Parse("HEAD /health-check HTTP/1.1\r\n\r\n", &request, &parsed), std::nullopt);
  EXPECT_EQ(request.method, "GET");
  EXPECT_TRUE(parsed.head_only);
}

TEST(ParseRequestHeadTest, AnAbsoluteFormTargetIsRoutedByItsPath) {
  HttpRequest request;
  ParsedHead parsed;
  ASSERT_EQ(Parse("GET http://example.com:5000/health-check?a HTTP/1.1\r\n\r\n", &request, &parsed),
            std::nullopt);
  EXPECT_EQ(request.path, "/health-check");
  ASSERT_EQ(Parse("GET http://example.com HTTP/1.1\r\n\r\n", &request, &parsed), std::nullopt);
  EXPECT_EQ(request.path, "/");
}

TEST(ParseRequestHeadTest, ExpectOtherThan100ContinueIs417) {
  HttpRequest request;
  ParsedHead parsed;
  ASSERT_EQ(Parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n", &request, &parsed),
            std::nullopt);
  EXPECT_TRUE(parsed.expect_continue);
  std::optional<Refusal> refusal = Parse("POST / HTTP/1.1\r\nExpect: cake\r\n\r\n", &request, &parsed);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->status, 417);
  EXPECT_NE(refusal->detail.find("cake"), std::string::npos);
}

TEST(ParseRequestHeadTest, MalformedRequestLinesAreRefusedWithTheirReason) {
  struct Case {
    const char* head;
    int status;
  };
  for (const Case& c : {Case{"GET\r\n\r\n", 400}, Case{"GET /\r\n\r\n", 400},
                        Case{" / HTTP/1.1\r\n\r\n", 400}, Case{"GET / x HTTP/1.1\r\n\r\n", 400},
                        Case{"G(T / HTTP/1.1\r\n\r\n", 400}, Case{"GET / HTTPS/1.1\r\n\r\n", 400},
                        Case{"GET  HTTP/1.1\r\n\r\n", 400}, Case{"GET foo HTTP/1.1\r\n\r\n", 400},
                        Case{"GET ftp://x/ HTTP/1.1\r\n\r\n", 400},
                        Case{"GET / HTTP/2.0\r\n\r\n", 505}, Case{"GET / HTTP/1.2\r\n\r\n", 505}}) {
    HttpRequest request;
    ParsedHead parsed;
    std::optional<Refusal> refusal = Parse(c.head, &request, &parsed);
    ASSERT_TRUE(refusal.has_value()) << c.head;
    EXPECT_EQ(refusal->status, c.status) << c.head;
    EXPECT_FALSE(refusal->detail.empty());
  }
}

}  // namespace
}  // namespace cog
