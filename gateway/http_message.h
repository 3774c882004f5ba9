// HttpRequest and HttpResponse: what the front door (front_door.h) hands a
// handler and what the handler answers with.
#ifndef COG_GATEWAY_HTTP_MESSAGE_H_
#define COG_GATEWAY_HTTP_MESSAGE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace cog {

// Lets a handler that waits for its answer to be made on another thread
// (a sync prediction: the thread that reads the runner's Done) have that
// thread send it, instead of waking the connection's thread to do it: one
// thread hand-off less before the client has its answer.
class EarlyAnswer {
 public:
  virtual ~EarlyAnswer() = default;
  // Sends this answer (never streamed) now, from any thread, at most once and
  // only while the handler is still running. What the handler then puts in
  // its HttpResponse is not sent. True if it went whole, the connection
  // stays open and the client's next request has not come yet: the
  // connection's thread then has nothing to do until it comes, and a handler
  // waiting on the client's socket (HttpRequest::socket) need not be woken.
  virtual bool Send(int status, absl::string_view content_type, std::string body) = 0;
};

struct HttpRequest {
  std::string method;  // as sent, e.g. "POST"; HEAD reaches handlers as GET
  std::string target;  // as sent: path and query
  // The target's path, as sent (percent-encoded): split on '/' before its
  // segments are decoded (PercentDecode), so that an id holding a '/' (sent
  // as %2F) is one segment.
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed
  // The whole body, chunked ones decoded. Its capacity leaves kJsonPadding
  // (server/json.h) past the end, so that the JSON parser reads it in place.
  std::string body;
  // The client's connection: a handler that waits may poll it for the
  // client's close or next request. Only for that; the front door reads and
  // writes it.
  int socket = -1;
  // Readable once the server stops (an eventfd; -1: none): a handler that
  // waits may poll it too.
  int stop_event = -1;
  // Null if the front door offers none.
  EarlyAnswer* early_answer = nullptr;
  // Set for a body counted in the server's budget for bodies
  // (--max-buffered-body-bytes): call once it is parsed and let go; else it is
  // counted until the request is answered. A body's parse takes several times
  // its size, so the budget bounds that too.
  std::function<void()> release_body;

  // The first field of this name (case-insensitive), or null.
  const std::string* Header(absl::string_view name) const {
    for (const auto& [field, value] : headers) {
      if (absl::EqualsIgnoreCase(field, name)) return &value;
    }
    return nullptr;
  }
};

// Writes a streamed response's body, piece by piece, on the connection's
// thread (HttpResponse::stream).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Sends `data` now; false once the client is gone (nothing more can go).
  virtual bool Write(absl::string_view data) = 0;
  // Sends what of `data` the socket takes at once, without waiting; may be
  // called from another thread than the connection's, provided no other call
  // on this writer runs at the same time (the caller orders them). What did
  // not go, framed already, is left in `rest`, to be sent with WriteFramed
  // before anything else. False once the client is gone.
  virtual bool WriteNow(absl::string_view data, std::string* rest) = 0;
  // Sends bytes that WriteNow left, as they are; false once the client is gone.
  virtual bool WriteFramed(absl::string_view framed) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // empty: none
  std::vector<std::pair<std::string, std::string>> headers;  // more fields, as given
  std::string body;
  // If set, the body is streamed instead (chunked): called once, on the
  // connection's thread, after the head is sent; the response ends when it
  // returns.
  std::function<void(ResponseWriter&)> stream;

  void Reply(int status_code, std::string type, std::string text) {
    status = status_code;
    content_type = std::move(type);
    body = std::move(text);
  }
};

}  // namespace cog

#endif  // COG_GATEWAY_HTTP_MESSAGE_H_
