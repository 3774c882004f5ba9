#include "server/finished_predictions.h"

#include <string>

#include "gtest/gtest.h"

namespace cog {
namespace {

std::shared_ptr<const Prediction> Done(const std::string& id, const std::string& output = "ok") {
  auto prediction = std::make_shared<Prediction>();
  prediction->id = id;
  prediction->status = PredictionStatus::kSucceeded;
  prediction->output = output;
  return prediction;
}

struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  std::function<absl::Time()> fn() {
    return [this] { return now; };
  }
};

TEST(FinishedPredictionsTest, FindsWhatWasAddedWithItsResult) {
  FinishedPredictions store({});
  store.Add(Done("a", "hello"));
  auto found = store.Find("a");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->output, "hello");
  EXPECT_EQ(found->status, PredictionStatus::kSucceeded);
  EXPECT_EQ(store.Find("b"), nullptr);
}

TEST(FinishedPredictionsTest, KeepsAtMostMaxCountDroppingTheOldest) {
  FinishedPredictions::Options options;
  options.max_count = 3;
  FinishedPredictions store(options);
  for (const char* id : {"1", "2", "3", "4", "5"}) store.Add(Done(id));
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.Find("1"), nullptr);
  EXPECT_EQ(store.Find("2"), nullptr);
  for (const char* id : {"3", "4", "5"}) EXPECT_NE(store.Find(id), nullptr) << id;
}

TEST(FinishedPredictionsTest, ForgetsAPredictionOnceItsTtlHasPassed) {
  FakeClock clock;
  FinishedPredictions::Options options;
  options.ttl = absl::Seconds(60);
  options.now = clock.fn();
  FinishedPredictions store(options);
  store.Add(Done("early"));
  clock.now += absl::Seconds(30);
  store.Add(Done("late"));
  clock.now += absl::Seconds(29);
  EXPECT_NE(store.Find("early"), nullptr);
  clock.now += absl::Seconds(1);  // 60 s after "early" was added
  EXPECT_EQ(store.Find("early"), nullptr);
  EXPECT_NE(store.Find("late"), nullptr);
  EXPECT_EQ(store.size(), 1u);
  clock.now += absl::Seconds(30);
  EXPECT_EQ(store.Find("late"), nullptr);
  EXPECT_EQ(store.size(), 0u);
}

TEST(FinishedPredictionsTest, KeepsItsBytesUnderMaxBytes) {
  FinishedPredictions::Options options;
  const size_t one = FinishedPredictions::ApproximateBytes(*Done("a", std::string(1000, 'x')));
  options.max_bytes = 2 * one + one / 2;
  FinishedPredictions store(options);
  store.Add(Done("a", std::string(1000, 'x')));
  store.Add(Done("b", std::string(1000, 'x')));
  store.Add(Done("c", std::string(1000, 'x')));
  EXPECT_EQ(store.Find("a"), nullptr);
  EXPECT_NE(store.Find("b"), nullptr);
  EXPECT_NE(store.Find("c"), nullptr);
  // Larger than the whole budget: not kept, and nothing else is pushed out for it.
  store.Add(Done("huge", std::string(10 * one, 'x')));
  EXPECT_EQ(store.Find("huge"), nullptr);
  EXPECT_NE(store.Find("b"), nullptr);
  EXPECT_NE(store.Find("c"), nullptr);
}

TEST(FinishedPredictionsTest, AnIdThatRunsAgainReplacesItsEarlierResult) {
  FinishedPredictions::Options options;
  options.max_count = 2;
  FinishedPredictions store(options);
  store.Add(Done("same", "first"));
  store.Add(Done("other"));
  store.Add(Done("same", "second"));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.Find("same")->output, "second");
  EXPECT_NE(store.Find("other"), nullptr);
  // "same" is now the newest: the next one pushes out "other".
  store.Add(Done("third"));
  EXPECT_EQ(store.Find("other"), nullptr);
  EXPECT_NE(store.Find("same"), nullptr);
}

TEST(FinishedPredictionsTest, MaxCountZeroKeepsNothing) {
  FinishedPredictions::Options options;
  options.max_count = 0;
  FinishedPredictions store(options);
  store.Add(Done("a"));
  EXPECT_EQ(store.Find("a"), nullptr);
}

TEST(FinishedPredictionsTest, CountsNestedOutputsWithoutRecursingOnTheirDepth) {
  Prediction deep;
  deep.id = "deep";
  Json value = "leaf";
  for (int i = 0; i < 100000; ++i) {
    Json outer = Json::array();
    outer.push_back(std::move(value));
    value = std::move(outer);
  }
  deep.output = std::move(value);
  EXPECT_GT(FinishedPredictions::ApproximateBytes(deep), 100000u);
}

}  // namespace
}  // namespace cog
