// HTTP/1.1 request framing, as the front door (front_door.h) reads it: where
// a request's head ends, whether the head keeps to the limits, what it says
// (ParseRequestHead), how its body is delimited, and an incremental decoder of
// chunked bodies.
//
// Pure functions and small value types over bytes: no I/O, no shared state;
// each object is used by one thread at a time.
#ifndef COG_GATEWAY_HTTP_FRAMING_H_
#define COG_GATEWAY_HTTP_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/http_message.h"

namespace cog {

// The longest request line, and the longest header field line, accepted
// (CRLF included; as cpp-httplib 0.11's compiled limits, which the server used
// to run on). Longer ones are refused with a status that says why.
inline constexpr size_t kMaxRequestLineBytes = 8192;
inline constexpr size_t kMaxHeaderLineBytes = 8192;

struct RequestLimits {
  // The whole head: request line, header fields and the blank line.
  size_t max_header_bytes = 64 << 10;
  size_t max_headers = 100;
  uint64_t max_body_bytes = 100 << 20;
};

// An answer the front door gives itself instead of serving the request.
struct Refusal {
  int status = 0;
  std::string detail;  // the {"detail": ...} the client gets
};

// The 413 detail, one wording for every way a body can be too large.
std::string BodyTooLargeDetail(uint64_t max_body_bytes);

// The reason phrase of an error status the server sends ("Bad Request");
// "Error" for one it does not know.
absl::string_view ReasonPhrase(int status);

// How a request's body is delimited (RFC 9112 section 6).
struct BodyFraming {
  enum class Kind {
    kNone,     // neither Content-Length nor Transfer-Encoding: no body
    kLength,   // Content-Length: `length` bytes
    kChunked,  // Transfer-Encoding: chunked
  };
  Kind kind = Kind::kNone;
  uint64_t length = 0;
};

// Finds the end of a request head in bytes that arrive piece by piece, and
// refuses one that breaks a limit as soon as it does, so that no more than
// about `max_header_bytes` is ever held for a head.
//
// Scan() is given the same buffer again each time more has arrived (a longer
// view of the same bytes); it resumes where it stopped, so the cost of a head
// is linear in its size however it is split.
class RequestHeadScanner {
 public:
  enum class Result { kIncomplete, kComplete, kRefused };

  explicit RequestHeadScanner(const RequestLimits& limits) : limits_(limits) {}

  Result Scan(absl::string_view buffer);

  // After kComplete: the head's size (request line to blank line inclusive)
  // and its body framing.
  size_t head_size() const { return head_size_; }
  const BodyFraming& body() const { return body_; }
  // After kRefused.
  const Refusal& refusal() const { return refusal_; }

 private:
  Result Refuse(int status, std::string detail);
  Result RefuseTooLarge();
  // Checks one complete line [start, end) (CRLF excluded); false if refused.
  bool CheckLine(absl::string_view head, size_t start, size_t end);
  bool CheckFieldLine(absl::string_view line, size_t size_with_crlf);

  const RequestLimits limits_;
  size_t scanned_ = 0;     // bytes looked at
  size_t line_start_ = 0;  // where the line being scanned starts
  size_t fields_ = 0;
  size_t head_size_ = 0;
  BodyFraming body_;
  bool has_length_ = false;
  bool has_transfer_encoding_ = false;
  Refusal refusal_;
};

// What a request's head says about how to answer it.
struct ParsedHead {
  int http_minor = 1;            // HTTP/1.<minor>
  bool keep_alive = true;        // the connection may carry another request
  bool expect_continue = false;  // Expect: 100-continue
  bool head_only = false;        // a HEAD request (its method is given as GET)
};

// %XX decoded; a % not followed by two hex digits stays as it is.
std::string PercentDecode(absl::string_view text);

// Parses a head RequestHeadScanner accepted (request line through the blank
// line) into `request`'s method, target, path (without the query, as sent)
// and headers. A request line that is not METHOD SP TARGET SP
// HTTP/1.x, or an Expect other than 100-continue, is refused.
std::optional<Refusal> ParseRequestHead(absl::string_view head, HttpRequest* request,
                                        ParsedHead* parsed);

// Decodes a chunked body (RFC 9112 section 7.1) incrementally, without
// copying: it walks the framing (size lines, the CRLF after each chunk's data,
// the trailer section) and says how many data bytes follow; the caller takes
// them from its buffer as they arrive.
class ChunkedBodyDecoder {
 public:
  enum class State {
    kData,       // data_remaining() bytes of chunk data come next in the input
    kNeedMore,   // the input ends inside framing: append more and call again
    kEnd,        // the last chunk and the trailer section are through
    kMalformed,  // not a chunked body; error() says what is wrong
  };

  // Consumes framing from the front of `input` (adding to *consumed) until
  // chunk data, the end, the end of `input`, or an error.
  State Advance(absl::string_view input, size_t* consumed);
  // In kData: the bytes of the current chunk not yet taken.
  uint64_t data_remaining() const { return remaining_; }
  // Takes `n` <= data_remaining() data bytes.
  void TakeData(size_t n);
  // Data bytes in all the chunk sizes seen so far (the current chunk's whole
  // size included, taken or not): what the body will be at least.
  uint64_t announced() const { return announced_; }
  const std::string& error() const { return error_; }

 private:
  enum class Phase { kSizeLine, kData, kDataEnd, kTrailer, kEnd, kMalformed };
  State Malformed(std::string error);

  Phase phase_ = Phase::kSizeLine;
  uint64_t remaining_ = 0;
  uint64_t announced_ = 0;
  size_t trailer_bytes_ = 0;
  std::string error_;
};

}  // namespace cog

#endif  // COG_GATEWAY_HTTP_FRAMING_H_
