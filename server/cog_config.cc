#include "server/cog_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace cog {
namespace {

absl::StatusOr<std::string> Reference(const YAML::Node& root, const char* key) {
  const YAML::Node node = root[key];
  if (!node || node.IsNull()) return std::string();
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cog.yaml: '", key, "' must be a string like \"predict.py:Predictor\""));
  }
  std::string value = node.as<std::string>();
  if (value.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cog.yaml: '", key, ": ", value,
        "' must name a file and an object in it, like \"predict.py:Predictor\""));
  }
  return value;
}

}  // namespace

absl::StatusOr<CogConfig> ParseCogConfig(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cog.yaml is not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError("cog.yaml must be a mapping of keys");
  CogConfig config;
  absl::StatusOr<std::string> predict = Reference(root, "predict");
  if (!predict.ok()) return predict.status();
  absl::StatusOr<std::string> train = Reference(root, "train");
  if (!train.ok()) return train.status();
  config.predict = *predict;
  config.train = *train;
  if (config.predict.empty() && config.train.empty()) {
    return absl::InvalidArgumentError(
        "cog.yaml has neither 'predict' nor 'train': add e.g. predict: \"predict.py:Predictor\"");
  }
  const YAML::Node concurrency = root["concurrency"];
  if (concurrency && concurrency.IsMap() && concurrency["max"]) {
    try {
      config.max_concurrency = concurrency["max"].as<int>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError("cog.yaml: 'concurrency.max' must be a whole number");
    }
    if (config.max_concurrency < 1) {
      return absl::InvalidArgumentError("cog.yaml: 'concurrency.max' must be at least 1");
    }
  }
  return config;
}

absl::StatusOr<CogConfig> LoadCogConfig(const std::string& directory) {
  const std::string path = directory.empty() ? "cog.yaml" : absl::StrCat(directory, "/cog.yaml");
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path,
                                            ": run from the model's directory or pass "
                                            "--working-directory"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseCogConfig(text.str());
}

}  // namespace cog
