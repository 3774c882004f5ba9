// Server logs: spdlog, one JSON object per line on stderr
// ({"time","level","logger","msg"}), level from COG_LOG_LEVEL (debug, info,
// warn, error; default info). COG_LOG_FORMAT=text gives plain lines instead.
#ifndef COG_SERVER_LOGGING_H_
#define COG_SERVER_LOGGING_H_

namespace cog {

// Installs the default logger. Call once, early in main().
void SetUpLogging();

}  // namespace cog

#endif  // COG_SERVER_LOGGING_H_
