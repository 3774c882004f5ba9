// CogConfig: what cog-server reads from cog.yaml.
//
// `predict: "predict.py:Predictor"`, optional `train: "train.py:train"`,
// optional `concurrency: {max: N}`. Every other key (build, image, ...) is
// ignored. Plain value.
#ifndef COG_SERVER_COG_CONFIG_H_
#define COG_SERVER_COG_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"

namespace cog {

struct CogConfig {
  std::string predict;  // "path/to/file.py:Name"
  std::string train;    // empty when absent
  int max_concurrency = 1;
};

// Parses cog.yaml text. Errors name the key and say what is expected.
absl::StatusOr<CogConfig> ParseCogConfig(const std::string& yaml_text);
// Reads <directory>/cog.yaml.
absl::StatusOr<CogConfig> LoadCogConfig(const std::string& directory);

}  // namespace cog

#endif  // COG_SERVER_COG_CONFIG_H_
