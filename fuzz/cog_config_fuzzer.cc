// cog.yaml parsing: any text gives a config or an error, never a crash or an
// exception, and a config that parses satisfies what the server relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/cog_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cog::CogConfig> config = cog::ParseCogConfig(text);
  if (config.ok()) {
    if (config->predict.empty() && config->train.empty()) std::abort();
    if (config->max_concurrency < 1) std::abort();
    if (!config->predict.empty() && config->predict.find(':') == std::string::npos) std::abort();
    if (!config->train.empty() && config->train.find(':') == std::string::npos) std::abort();
  } else if (config.status().message().empty()) {
    std::abort();  // an error must say what is wrong
  }
  return 0;
}
