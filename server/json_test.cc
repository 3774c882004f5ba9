#include "server/json.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

TEST(ParseJsonTest, KeepsObjectOrderAndExactIntegers) {
  absl::StatusOr<Json> value = ParseJson(R"({"b":1,"a":[9223372036854775807,18446744073709551615,1.5]})");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(DumpJson(*value), R"({"b":1,"a":[9223372036854775807,18446744073709551615,1.5]})");
}

TEST(ParseJsonTest, LastDuplicateKeyWinsInPlace) {
  std::string text = "{";
  for (int i = 0; i < 20; ++i) text += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  text += "\"k3\":\"again\",\"x\":{\"a\":1,\"a\":2}}";
  absl::StatusOr<Json> value = ParseJson(text);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ((*value)["k3"], "again");
  EXPECT_EQ(value->size(), 21u);
  EXPECT_EQ(DumpJson((*value)["x"]), R"({"a":2})");
}

TEST(ParseJsonTest, RefusesDeepNestingWithTheLimitInTheMessage) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  absl::StatusOr<Json> value = ParseJson(deep, 128);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(value.status().message().find("deeper than 128"), std::string::npos);
  // At the limit it parses.
  EXPECT_TRUE(ParseJson(std::string(128, '[') + std::string(128, ']'), 128).ok());
  EXPECT_FALSE(ParseJson(std::string(129, '[') + std::string(129, ']'), 128).ok());
}

TEST(ParseJsonTest, RefusesNumbersJsonCannotCarry) {
  EXPECT_FALSE(ParseJson("1e400").ok());
  EXPECT_FALSE(ParseJson("[NaN]").ok());
  EXPECT_FALSE(ParseJson("[Infinity]").ok());
  absl::StatusOr<Json> big = ParseJson("1e30");
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(big->is_number_float());
}

// Valid JSON that simdjson 3.0 refuses, and Python's json (legacy Cog) takes.
TEST(ParseJsonTest, IntegersPast64BitsBecomeDoubles) {
  absl::StatusOr<Json> value =
      ParseJson(R"({"f": 100000000000000000000, "n": [-9223372036854775809], "k": 18446744073709551615})");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_TRUE((*value)["f"].is_number_float());
  EXPECT_EQ((*value)["f"].get<double>(), 1e20);
  EXPECT_EQ((*value)["n"][0].get<double>(), -9223372036854775809.0);
  EXPECT_TRUE((*value)["k"].is_number_unsigned()) << "what fits stays exact";
  EXPECT_EQ(DumpJson(*value), R"({"f":1e+20,"n":[-9.223372036854776e+18],"k":18446744073709551615})");
  // Only numbers are touched, not digits in strings (escaped quotes included),
  // and a wide object costs what it costs without one (read by simdjson).
  value = ParseJson(R"({"s": "a\" 123456789012345678901234567890", "n": -123456789012345678901234567890e0,)"
                    R"( "m": -123456789012345678901234567890})");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ((*value)["s"], "a\" 123456789012345678901234567890");
  EXPECT_EQ((*value)["n"].get<double>(), -1.2345678901234568e29);
  EXPECT_EQ((*value)["m"].get<double>(), -1.2345678901234568e29);
  std::string wide = "{";
  for (int i = 0; i < 200000; ++i) absl::StrAppend(&wide, "\"k", i, "\": ", i, ", ");
  wide += "\"big\": 100000000000000000000}";
  value = ParseJson(wide);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->size(), 200001u);
  EXPECT_EQ((*value)["k199999"], 199999);
  // Still refused: past the depth limit, or not JSON.
  EXPECT_FALSE(ParseJson(std::string(129, '[') + "100000000000000000000" + std::string(129, ']'), 128).ok());
  EXPECT_FALSE(ParseJson("[100000000000000000000,]").ok());
  EXPECT_FALSE(ParseJson("[100000000000000000000, 1e400]").ok());
}

