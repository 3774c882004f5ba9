#include "server/prediction.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(PredictionJsonTextTest, WritesWhatDumpJsonOfPredictionToJsonWrites) {
  Prediction prediction;
  prediction.id = "p-1";
  EXPECT_EQ(PredictionJsonText(prediction), DumpJson(PredictionToJson(prediction)));

  prediction.input = std::make_shared<const Json>(
      Json{{"s", "caf\xc3\xa9 \"quoted\"\n"}, {"n", 3}, {"f", 0.5}});
  prediction.output = Json::array({1, "two", nullptr, Json{{"x", 1e300}}});
  prediction.logs = std::string("line\r\n\x01 bad \xff byte\n");
  prediction.error = "it broke: \"why\"";
  prediction.status = PredictionStatus::kFailed;
  prediction.created_at = absl::FromUnixMicros(1700000000123456);
  prediction.started_at = absl::FromUnixSeconds(1700000001);
  prediction.completed_at = absl::FromUnixMicros(1700000002000001);
  prediction.metrics = Json{{"predict_time", 1.25}};
  const std::string text = PredictionJsonText(prediction);
  EXPECT_EQ(text, DumpJson(PredictionToJson(prediction)));
  // And it is JSON that reads back as the same prediction.
  absl::StatusOr<Json> parsed = ParseJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["input"], *prediction.input);
  EXPECT_EQ((*parsed)["status"], "failed");
  EXPECT_EQ((*parsed)["logs"], "line\r\n\x01 bad \xef\xbf\xbd byte\n");
}

}  // namespace
}  // namespace cog
