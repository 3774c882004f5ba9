#include "server/logging.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"

#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

// %j: the message, escaped to sit inside a JSON string.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char kHex[] = "0123456789abcdef";
            const char escaped[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xf], kHex[c & 0xf]};
            dest.append(escaped, escaped + sizeof(escaped));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

// The innermost CapturedProtobufErrors's last_ on this thread.
thread_local std::string* captured_error = nullptr;

void LogProtobufMessage(google::protobuf::LogLevel level, const char* file, int line,
                        const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_ERROR && captured_error != nullptr) {
    *captured_error = message;
    return;
  }
  spdlog::log(level >= google::protobuf::LOGLEVEL_FATAL     ? spdlog::level::critical
              : level == google::protobuf::LOGLEVEL_ERROR   ? spdlog::level::err
              : level == google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
                                                            : spdlog::level::info,
              "protobuf ({}:{}): {}", file, line, message);
}

void LogGrpcMessage(gpr_log_func_args* args) {
  spdlog::log(args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
              : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                        : spdlog::level::debug,
              "gRPC ({}:{}): {}", args->file, args->line, args->message);
}

}  // namespace

CapturedProtobufErrors::CapturedProtobufErrors() : outer_(captured_error) {
  InstallLibraryLogHandlers();
  captured_error = &last_;
}

CapturedProtobufErrors::~CapturedProtobufErrors() { captured_error = outer_; }

void InstallLibraryLogHandlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    google::protobuf::SetLogHandler(&LogProtobufMessage);
    gpr_set_log_function(&LogGrpcMessage);
  });
}

void SetUpLogging() {
  auto logger = std::make_shared<spdlog::logger>(
      "cog-server", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  const char* format = std::getenv("COG_LOG_FORMAT");
  if (format != nullptr && std::string(format) == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%j"})");
    logger->set_formatter(std::move(formatter));
  }
  const char* level = std::getenv("COG_LOG_LEVEL");
  logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  InstallLibraryLogHandlers();
}

}  // namespace cog