TEST(ParseJsonTest, RefusesInvalidUtf8AndGarbage) {
  EXPECT_FALSE(ParseJson("\"\xff\"").ok());
  EXPECT_FALSE(ParseJson("{\"a\":").ok());
  EXPECT_FALSE(ParseJson("").ok());
  EXPECT_FALSE(ParseJson("{} x").ok());
  EXPECT_TRUE(ParseJson(" {} \n").ok());
}

TEST(ParseJsonTest, ErrorsSayWhereTheTextGoesWrong) {
  absl::StatusOr<Json> parsed = ParseJson(R"({"input": })");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(JsonErrorOffset(parsed.status()), 10u);
  parsed = ParseJson("{\"s\": \"\xff\"}");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(JsonErrorOffset(parsed.status()).has_value());
  // Too deep: the limit is the message; no offset is looked for.
  parsed = ParseJson(std::string(100000, '[') + std::string(100000, ']'), 128);
  ASSERT_FALSE(parsed.ok());
  EXPECT_FALSE(JsonErrorOffset(parsed.status()).has_value());
}

TEST(ParseJsonTest, ALoneSurrogateIsNamed) {
  for (const auto& [text, escape] : std::vector<std::pair<std::string, std::string>>{
           {R"(["a\ud800"])", R"(\ud800)"},
           // A low one alone; a pair, then a high one before an escaped backslash;
           // a high one before another escape.
           {R"({"k": "\uDC80 b"})", R"(\uDC80)"},
           {R"(["\ud83d\ude00", "x\ud800\\udc00"])", R"(\ud800)"},
           {R"(["\ud800\u0041"])", R"(\ud800)"}}) {
    absl::StatusOr<Json> parsed = ParseJson(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(JsonLoneSurrogate(parsed.status()), escape) << text;
    EXPECT_EQ(parsed.status().message(),
              "JSON string holds a lone surrogate (" + escape + "), which is not valid Unicode");
  }
  // Pairs and escaped backslashes before a "u" are no surrogates.
  absl::StatusOr<Json> parsed = ParseJson(R"(["\ud83d\ude00", "\\ud800"])");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[1], "\\ud800");
  // Other errors are not blamed on a surrogate, even with one in the text.
  parsed = ParseJson(R"(["\ud800", )");
  ASSERT_FALSE(parsed.ok());
  EXPECT_FALSE(JsonLoneSurrogate(parsed.status()).has_value()) << parsed.status();
  parsed = ParseJson(R"(["\ud8)");
  ASSERT_FALSE(parsed.ok());
  EXPECT_FALSE(JsonLoneSurrogate(parsed.status()).has_value()) << parsed.status();
}

TEST(IsUtf8Test, TellsValidFromInvalid) {
  EXPECT_TRUE(IsUtf8("caf\xc3\xa9"));
  EXPECT_FALSE(IsUtf8("\xff"));
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));  // a lone surrogate
}

TEST(DumpJsonTest, EscapesAsPythonJsonDumps) {
  Json value = std::string("a\"b\\c\nd\re\tf\x01g\x7f\xc3\xa9");
  EXPECT_EQ(DumpJson(value), "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\x7f\xc3\xa9\"");
}

TEST(DumpJsonTest, LongStringsTakeTheFastPathAndStayExact) {
  std::string text(100003, 'x');
  text[50000] = '"';
  text[99999] = '\n';
  const std::string dumped = DumpJson(Json(text));
  EXPECT_EQ(dumped.size(), text.size() + 2 + 2);
  absl::StatusOr<Json> back = ParseJson(dumped);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->get<std::string>(), text);
}

