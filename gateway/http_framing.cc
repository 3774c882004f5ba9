#include "gateway/http_framing.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cog {
namespace {

// RFC 9110 section 5.6.2: the characters of a field name.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

absl::string_view TrimSpaceAndTab(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A chunk size line is a few hex digits and perhaps an extension; nothing
// legitimate comes near this.
constexpr size_t kMaxChunkSizeLineBytes = 1024;
// Trailer fields are ignored; they may not grow without bound either.
constexpr size_t kMaxTrailerBytes = 8192;

}  // namespace

std::string BodyTooLargeDetail(uint64_t max_body_bytes) {
  return absl::StrCat("Request body is larger than ", max_body_bytes,
                      " bytes; raise --max-body-bytes to accept it");
}

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

RequestHeadScanner::Result RequestHeadScanner::Refuse(int status, std::string detail) {
  refusal_ = Refusal{status, std::move(detail)};
  return Result::kRefused;
}

RequestHeadScanner::Result RequestHeadScanner::RefuseTooLarge() {
  return Refuse(431, absl::StrCat("Request headers are larger than ", limits_.max_header_bytes,
                                  " bytes; raise --max-header-bytes to accept them"));
}

RequestHeadScanner::Result RequestHeadScanner::Scan(absl::string_view buffer) {
  if (!refusal_.detail.empty()) return Result::kRefused;
  if (head_size_ != 0) return Result::kComplete;
  while (scanned_ < buffer.size()) {
    const size_t lf = buffer.find('\n', scanned_);
    if (lf == absl::string_view::npos) {
      // The line is not complete yet: refuse it as soon as it is too long,
      // rather than hold whatever the client keeps sending.
      scanned_ = buffer.size();
      const size_t partial = buffer.size() - line_start_;
      if (line_start_ == 0 && partial > kMaxRequestLineBytes) {
        return Refuse(414, absl::StrCat("Request line is longer than ", kMaxRequestLineBytes,
                                        " bytes"));
      }
      if (line_start_ > 0 && partial > kMaxHeaderLineBytes) {
        return Refuse(431, absl::StrCat("A request header field is longer than ",
                                        kMaxHeaderLineBytes, " bytes"));
      }
      if (buffer.size() > limits_.max_header_bytes) return RefuseTooLarge();
      return Result::kIncomplete;
    }
    if (lf == line_start_ || buffer[lf - 1] != '\r') {
      return Refuse(400, "Malformed request: lines must end with CRLF");
    }
    const size_t end = lf - 1;  // the line without its CRLF
    if (lf + 1 > limits_.max_header_bytes) return RefuseTooLarge();
    if (end == line_start_) {  // the blank line
      if (line_start_ == 0) return Refuse(400, "Malformed request: no request line");
      if (has_length_ && has_transfer_encoding_) {
        // Two framings: whoever picks the other one reads a different request
        // (request smuggling). RFC 9112 section 6.3 allows refusing it.
        return Refuse(400, "Malformed request: both Content-Length and Transfer-Encoding");
      }
      if (body_.kind == BodyFraming::Kind::kLength && body_.length > limits_.max_body_bytes) {
        return Refuse(413, BodyTooLargeDetail(limits_.max_body_bytes));
      }
      head_size_ = lf + 1;
      return Result::kComplete;
    }
    if (!CheckLine(buffer, line_start_, end)) return Result::kRefused;
    line_start_ = lf + 1;
    scanned_ = lf + 1;
  }
  if (buffer.size() > limits_.max_header_bytes) return RefuseTooLarge();
  return Result::kIncomplete;
}

bool RequestHeadScanner::CheckLine(absl::string_view head, size_t start, size_t end) {
  absl::string_view line = head.substr(start, end - start);
  const size_t size_with_crlf = line.size() + 2;
  if (line.find('\r') != absl::string_view::npos || line.find('\0') != absl::string_view::npos) {
    Refuse(400, "Malformed request: a stray CR or NUL in the head");
    return false;
  }
  if (start == 0) {  // the request line; ParseRequestHead reads the rest of it
    if (size_with_crlf > kMaxRequestLineBytes) {
      Refuse(414, absl::StrCat("Request line is longer than ", kMaxRequestLineBytes, " bytes"));
      return false;
    }
    return true;
  }
  return CheckFieldLine(line, size_with_crlf);
}

bool RequestHeadScanner::CheckFieldLine(absl::string_view line, size_t size_with_crlf) {
  if (size_with_crlf > kMaxHeaderLineBytes) {
    Refuse(431, absl::StrCat("A request header field is longer than ", kMaxHeaderLineBytes,
                             " bytes"));
    return false;
  }
  if (++fields_ > limits_.max_headers) {
    Refuse(431, absl::StrCat("Request has more than ", limits_.max_headers,
                             " header fields; raise --max-headers to accept them"));
    return false;
  }
  // A field name is a token right before the colon. Anything else (a folded
  // continuation line, "Name : value") is refused (RFC 9112 section 5.1):
  // a proxy in front could read such a line differently, and the two must
  // agree on the framing.
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    Refuse(400, "Malformed request: a header line without a field name and colon");
    return false;
  }
  const absl::string_view name = line.substr(0, colon);
  for (char c : name) {
    if (!IsTokenChar(c)) {
      Refuse(400, "Malformed request: a header field name with a character not allowed there");
      return false;
    }
  }
  const absl::string_view value = TrimSpaceAndTab(line.substr(colon + 1));
  if (absl::EqualsIgnoreCase(name, "Content-Length")) {
    uint64_t length = 0;
    const bool digits_only =
        !value.empty() && value.size() <= 19 &&
        std::all_of(value.begin(), value.end(),
                    [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
    if (digits_only) {
      for (char c : value) length = length * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!digits_only || (has_length_ && length != body_.length)) {
      Refuse(400, "Malformed request: Content-Length is not one decimal number");
      return false;
    }
    has_length_ = true;
    body_ = BodyFraming{BodyFraming::Kind::kLength, length};
  } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
    if (has_transfer_encoding_) {
      Refuse(400, "Malformed request: Transfer-Encoding given more than once");
      return false;
    }
    if (!absl::EqualsIgnoreCase(value, "chunked")) {
      Refuse(501, "Transfer-Encoding other than chunked is not supported");
      return false;
    }
    has_transfer_encoding_ = true;
    body_ = BodyFraming{BodyFraming::Kind::kChunked, 0};
  }
  if (has_transfer_encoding_) body_.kind = BodyFraming::Kind::kChunked;
  return true;
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
        HexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

namespace {

Refusal BadRequestLine() {
  return Refusal{400, "Malformed request line: expected METHOD TARGET HTTP/1.1"};
}

}  // namespace

std::optional<Refusal> ParseRequestHead(absl::string_view head, HttpRequest* request,
                                        ParsedHead* parsed) {
  const size_t line_end = head.find("\r\n");
  const absl::string_view line = head.substr(0, line_end);
  const size_t first_space = line.find(' ');
  const size_t last_space = line.rfind(' ');
  if (first_space == absl::string_view::npos || first_space == 0 || first_space == last_space) {
    return BadRequestLine();
  }
  const absl::string_view method = line.substr(0, first_space);
  const absl::string_view target = line.substr(first_space + 1, last_space - first_space - 1);
  const absl::string_view version = line.substr(last_space + 1);
  if (!std::all_of(method.begin(), method.end(), IsTokenChar) || target.empty() ||
      target.find(' ') != absl::string_view::npos) {
    return BadRequestLine();
  }
  if (version == "HTTP/1.1") {
    parsed->http_minor = 1;
  } else if (version == "HTTP/1.0") {
    parsed->http_minor = 0;
  } else if (absl::StartsWith(version, "HTTP/")) {
    return Refusal{505, absl::StrCat("HTTP version ", version.substr(5),
                                     " is not supported; send HTTP/1.1 or HTTP/1.0")};
  } else {
    return BadRequestLine();
  }
  // The path: origin form (/path?query), or the path of an absolute form
  // (http://host/path), or * (OPTIONS).
  absl::string_view path = target;
  if (path.front() != '/' && path != "*") {
    const size_t scheme_end = path.find("://");
    if (scheme_end == absl::string_view::npos ||
        !(absl::EqualsIgnoreCase(path.substr(0, scheme_end), "http") ||
          absl::EqualsIgnoreCase(path.substr(0, scheme_end), "https"))) {
      return Refusal{400, "Malformed request target: expected a path starting with /"};
    }
    const size_t slash = path.find('/', scheme_end + 3);
    path = slash == absl::string_view::npos ? absl::string_view("/") : path.substr(slash);
  }
  path = path.substr(0, path.find_first_of("?#"));
  request->method.assign(method.data(), method.size());
  request->target.assign(target.data(), target.size());
  request->path = std::string(path);
  if (request->method == "HEAD") {
    request->method = "GET";
    parsed->head_only = true;
  }

  bool close = false;
  bool keep_alive = false;
  size_t start = line_end + 2;
  while (start < head.size()) {
    const size_t end = head.find("\r\n", start);
    if (end == absl::string_view::npos || end == start) break;  // the blank line
    const absl::string_view field = head.substr(start, end - start);
    start = end + 2;
    const size_t colon = field.find(':');  // the scanner checked there is one
    const absl::string_view name = field.substr(0, colon);
    const absl::string_view value = TrimSpaceAndTab(field.substr(colon + 1));
    request->headers.emplace_back(std::string(name), std::string(value));
    if (absl::EqualsIgnoreCase(name, "Connection")) {
      for (absl::string_view option : absl::StrSplit(value, ',')) {
        option = TrimSpaceAndTab(option);
        close = close || absl::EqualsIgnoreCase(option, "close");
        keep_alive = keep_alive || absl::EqualsIgnoreCase(option, "keep-alive");
      }
    } else if (absl::EqualsIgnoreCase(name, "Expect") && parsed->http_minor >= 1) {
      // An HTTP/1.0 request's Expect is ignored (RFC 9110 section 10.1.1).
      if (!absl::EqualsIgnoreCase(value, "100-continue")) {
        return Refusal{417, absl::StrCat("Expect: ", value, " is not supported (only 100-continue)")};
      }
      parsed->expect_continue = true;
    }
  }
  parsed->keep_alive = !close && (parsed->http_minor >= 1 || keep_alive);
  return std::nullopt;
}

ChunkedBodyDecoder::State ChunkedBodyDecoder::Malformed(std::string error) {
  error_ = absl::StrCat("Malformed chunked request body: ", error);
  phase_ = Phase::kMalformed;
  return State::kMalformed;
}

void ChunkedBodyDecoder::TakeData(size_t n) { remaining_ -= n; }

ChunkedBodyDecoder::State ChunkedBodyDecoder::Advance(absl::string_view input, size_t* consumed) {
  while (true) {
    const absl::string_view rest = input.substr(std::min(*consumed, input.size()));
    switch (phase_) {
      case Phase::kSizeLine: {
        const size_t lf = rest.find('\n');
        if (lf == absl::string_view::npos) {
          if (rest.size() > kMaxChunkSizeLineBytes) return Malformed("a chunk size line is too long");
          return State::kNeedMore;
        }
        if (lf == 0 || rest[lf - 1] != '\r') return Malformed("a chunk size line without CRLF");
        const absl::string_view line = rest.substr(0, lf - 1);
        size_t i = 0;
        uint64_t size = 0;
        for (; i < line.size() && absl::ascii_isxdigit(static_cast<unsigned char>(line[i])); ++i) {
          if (size > (std::numeric_limits<uint64_t>::max() >> 4)) {
            return Malformed("a chunk size too large");
          }
          const char c = absl::ascii_tolower(static_cast<unsigned char>(line[i]));
          size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        if (i == 0) return Malformed("a chunk size that is not a hex number");
        // What may follow the size: whitespace and a chunk extension, ignored.
        const absl::string_view after = TrimSpaceAndTab(line.substr(i));
        if (!after.empty() && after.front() != ';') {
          return Malformed("a chunk size that is not a hex number");
        }
        if (after.find('\0') != absl::string_view::npos || after.find('\r') != absl::string_view::npos) {
          return Malformed("a stray CR or NUL in a chunk extension");
        }
        *consumed += lf + 1;
        if (size == 0) {
          phase_ = Phase::kTrailer;
          break;
        }
        if (size > std::numeric_limits<uint64_t>::max() - announced_) {
          return Malformed("chunk sizes too large");
        }
        announced_ += size;
        remaining_ = size;
        phase_ = Phase::kData;
        return State::kData;
      }
      case Phase::kData:
        if (remaining_ > 0) return State::kData;
        phase_ = Phase::kDataEnd;
        break;
      case Phase::kDataEnd:
        if (rest.size() < 2) {
          if (!rest.empty() && rest[0] != '\r') return Malformed("chunk data without CRLF after it");
          return State::kNeedMore;
        }
        if (rest[0] != '\r' || rest[1] != '\n') {
          return Malformed("chunk data longer than its size, or without CRLF after it");
        }
        *consumed += 2;
        phase_ = Phase::kSizeLine;
        break;
      case Phase::kTrailer: {
        const size_t lf = rest.find('\n');
        if (lf == absl::string_view::npos) {
          if (trailer_bytes_ + rest.size() > kMaxTrailerBytes) {
            return Malformed("a trailer section too large");
          }
          return State::kNeedMore;
        }
        if (lf == 0 || rest[lf - 1] != '\r') return Malformed("a trailer line without CRLF");
        *consumed += lf + 1;
        trailer_bytes_ += lf + 1;
        if (trailer_bytes_ > kMaxTrailerBytes) return Malformed("a trailer section too large");
        if (lf == 1) {
          phase_ = Phase::kEnd;
          return State::kEnd;
        }
        break;  // a trailer field: ignored
      }
      case Phase::kEnd:
        return State::kEnd;
      case Phase::kMalformed:
        return State::kMalformed;
    }
  }
}

}  // namespace cog
