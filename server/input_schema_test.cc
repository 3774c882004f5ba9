#include "server/input_schema.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
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

TEST(InputSchemaTest, LengthsCountCodePointsAsPythonDoes) {
  // maxLength 5: five characters of 1 to 4 bytes each fit, six do not.
  for (const std::string& five : {std::string("abcde"), std::string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
                                  std::string("\xe6\x97\xa5" "a" "\xf0\x9f\x98\x80" "b" "\xc3\xa9")}) {
    EXPECT_TRUE(Schema().Validate(Json{{"prompt", five}}).ok()) << five;
    EXPECT_EQ(Errors(Json{{"prompt", five + "\xf0\x9f\x98\x80"}})[0]["type"], "string_too_long") << five;
  }
  // Past the 8-byte steps of the count, and at their edges.
  EXPECT_TRUE(Schema().Validate(Json{{"prompt", "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5"}}).ok());
  EXPECT_EQ(Errors(Json{{"prompt", std::string(6, 'a')}})[0]["type"], "string_too_long");
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

// What the runner writes for List[int] = Input(ge=0, le=10), List[str] =
// Input(min_length=2, regex=...) and List[List[int]]: bounds, lengths and
// pattern on the array, each element checked against them, at any depth.
TEST(InputSchemaTest, ListElementsAreCheckedAtEveryDepthAgainstTheListsConstraints) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({
    "components": {"schemas": {"Input": {"type": "object", "properties": {
      "counts": {"type": "array", "items": {"type": "integer"}, "minimum": 0.0, "maximum": 10.0, "x-order": 0},
      "words": {"type": "array", "items": {"type": "string"}, "minLength": 2, "pattern": "^[a-z]+$", "x-order": 1},
      "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "maximum": 9.0, "x-order": 2}
    }}}}})"), "Input");
  ASSERT_TRUE(schema.ok()) << schema.status();
  absl::StatusOr<InputSchema::Validated> fine =
      schema->Validate(Json::parse(R"({"counts": [0, "10"], "words": ["ab"], "grid": [[1, "2"], []]})"));
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->input, Json::parse(R"({"counts": [0, 10], "words": ["ab"], "grid": [[1, 2], []]})"));

  absl::StatusOr<InputSchema::Validated> bad = schema->Validate(Json::parse(
      R"({"counts": [11, -1, 5], "words": ["a", "AB"], "grid": [[1], ["a", 1.5, 10], 3]})"));
  ASSERT_FALSE(bad.ok());
  const Json errors = ValidationDetail(bad.status()).value_or(Json::array());
  std::vector<std::string> seen;
  for (const Json& e : errors) seen.push_back(absl::StrCat(e["type"].get<std::string>(), " ", e["loc"].dump()));
  EXPECT_EQ(seen, (std::vector<std::string>{
                      R"(less_than_equal ["body","input","counts",0])",
                      R"(greater_than_equal ["body","input","counts",1])",
                      R"(string_too_short ["body","input","words",0])",
                      R"(string_pattern_mismatch ["body","input","words",1])",
                      R"(int_parsing ["body","input","grid",1,0])",
                      R"(int_from_float ["body","input","grid",1,1])",
                      R"(less_than_equal ["body","input","grid",1,2])",
                      R"(list_type ["body","input","grid",2])",
                  }));
  EXPECT_EQ(errors[0]["ctx"], Json::parse(R"({"le": 10})"));
}