TEST(DumpJsonTest, EscapeHeavyTextAcrossBlocksIsWrittenAsNlohmannWouldWriteIt) {
  // Runs of every length between escapes and non-ASCII, long enough to cross
  // the writer's 8 KiB blocks many times, and one run longer than a block.
  std::string text;
  for (int i = 0; text.size() < 200000; ++i) {
    text.append(static_cast<size_t>(i % 37), 'a');
    text += "\"\\\n\t\x01\x1f\x7f caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80";
    if (i == 100) text.append(20000, 'b');
  }
  EXPECT_EQ(DumpJson(Json(text)), Json(text).dump());
  // The same with a byte that is not UTF-8: each sequence is checked.
  text[100000] = '\xff';
  std::string expected = text;
  expected.replace(100000, 1, "\xEF\xBF\xBD");
  EXPECT_EQ(DumpJson(Json(text)), Json(expected).dump());
}

TEST(DumpJsonTest, FindsEachSpecialByteWhereverTheVectorLoopsMeetIt) {
  // Every position of strings around the 16- and 64-byte steps of the scan
  // (the AVX2 and SSE2 loops and the byte-at-a-time tail), with one special
  // byte: each is written as nlohmann writes it.
  const std::string specials[] = {"\"", "\\", "\n", "\x01", "\x1f", "caf\xc3\xa9", "\xf0\x9f\x98\x80"};
  for (size_t length : {15, 16, 63, 64, 65, 127, 128, 129, 200}) {
    for (const std::string& special : specials) {
      for (size_t at = 0; at + special.size() <= length; ++at) {
        std::string text(length, 'x');
        text.replace(at, special.size(), special);
        ASSERT_EQ(DumpJson(Json(text)), Json(text).dump()) << "length " << length << " at " << at;
      }
    }
    // A byte that is not UTF-8 at each position: it becomes U+FFFD.
    for (size_t at = 0; at < length; ++at) {
      std::string text(length, 'y');
      text[at] = '\x80';
      std::string expected = text;
      expected.replace(at, 1, "\xEF\xBF\xBD");
      ASSERT_EQ(DumpJson(Json(text)), Json(expected).dump()) << "length " << length << " at " << at;
    }
  }
}

TEST(DumpJsonTest, NeverThrowsOnInvalidUtf8) {
  EXPECT_EQ(DumpJson(Json(std::string("a\xff" "b\xe0\x80"))), "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(DumpJsonTest, FloatsAsPythonReprAndNonFiniteAsNull) {
  EXPECT_EQ(DumpJson(Json::array({1.0, 0.1, 1e16, 1.5e-7, -0.0})), "[1.0,0.1,1e+16,1.5e-07,-0.0]");
  EXPECT_EQ(DumpJson(Json(std::nan(""))), "null");
}

TEST(FindNonFiniteTest, NamesWhereItIs) {
  Json value = {{"a", Json::array({1.0, std::numeric_limits<double>::infinity()})}};
  EXPECT_EQ(FindNonFinite(value), "/a/1");
  EXPECT_EQ(FindNonFinite(Json(std::nan(""))), "/");
  EXPECT_EQ(FindNonFinite(Json::array({1, "x"})), "");
}

// simdjson counts an array's items only up to 2^24 - 1: a list longer than
// that must still be counted against the limit, not as 16,777,215.
TEST(ParseJsonTest, AListPastSimdjsonsCountIsCountedAgainstTheLimit) {
  const size_t items = (size_t{1} << 24) + 10;
  std::string text = "[";
  text.reserve(2 * items + 2);
  for (size_t i = 0; i < items; ++i) text.append(i == 0 ? "0" : ",0");
  text.append("]");
  absl::StatusOr<Json> parsed = ParseJson(text, kDefaultMaxJsonDepth, 0, uint64_t{1} << 24);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("more than 16777216 values"), std::string::npos) << parsed.status();
  EXPECT_TRUE(ParseJson("[[0, 1], {\"a\": 2}]", kDefaultMaxJsonDepth, 0, 5).ok());
  EXPECT_FALSE(ParseJson("[[0, 1], {\"a\": 2}]", kDefaultMaxJsonDepth, 0, 4).ok());
}

}  // namespace
}  // namespace cog
