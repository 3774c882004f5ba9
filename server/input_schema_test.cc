#include "server/input_schema.h"

#include "gtest/gtest.h"

namespace cog {
namespace {

// The Input component of legacy Cog's "constraints" capture, trimmed.
const char kDocument[] = R"({
  "components": {"schemas": {
    "Input": {
      "type": "object", "title": "Input", "required": ["prompt"],
      "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 5, "title": "Prompt", "x-order": 0},
        "n": {"type": "integer", "minimum": 1.0, "maximum": 10.0, "default": 1, "x-order": 1},
        "temperature": {"type": "number", "maximum": 2.0, "default": 0.7, "x-order": 2},
        "mode": {"default": "fast", "x-order": 3, "allOf": [{"$ref": "#/components/schemas/mode"}]},
        "tag": {"type": "string", "pattern": "^[a-z]+$", "default": "abc", "x-order": 4},
        "seed": {"type": "integer", "nullable": true, "x-order": 5},
        "flag": {"type": "boolean", "default": false, "x-order": 6},
        "files": {"type": "array", "items": {"type": "string", "format": "uri"}, "nullable": true, "x-order": 7}
      }
    },
    "mode": {"type": "string", "enum": ["fast", "slow"], "title": "mode"}
  }}
})";

InputSchema Schema() {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(kDocument), "Input");
  EXPECT_TRUE(schema.ok()) << schema.status();
  return *schema;
}

Json Errors(const Json& input) {
  absl::StatusOr<InputSchema::Validated> result = Schema().Validate(input);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  std::optional<Json> detail = ValidationDetail(result.status());
  EXPECT_TRUE(detail.has_value());
  return detail.value_or(Json::array());
}

TEST(InputSchemaTest, FillsDefaultsInSchemaOrderAndDropsUnknownKeys) {
  absl::StatusOr<InputSchema::Validated> result =
      Schema().Validate(Json::parse(R"({"extra": 1, "prompt": "p"})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->input.dump(),
            R"({"prompt":"p","n":1,"temperature":0.7,"mode":"fast","tag":"abc","seed":null,)"
            R"("flag":false,"files":null})");
  EXPECT_EQ(result->unknown_keys, std::vector<std::string>{"extra"});
}

TEST(InputSchemaTest, CoercesTheWayLegacyCogDoes) {
  absl::StatusOr<InputSchema::Validated> result = Schema().Validate(
      Json::parse(R"({"prompt": "p", "n": "3", "temperature": 2, "flag": "yes", "seed": 4.0})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->input["n"], 3);
  EXPECT_TRUE(result->input["temperature"].is_number_float());
  EXPECT_EQ(result->input["temperature"].dump(), "2.0");
  EXPECT_EQ(result->input["flag"], true);
  EXPECT_EQ(result->input["seed"], 4);
}

TEST(InputSchemaTest, MissingRequiredField) {
  EXPECT_EQ(Errors(Json::parse(R"({"n": 3})")).dump(),
            R"([{"type":"missing","loc":["body","input","prompt"],"msg":"Field required","input":{"n":3}}])");
}

TEST(InputSchemaTest, NumberIsNeverAString) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": 123})")).dump(),
            R"([{"type":"string_type","loc":["body","input","prompt"],"msg":"Input should be a valid string","input":123}])");
}

TEST(InputSchemaTest, NullOnlyForNullable) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": null})"))[0]["type"], "string_type");
  absl::StatusOr<InputSchema::Validated> ok = Schema().Validate(Json::parse(R"({"prompt": "p", "seed": null})"));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->input["seed"].is_null());
}

TEST(InputSchemaTest, IntegerErrors) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": 2.5})")).dump(),
            R"([{"type":"int_from_float","loc":["body","input","n"],"msg":"Input should be a valid integer, got a number with a fractional part","input":2.5}])");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": "abc"})"))[0]["type"], "int_parsing");
}

TEST(InputSchemaTest, RangesCarryContextLikePydantic) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": 11})")).dump(),
            R"([{"type":"less_than_equal","loc":["body","input","n"],"msg":"Input should be less than or equal to 10","input":11,"ctx":{"le":10}}])");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "temperature": 2.5})")).dump(),
            R"([{"type":"less_than_equal","loc":["body","input","temperature"],"msg":"Input should be less than or equal to 2","input":2.5,"ctx":{"le":2.0}}])");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": 0})"))[0]["msg"],
            "Input should be greater than or equal to 1");
}

