#include "gateway/http_framing.h"

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

TEST(RequestHeadScannerTest, ChunkedSaysWhereItsFieldLineIs) {
  RequestHeadScanner scanner(Limits());
  const std::string head =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nA: b\r\n\r\n";
  ASSERT_EQ(scanner.Scan(head), Result::kComplete);
  EXPECT_EQ(scanner.body().kind, BodyFraming::Kind::kChunked);
  EXPECT_EQ(head.substr(scanner.transfer_encoding_offset(), scanner.transfer_encoding_size()),
            "Transfer-Encoding: Chunked\r\n");
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

}  // namespace
}  // namespace cog
