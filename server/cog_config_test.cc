#include "server/cog_config.h"

#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(CogConfigTest, ReadsPredictTrainAndConcurrencyAndIgnoresTheRest) {
  absl::StatusOr<CogConfig> config = ParseCogConfig(R"(
build:
  python_version: "3.11"
  gpu: true
predict: "predict.py:Predictor"
train: "train.py:train"
concurrency:
  max: 8
image: "r8.im/me/model"
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->predict, "predict.py:Predictor");
  EXPECT_EQ(config->train, "train.py:train");
  EXPECT_EQ(config->max_concurrency, 8);
}

TEST(CogConfigTest, ConcurrencyDefaultsToOne) {
  absl::StatusOr<CogConfig> config = ParseCogConfig("predict: predict.py:predict\n");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->max_concurrency, 1);
  EXPECT_TRUE(config->train.empty());
}

TEST(CogConfigTest, ErrorsSayWhatToWrite) {
  EXPECT_NE(ParseCogConfig("build: {}\n").status().message().find("predict: \"predict.py:Predictor\""),
            std::string::npos);
  EXPECT_NE(ParseCogConfig("predict: predict.py\n").status().message().find("must name a file and an object"),
            std::string::npos);
  EXPECT_NE(ParseCogConfig("predict: p.py:P\nconcurrency:\n  max: lots\n").status().message().find(
                "whole number"),
            std::string::npos);
  EXPECT_NE(ParseCogConfig("predict: [unclosed\n").status().message().find("not valid YAML"),
            std::string::npos);
}

TEST(CogConfigTest, MissingFileNamesThePath) {
  absl::StatusOr<CogConfig> config = LoadCogConfig("/nonexistent/model");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("/nonexistent/model/cog.yaml"), std::string::npos);
}

}  // namespace
}  // namespace cog
