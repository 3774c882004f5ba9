// Server logs: spdlog, one JSON object per line on stderr
// ({"time","level","logger","msg"}), level from COG_LOG_LEVEL (debug, info,
// warn, error; default info). COG_LOG_FORMAT=text gives plain lines instead.
#ifndef COG_SERVER_LOGGING_H_
#define COG_SERVER_LOGGING_H_

#include <string>

namespace cog {

// Installs the default logger. Call once, early in main(). Protobuf's and
// gRPC's own messages go to it too (InstallLibraryLogHandlers), so that every
// line on stderr is in the server's format.
void SetUpLogging();

// Routes protobuf's and gRPC core's log messages to the default logger (once;
// SetUpLogging calls it).
void InstallLibraryLogHandlers();

// While one lives on a thread, protobuf's error messages on that thread are
// kept in it instead of being logged. They are the only place protobuf says
// why a message failed to parse (which string field held invalid UTF-8), and
// a client sending such messages must not write a log line each. Nests.
class CapturedProtobufErrors {
 public:
  CapturedProtobufErrors();
  ~CapturedProtobufErrors();
  CapturedProtobufErrors(const CapturedProtobufErrors&) = delete;
  CapturedProtobufErrors& operator=(const CapturedProtobufErrors&) = delete;

  // The last error message, or empty.
  const std::string& last() const { return last_; }

 private:
  std::string last_;
  std::string* const outer_;  // the enclosing one's last_, or null
};

}  // namespace cog

#endif  // COG_SERVER_LOGGING_H_