TEST(InputSchemaTest, NullElementsOfAListOfOptionalsAreTaken) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({
    "components": {"schemas": {"Input": {"type": "object", "properties": {
      "xs": {"type": "array", "items": {"type": "integer", "nullable": true}, "minimum": 0.0, "x-order": 0},
      "ys": {"type": "array", "items": {"type": "integer"}, "x-order": 1}
    }}}}})"), "Input");
  ASSERT_TRUE(schema.ok()) << schema.status();
  absl::StatusOr<InputSchema::Validated> fine = schema->Validate(Json::parse(R"({"xs": [null, 3], "ys": [1]})"));
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->input["xs"], Json::parse("[null, 3]"));
  absl::StatusOr<InputSchema::Validated> bad = schema->Validate(Json::parse(R"({"xs": [-1], "ys": [null]})"));
  ASSERT_FALSE(bad.ok());
  const Json errors = ValidationDetail(bad.status()).value_or(Json::array());
  ASSERT_EQ(errors.size(), 2u) << errors;
  EXPECT_EQ(errors[0]["type"], "greater_than_equal");
  EXPECT_EQ(errors[1]["type"], "int_type");
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
  EXPECT_EQ(result->Shown().dump(), R"({"key":"**********","keys":["**********","**********"],"none":null})");
}

// Pydantic's float_as_int, which legacy Cog's int inputs go through: a float
// with a fraction is int_from_float; a whole float outside (-2^63, 2^63) is
// int_parsing_size, before and instead of any ge/le check. (So 1e30 with
// le=10 is not less_than_equal; it used to become INT64_MIN and pass.)
TEST(InputSchemaTest, FloatsOutsideInt64AreIntParsingSizeNeverCast) {
  for (const char* number : {"1e30", "-1e30", "9.3e18", "9223372036854775808.0",
                             "-9223372036854775808.0", "1.7976931348623157e308"}) {
    const Json errors = Errors(Json::parse(std::string(R"({"prompt": "p", "n": )") + number + "}"));
    ASSERT_EQ(errors.size(), 1u) << number;
    EXPECT_EQ(errors[0]["type"], "int_parsing_size") << number;
    EXPECT_EQ(errors[0]["msg"], "Unable to parse input string as an integer, exceeded maximum size");
    EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","n"])"));
    // Also where no constraint applies: no integer JSON can carry it.
    EXPECT_EQ(Errors(Json::parse(std::string(R"({"prompt": "p", "seed": )") + number + "}"))[0]["type"],
              "int_parsing_size")
        << number;
  }
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "seed": 1e30})")).dump(),
            R"([{"type":"int_parsing_size","loc":["body","input","seed"],"msg":"Unable to parse input string as an integer, exceeded maximum size","input":1e+30}])");
  absl::StatusOr<InputSchema::Validated> inside =
      Schema().Validate(Json::parse(R"({"prompt": "p", "seed": -9.2e18})"));
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ(inside->input["seed"], int64_t{-9200000000000000000});
}

// Integers of 2^63 to 2^64 come from the JSON parser as uint64. In Python
// they are ints like any other: kept exactly, and checked against ge/le.
TEST(InputSchemaTest, Uint64IntegersAreKeptAndChecked) {
  absl::StatusOr<InputSchema::Validated> big = Schema().Validate(
      Json::parse(R"({"prompt": "p", "seed": 18446744073709551615, "temperature": 9223372036854775808})"));
  ASSERT_FALSE(big.ok());  // temperature is above its maximum of 2; seed is fine
  EXPECT_EQ(ValidationDetail(big.status())->dump(),
            R"([{"type":"less_than_equal","loc":["body","input","temperature"],"msg":"Input should be less than or equal to 2","input":9223372036854775808,"ctx":{"le":2.0}}])");

  big = Schema().Validate(Json::parse(R"({"prompt": "p", "seed": 18446744073709551615})"));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_TRUE(big->input["seed"].is_number_unsigned());
  EXPECT_EQ(big->input["seed"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());

  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": 9223372036854775808})")).dump(),
            R"([{"type":"less_than_equal","loc":["body","input","n"],"msg":"Input should be less than or equal to 10","input":9223372036854775808,"ctx":{"le":10}}])");
}