TEST(InputSchemaTest, ChoicesLengthsAndPattern) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "mode": "medium"})")).dump(),
            R"([{"type":"enum","loc":["body","input","mode"],"msg":"Input should be 'fast' or 'slow'","input":"medium","ctx":{"expected":"'fast' or 'slow'"}}])");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": ""})"))[0]["msg"], "String should have at least 1 character");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "toolong"})"))[0]["msg"], "String should have at most 5 characters");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "tag": "ABC"})"))[0]["msg"],
            "String should match pattern '^[a-z]+$'");
}

TEST(InputSchemaTest, BooleanSpellings) {
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "flag": "maybe"})"))[0]["type"], "bool_parsing");
  for (const char* yes : {R"("true")", R"("1")", R"("on")", "1"}) {
    absl::StatusOr<InputSchema::Validated> result =
        Schema().Validate(Json::parse(std::string(R"({"prompt": "p", "flag": )") + yes + "}"));
    ASSERT_TRUE(result.ok()) << yes;
    EXPECT_EQ(result->input["flag"], true) << yes;
  }
}

TEST(InputSchemaTest, OneErrorPerProblemAndListItemsLocated) {
  Json errors = Errors(Json::parse(R"({"prompt": "p", "n": "abc", "mode": "medium", "files": ["https://x/a", 3]})"));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","n"])"));
  EXPECT_EQ(errors[1]["loc"], Json::parse(R"(["body","input","mode"])"));
  EXPECT_EQ(errors[2]["loc"], Json::parse(R"(["body","input","files",1])"));
}

TEST(InputSchemaTest, PathValuesAreLocatedAndMustBeFetchable) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({"components": {"schemas": {
    "Input": {"type": "object", "properties": {
      "image": {"type": "string", "format": "uri", "x-order": 0},
      "pair": {"x-order": 1, "allOf": [{"$ref": "#/components/schemas/Pair"}]},
      "by_name": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}, "x-order": 2},
      "url_as_text": {"type": "string", "x-order": 3}}},
    "Pair": {"type": "object", "properties": {
      "a": {"type": "string", "format": "uri"},
      "b": {"type": "array", "items": {"type": "string", "format": "uri"}}}}}}})"),
                                                               "Input");
  ASSERT_TRUE(schema.ok()) << schema.status();
  absl::StatusOr<InputSchema::Validated> result = schema->Validate(Json::parse(R"({
      "image": "https://example.com/a.png",
      "pair": {"a": "data:,x", "b": ["http://h/1", "http://h/2"]},
      "by_name": {"x/y": "http://h/3"},
      "url_as_text": "https://example.com/not-fetched"})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->file_inputs, (std::vector<std::string>{"/image", "/pair/a", "/pair/b/0",
                                                          "/pair/b/1", "/by_name/x~1y"}));
  for (const std::string& pointer : result->file_inputs) {
    EXPECT_TRUE(result->input.contains(Json::json_pointer(pointer))) << pointer;
  }

  absl::StatusOr<InputSchema::Validated> local =
      schema->Validate(Json::parse(R"({"image": "/etc/passwd", "pair": {"a": "ftp://h/x", "b": []}})"));
  ASSERT_FALSE(local.ok());
  const Json detail = *ValidationDetail(local.status());
  ASSERT_EQ(detail.size(), 2u) << detail;
  EXPECT_EQ(detail[0]["type"], "value_error");
  EXPECT_EQ(detail[1]["msg"], "Value error, 'ftp' is not a valid URL scheme. 'data', 'http', or 'https' is supported.");
  EXPECT_EQ(detail[0]["loc"], Json::parse(R"(["body","input","image"])"));
  EXPECT_EQ(detail[1]["loc"], Json::parse(R"(["body","input","pair","a"])"));
}

TEST(InputSchemaTest, SecretsAreShownRedactedButPassedWhole) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({"components": {"schemas": {
    "Input": {"type": "object", "properties": {
      "key": {"type": "string", "format": "password", "x-order": 0},
      "keys": {"type": "array", "items": {"type": "string", "format": "password"}, "x-order": 1},
      "none": {"type": "string", "format": "password", "nullable": true, "x-order": 2}}}}}})"),
                                                                "Input");
  ASSERT_TRUE(schema.ok());
  absl::StatusOr<InputSchema::Validated> result =
      schema->Validate(Json::parse(R"({"key": "sekrit", "keys": ["a", "b"]})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->input["key"], "sekrit");
  EXPECT_EQ(result->shown.dump(), R"({"key":"**********","keys":["**********","**********"],"none":null})");
}

TEST(InputSchemaTest, MissingComponentIsAnError) {
  EXPECT_FALSE(InputSchema::FromOpenApi(Json::parse(kDocument), "TrainingInput").ok());
}

}  // namespace
}  // namespace cog
