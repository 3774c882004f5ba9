#include "server/log_backlog.h"

#include <string>

#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(LogBacklogTest, LinesPastTheLimitAreLeftOutAndTheNextEventSaysHowMany) {
  LogBacklog backlog(100);
  EXPECT_TRUE(backlog.Admit(60));
  EXPECT_EQ(backlog.TakeNote(), "");
  EXPECT_TRUE(backlog.Admit(40));  // exactly the limit
  EXPECT_FALSE(backlog.Admit(1));
  EXPECT_FALSE(backlog.Admit(30));
  EXPECT_EQ(backlog.waiting(), 100u);
  backlog.Taken(70);
  EXPECT_TRUE(backlog.Admit(10));
  const std::string note = backlog.TakeNote();
  EXPECT_EQ(note.rfind("[cog-server: 31 bytes of logs left out of this stream here", 0), 0u) << note;
  EXPECT_EQ(note.back(), '\n');
  EXPECT_EQ(backlog.waiting(), 30u + 10u + note.size());
  // Said once.
  EXPECT_EQ(backlog.TakeNote(), "");
  backlog.TakenAll();
  EXPECT_EQ(backlog.waiting(), 0u);
}

TEST(LogBacklogTest, MetricEventsShareTheBoundAndAreCountedApart) {
  LogBacklog backlog(100);
  EXPECT_TRUE(backlog.AdmitMetric(60));
  EXPECT_TRUE(backlog.Admit(40));
  EXPECT_FALSE(backlog.AdmitMetric(21));
  EXPECT_FALSE(backlog.AdmitMetric(21));
  EXPECT_FALSE(backlog.Admit(5));
  backlog.TakenAll();
  const std::string note = backlog.TakeNote();
  EXPECT_EQ(note,
            "[cog-server: 5 bytes of logs left out of this stream here: its client read them more slowly than "
            "they came (the prediction's logs keep the last --max-log-bytes)]\n"
            "[cog-server: 2 metric events left out of this stream here: its client read them more slowly than "
            "they came (the completed event's metrics count them all)]\n");
  EXPECT_EQ(backlog.TakeNote(), "");
}

TEST(LogBacklogTest, ALineLargerThanTheLimitGoesWhenNothingWaits) {
  LogBacklog backlog(100);
  EXPECT_TRUE(backlog.Admit(500));
  EXPECT_FALSE(backlog.Admit(1));
  backlog.Taken(1000);  // more than waited: nothing waits, not a wrap-around
  EXPECT_EQ(backlog.waiting(), 0u);
  EXPECT_TRUE(backlog.Admit(500));
  EXPECT_NE(backlog.TakeNote(), "");
}

TEST(LogBacklogTest, ZeroIsNoLimit) {
  LogBacklog backlog(0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(backlog.Admit(1 << 20));
  EXPECT_EQ(backlog.TakeNote(), "");
}

}  // namespace
}  // namespace cog
