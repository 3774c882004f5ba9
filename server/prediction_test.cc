#include "server/prediction.h"

#include <random>

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

TEST(FormatTimestampTest, WritesWhatAbslFormatTimeWrites) {
  // As Python's isoformat(): microseconds only when there are some.
  EXPECT_EQ(FormatTimestamp(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00+00:00");
  EXPECT_EQ(FormatTimestamp(absl::FromUnixMicros(1700000000123456)), "2023-11-14T22:13:20.123456+00:00");
  EXPECT_EQ(FormatTimestamp(absl::FromUnixMicros(951782400000001)), "2000-02-29T00:00:00.000001+00:00");
  EXPECT_EQ(FormatTimestamp(absl::FromUnixSeconds(-1)), "1969-12-31T23:59:59+00:00");
  EXPECT_EQ(FormatTimestamp(absl::FromUnixMicros(-1)), "1969-12-31T23:59:59.999999+00:00");
  EXPECT_EQ(FormatTimestamp(absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone())),
            "0001-01-01T00:00:00+00:00");  // datetime.min.isoformat()
  EXPECT_EQ(FormatTimestamp(absl::FromCivil(absl::CivilSecond(400, 2, 29, 0, 0, 0), absl::UTCTimeZone())),
            "0400-02-29T00:00:00+00:00");
  // Leap days, century years (2100 is no leap year, 2000 is), ends of months and
  // years, whole and fractional seconds, and random times from year 1000 to 9999
  // (cctz writes the year without leading zeros, Python with).
  const auto reference = [](absl::Time time) {
    const bool whole = time == absl::FromUnixSeconds(absl::ToUnixSeconds(time));
    return absl::FormatTime(whole ? "%Y-%m-%dT%H:%M:%S+00:00" : "%Y-%m-%dT%H:%M:%E6S+00:00", time,
                            absl::UTCTimeZone());
  };
  const absl::TimeZone utc = absl::UTCTimeZone();
  for (int year : {1000, 1600, 1900, 1969, 1970, 1999, 2000, 2024, 2100, 2400, 9999}) {
    for (int month = 1; month <= 12; ++month) {
      for (int day : {1, 28, 29, 30, 31}) {
        const absl::Time time = absl::FromCivil(absl::CivilSecond(year, month, day, 23, 59, 59), utc);
        EXPECT_EQ(FormatTimestamp(time), reference(time));
        EXPECT_EQ(FormatTimestamp(time + absl::Microseconds(999999)), reference(time + absl::Microseconds(999999)));
      }
    }
  }
  std::mt19937_64 random(11);
  const int64_t first = absl::ToUnixMicros(absl::FromCivil(absl::CivilSecond(1000, 1, 1, 0, 0, 0), utc));
  const int64_t last = absl::ToUnixMicros(absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), utc));
  std::uniform_int_distribution<int64_t> micros(first, last);
  for (int i = 0; i < 100000; ++i) {
    const absl::Time time = absl::FromUnixMicros(micros(random));
    ASSERT_EQ(FormatTimestamp(time), reference(time));
    const absl::Time whole = absl::FromUnixSeconds(absl::ToUnixSeconds(time));
    ASSERT_EQ(FormatTimestamp(whole), reference(whole));
  }
  // Outside four-digit years, and infinite times: what cctz writes.
  EXPECT_EQ(FormatTimestamp(absl::InfiniteFuture()), "infinite-future");
}

}  // namespace
}  // namespace cog