// As pydantic's str_as_int: "3.00" is 3, digits beyond what JSON here can
// carry (past 2^64) are int_parsing_size rather than a silent float.
TEST(InputSchemaTest, IntegerStrings) {
  absl::StatusOr<InputSchema::Validated> result = Schema().Validate(
      Json::parse(R"({"prompt": "p", "n": " 3.00 ", "seed": "18446744073709551615"})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->input["n"], 3);
  EXPECT_EQ(result->input["seed"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "seed": "-99999999999999999999999"})"))[0]["type"],
            "int_parsing_size");
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "seed": "3.5"})"))[0]["type"], "int_parsing");
  // An error shows the string as given, not what it was coerced to.
  EXPECT_EQ(Errors(Json::parse(R"({"prompt": "p", "n": "11"})"))[0]["input"], "11");
}

// A bound outside int64 (le=10**30 on an int) is named as a float, never cast.
TEST(InputSchemaTest, IntegerBoundsOutsideInt64) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({"components": {"schemas": {
    "Input": {"type": "object", "properties": {
      "k": {"type": "integer", "minimum": 1e19, "maximum": 1e30}}}}}})"),
                                                                "Input");
  ASSERT_TRUE(schema.ok()) << schema.status();
  absl::StatusOr<InputSchema::Validated> result = schema->Validate(Json::parse(R"({"k": 5})"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(ValidationDetail(result.status())->dump(),
            R"([{"type":"greater_than_equal","loc":["body","input","k"],"msg":"Input should be greater than or equal to 1e+19","input":5,"ctx":{"ge":1e+19}}])");
}

// A fuller Input: what the fuzzer and the secret, non-finite and pattern
// tests use.
const char kRichDocument[] = R"({
  "components": {"schemas": {
    "Input": {
      "type": "object", "title": "Input", "required": ["prompt"],
      "properties": {
        "prompt": {"type": "string", "x-order": 0},
        "n": {"type": "integer", "x-order": 1},
        "temperature": {"type": "number", "x-order": 2},
        "api_key": {"type": "string", "format": "password", "writeOnly": true, "x-cog-secret": true, "nullable": true, "x-order": 3},
        "keys": {"type": "array", "items": {"type": "string", "format": "password", "x-cog-secret": true}, "default": [], "x-order": 4},
        "account": {"x-order": 5, "allOf": [{"$ref": "#/components/schemas/Account"}]},
        "counts": {"type": "array", "items": {"type": "integer"}, "default": [], "x-order": 6},
        "extra": {"title": "Extra", "x-order": 7},
        "options": {"type": "object", "default": {}, "x-order": 8}
      }
    },
    "Account": {"type": "object", "properties": {
      "user": {"type": "string"},
      "token": {"type": "string", "format": "password", "x-cog-secret": true}}}
  }}
})";

InputSchema RichSchema() {
  absl::StatusOr<InputSchema> schema =
      InputSchema::FromOpenApi(Json::parse(kRichDocument), "Input");
  EXPECT_TRUE(schema.ok()) << schema.status();
  return *schema;
}

Json RichErrors(const Json& input) {
  absl::StatusOr<InputSchema::Validated> result = RichSchema().Validate(input);
  EXPECT_FALSE(result.ok());
  // The status message goes to gRPC clients as it is: no secret there either.
  EXPECT_FALSE(absl::StrContains(result.status().message(), "sekrit")) << result.status();
  return ValidationDetail(result.status()).value_or(Json::array());
}

