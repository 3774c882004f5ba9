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

TEST(StructDepthTest, CountsListsAndObjectsAsJsonDoes) {
  // {"a": 1, "b": [[{}]], "c": {"d": []}}: the object, two lists, an object.
  google::protobuf::Struct value;
  JsonToStruct(Json::parse(R"({"a": 1, "b": [[{}]], "c": {"d": []}})"), &value);
  EXPECT_EQ(StructDepth(value, 100), 4);
  EXPECT_EQ(StructDepth(google::protobuf::Struct(), 100), 1);
}

TEST(StructDepthTest, StopsCountingPastTheLimit) {
  google::protobuf::Struct value;
  google::protobuf::Struct* inner = &value;
  for (int i = 0; i < 1000; ++i) {
    inner = (*inner->mutable_fields())["a"].mutable_struct_value();
  }
  EXPECT_EQ(StructDepth(value, 2000), 1001);
  EXPECT_EQ(StructDepth(value, 10), 11);  // past 10: no further
}

}  // namespace
}  // namespace cog
