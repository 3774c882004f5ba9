#include "server/predictor_output_log.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Recorded {
  std::vector<std::string> info;
  std::vector<std::string> warnings;
};

class PredictorOutputLogTest : public ::testing::Test {
 protected:
  PredictorOutputLog Make(size_t bytes_per_second) {
    return PredictorOutputLog(
        bytes_per_second, [this] { return now_; },
        [this](bool warning, const std::string& message) {
          (warning ? recorded_.warnings : recorded_.info).push_back(message);
        });
  }
  absl::Time now_ = absl::FromUnixSeconds(1000);
  Recorded recorded_;
};

TEST_F(PredictorOutputLogTest, OneRecordPerLineSayingWhereItCameFrom) {
  PredictorOutputLog log = Make(1 << 20);
  log.Write("stdout", "", "first\nsecond\n");
  log.Write("stderr", "p1", "late line");
  EXPECT_THAT(recorded_.info,
              ElementsAre("predictor stdout outside any prediction: first",
                          "predictor stdout outside any prediction: second",
                          "predictor stderr of prediction p1 after it ended: late line"));
  EXPECT_TRUE(recorded_.warnings.empty());
}

TEST_F(PredictorOutputLogTest, LongLinesAreCutBetweenCharacters) {
  PredictorOutputLog log = Make(1 << 20);
  // "é" is two bytes: the cut must not split one.
  std::string line(PredictorOutputLog::kMaxLineBytes - 1, 'a');
  line += "\xc3\xa9";
  line += std::string(100, 'b');
  log.Write("stdout", "", line + "\n");
  ASSERT_EQ(recorded_.info.size(), 1u);
  const std::string& record = recorded_.info[0];
  EXPECT_THAT(record, HasSubstr("[102 more bytes of this line not logged]"));
  EXPECT_EQ(record.find("\xc3"), std::string::npos);
}

TEST_F(PredictorOutputLogTest, AFloodIsCutAtTheRateAndReportedOnce) {
  PredictorOutputLog log = Make(100);
  for (int i = 0; i < 50; ++i) log.Write("stdout", "", "0123456789\n");  // 11 bytes a line
  EXPECT_EQ(recorded_.info.size(), 9u);  // 99 bytes fit in the second
  EXPECT_TRUE(recorded_.warnings.empty());
  now_ += absl::Milliseconds(999);
  log.Write("stdout", "", "still the same second\n");
  EXPECT_EQ(recorded_.info.size(), 9u);
  now_ += absl::Milliseconds(2);
  log.Write("stdout", "", "next second\n");
  ASSERT_EQ(recorded_.warnings.size(), 1u);
  EXPECT_EQ(recorded_.warnings[0],
            "dropped 42 lines (473 bytes) of predictor output outside any prediction: more "
            "than 100 bytes a second");
  EXPECT_EQ(recorded_.info.back(), "predictor stdout outside any prediction: next second");
  now_ += absl::Seconds(5);
  log.Write("stdout", "", "calm\n");
  EXPECT_EQ(recorded_.warnings.size(), 1u) << "nothing more was dropped";
}

TEST_F(PredictorOutputLogTest, ZeroLogsNothingAndReportsNothing) {
  PredictorOutputLog log = Make(0);
  log.Write("stdout", "", "a\nb\n");
  now_ += absl::Seconds(2);
  log.Write("stderr", "", "c\n");
  EXPECT_TRUE(recorded_.info.empty());
  EXPECT_TRUE(recorded_.warnings.empty());
}

}  // namespace
}  // namespace cog