// NaN and infinity cannot be written as JSON (our writer would make them
// null), so they are refused wherever they are; they come as doubles from a
// gRPC Struct, never from a JSON body.
TEST(InputSchemaTest, NonFiniteNumbersAreRefusedEverywhere) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Json input = {{"prompt", "p"}, {"n", nan}, {"temperature", inf}};
  Json errors = RichErrors(input);
  ASSERT_EQ(errors.size(), 2u) << errors;
  for (const Json& error : errors) {
    EXPECT_EQ(error["type"], "finite_number");
    EXPECT_EQ(error["msg"], "Input should be a finite number");
  }
  EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","n"])"));
  EXPECT_EQ(errors[1]["loc"], Json::parse(R"(["body","input","temperature"])"));

  // Spelled as a string, a number field parses it, then refuses it.
  errors = RichErrors(Json{{"prompt", "p"}, {"temperature", "-inf"}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].dump(),
            R"({"type":"finite_number","loc":["body","input","temperature"],"msg":"Input should be a finite number","input":"-inf"})");

  input = {{"prompt", "p"},
           {"counts", {1, -inf}},
           {"extra", {{"a", {1.5, nan}}, {"b", inf}}},
           {"options", {{"x", {{"y", -inf}}}}}};
  errors = RichErrors(input);
  ASSERT_EQ(errors.size(), 4u) << errors;
  EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","counts",1])"));
  EXPECT_EQ(errors[1]["loc"], Json::parse(R"(["body","input","extra","a",1])"));
  EXPECT_EQ(errors[2]["loc"], Json::parse(R"(["body","input","extra","b"])"));
  EXPECT_EQ(errors[3]["loc"], Json::parse(R"(["body","input","options","x","y"])"));
  for (const Json& error : errors) EXPECT_EQ(error["type"], "finite_number");

  errors = RichErrors(Json{{"prompt", "p"}, {"extra", nan}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","extra"])"));
}

// Whatever a 422 echoes, a Secret in it shows as "**********": the whole
// input that `missing` echoes, a Secret of the wrong type, a list of Secrets
// that is no list, a Secret nested in an object.
TEST(InputSchemaTest, SecretsNeverComeBackInA422) {
  Json errors = RichErrors(Json::parse(
      R"({"promt": "p", "api_key": "sekrit-1", "keys": ["sekrit-2"], "account": {"user": "u", "token": "sekrit-3"}})"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].dump(),
            R"({"type":"missing","loc":["body","input","prompt"],"msg":"Field required","input":)"
            R"({"promt":"p","api_key":"**********","keys":["**********"],"account":{"user":"u","token":"**********"}}})");

  errors = RichErrors(Json::parse(R"({"prompt": "p", "api_key": 12345, "keys": "sekrit-4"})"));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0]["type"], "string_type");
  EXPECT_EQ(errors[0]["input"], "**********");
  EXPECT_EQ(errors[1]["type"], "list_type");
  EXPECT_EQ(errors[1]["input"], "**********");

  errors = RichErrors(Json::parse(R"({"prompt": "p", "keys": ["sekrit-5", {"a": "sekrit-6"}]})"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["loc"], Json::parse(R"(["body","input","keys",1])"));
  EXPECT_EQ(errors[0]["input"], "**********");

  // Another field's error echoes nothing of the Secrets beside it.
  errors = RichErrors(Json::parse(R"({"prompt": 1, "api_key": "sekrit-7"})"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["input"], 1);
}

TEST(InputSchemaTest, NestedSecretsAreShownRedacted) {
  absl::StatusOr<InputSchema::Validated> result = RichSchema().Validate(
      Json::parse(R"({"prompt": "p", "account": {"user": "u", "token": "sekrit"}})"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->input["account"]["token"], "sekrit");
  EXPECT_EQ(result->Shown()["account"].dump(), R"({"user":"u","token":"**********"})");
  EXPECT_TRUE(result->Shown()["api_key"].is_null());
}

InputSchema PatternSchema(const std::string& pattern) {
  Json document = Json::parse(R"({"components": {"schemas": {"Input": {"type": "object", "properties": {
    "s": {"type": "string"}}}}}})");
  document["components"]["schemas"]["Input"]["properties"]["s"]["pattern"] = pattern;
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(document, "Input");
  EXPECT_TRUE(schema.ok()) << schema.status();
  return *schema;
}

bool Matches(const InputSchema& schema, const std::string& text) {
  return schema.Validate(Json{{"s", text}}).ok();
}

