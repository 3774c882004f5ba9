#include "server/json_proto.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(StructToJsonTest, KeepsEveryKeyOfAWideStruct) {
  // 100 k keys: appended, not searched for one by one (which took minutes
  // for 200 k over gRPC).
  google::protobuf::Struct wide;
  for (int i = 0; i < 100000; ++i) {
    (*wide.mutable_fields())[absl::StrCat("k", i)].set_number_value(i);
  }
  const Json json = StructToJson(wide);
  ASSERT_EQ(json.size(), 100000u);
  for (int i : {0, 1, 4242, 99999}) EXPECT_EQ(json.at(absl::StrCat("k", i)), i);
}

TEST(StructToJsonTest, RoundTripsNestedValues) {
  const Json original = Json::parse(R"({"a": [1, 2.5, "x", null, true, {"b": []}], "c": {"d": {"e": "f"}}})");
  google::protobuf::Struct message;
  JsonToStruct(original, &message);
  const Json back = StructToJson(message);
  EXPECT_EQ(back["a"], original["a"]);
  EXPECT_EQ(back["c"], original["c"]);
  EXPECT_EQ(back.size(), 2u);
}

}  // namespace
}  // namespace cog