// std::regex recursed once per character: a 100 KB string against
// "^[a-z]+$" overflowed the stack, and (a+)+$ took exponential time.
TEST(InputSchemaTest, PatternsTakeLinearTimeOnLongStrings) {
  const InputSchema schema = PatternSchema("^[a-z]+$");
  EXPECT_TRUE(Matches(schema, std::string(4 << 20, 'a')));
  EXPECT_FALSE(Matches(schema, std::string(4 << 20, 'a') + "A"));
  EXPECT_FALSE(Matches(PatternSchema("^(a+)+$"), std::string(100, 'a') + "b"));
}

// Pydantic 2 matches with Rust's regex crate: searched anywhere in the string
// (is_match), Unicode \d \w \s, `$` only at the very end.
TEST(InputSchemaTest, PatternsMatchAsPydanticDoes) {
  EXPECT_TRUE(Matches(PatternSchema("b"), "abc"));
  EXPECT_FALSE(Matches(PatternSchema("^b"), "abc"));
  EXPECT_FALSE(Matches(PatternSchema("^a$"), "a\n"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^\w+$)"), "café_日本"));
  EXPECT_FALSE(Matches(PatternSchema(R"(^\w+$)"), "a-b"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^\W$)"), "-"));
  EXPECT_FALSE(Matches(PatternSchema(R"(^\W$)"), "é"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^\d+$)"), "٣4"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^[\d\s-]+$)"), "12-3\u00a04"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^a\sb$)"), "a\u3000b"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^[]x]+$)"), "]x]"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^[[:alpha:]\d]+$)"), "ab12"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^(?<year>\d{4})$)"), "2024"));
  EXPECT_TRUE(Matches(PatternSchema(R"((?i)^ABC$)"), "abc"));
  EXPECT_TRUE(Matches(PatternSchema(R"(^\\d$)"), "\\d"));
}

// What pydantic 2's Rust regex refuses too: found when the schema is read,
// with the field and the pattern named, instead of a crash or a silent pass.
TEST(InputSchemaTest, PatternsRe2CannotReadFailTheSchema) {
  for (const char* pattern : {"(?=a)b", "(a)\\1", "a(?<!b)", "[a-"}) {
    Json document = Json::parse(R"({"components": {"schemas": {"Input": {"type": "object", "properties": {
      "tag": {"type": "string"},
      "tags": {"type": "array", "items": {"type": "string"}}}}}}})");
    document["components"]["schemas"]["Input"]["properties"]["tags"]["items"]["pattern"] = pattern;
    absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(document, "Input");
    ASSERT_FALSE(schema.ok()) << pattern;
    EXPECT_EQ(schema.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(schema.status().message(), "input 'tags'")) << schema.status();
    EXPECT_TRUE(absl::StrContains(schema.status().message(), pattern)) << schema.status();
  }
}

// The schema comes from the runner: odd shapes are read as "no constraint",
// never an exception.
TEST(InputSchemaTest, OddSchemaShapesDoNotThrow) {
  absl::StatusOr<InputSchema> schema = InputSchema::FromOpenApi(Json::parse(R"({"components": {"schemas": {
    "Input": {"type": "object", "required": "a", "properties": {
      "a": true, "b": {"type": ["string", "null"], "nullable": "yes", "x-order": 1e30, "format": 3},
      "c": {"allOf": [{"$ref": "#/components/schemas/a~b/c"}], "x-cog-secret": "no"}}}}}})"),
                                                                "Input");
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_TRUE(schema->Validate(Json::parse(R"({"a": 1, "b": [], "c": null})")).ok());
}

TEST(InputSchemaTest, MissingComponentIsAnError) {
  EXPECT_FALSE(InputSchema::FromOpenApi(Json::parse(kDocument), "TrainingInput").ok());
}

}  // namespace
}  // namespace cog
