// JSON benchmark: how fast each candidate library reads and writes the bodies
// a Cog server sees, in MiB/s of JSON text, so that the
// server's JSON is chosen by measurement (issue 8).
//
// Bodies, each at ~1 MiB and ~10 MiB:
//   prompt:  {"input":{"prompt":"..."}}, one long string of prose with
//            newlines, tabs, quotes, backslashes and ~3% non-ASCII words;
//   records: {"input":{"records":[{"x":1.5,"y":"ab","z":[1,2,3]}, ...]}};
//   nested:  {"input":{"trees":[...]}}, chains of objects 100 levels deep.
//
// Candidates:
//   parse: nlohmann::json::parse, nlohmann::ordered_json::parse, cog::ParseJson
//          (simdjson DOM converted to ordered_json: what the server runs),
//          simdjson DOM alone (the floor: a reused parser, no conversion),
//          RapidJSON Document::Parse (validating UTF-8, full-precision numbers,
//          as Python and simdjson do);
//   dump:  nlohmann::ordered_json::dump, cog::DumpJson (what the server runs),
//          RapidJSON Writer (which, unlike DumpJson, does not check UTF-8),
//          simdjson::minify of a parsed DOM.
//
// After the usual report, a table of MiB/s per body and candidate (the median
// when --benchmark_repetitions is over 1), ready for bench/README.md:
//
//   bazel run -c opt //bench:json_bench -- --benchmark_min_time=0.2
//       --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "nlohmann/json.hpp"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/json.h"
#include "simdjson.h"

namespace {

constexpr size_t kMiB = 1 << 20;

// Deterministic, so that every run measures the same bytes.
class Random {
 public:
  uint32_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return static_cast<uint32_t>(state_ >> 32);
  }
  uint32_t Below(uint32_t n) { return Next() % n; }

 private:
  uint64_t state_ = 0x9E3779B97F4A7C15ULL;
};

// Prose as a prompt carries it: words, punctuation, line breaks, now and then
// a quote, a tab or a backslash (all escaped in JSON), and non-ASCII words.
std::string Prose(size_t bytes) {
  static const char* const kWords[] = {"the", "model", "should", "answer", "with", "a", "short",
                                       "story", "about", "light", "and", "water", "in", "spring",
                                       "prompt", "token", "image", "of", "city", "night"};
  static const char* const kNonAscii[] = {"café", "naïve", "Zürich", "日本語", "привет", "😀",
                                          "señor", "€5"};
  Random random;
  std::string text;
  text.reserve(bytes + 16);
  size_t line = 0;
  while (text.size() < bytes) {
    const uint32_t pick = random.Below(100);
    const char* word = pick < 3 ? kNonAscii[random.Below(8)] : kWords[random.Below(20)];
    if (pick == 3) text.push_back('"');
    text.append(word);
    if (pick == 3) text.push_back('"');
    if (pick == 4) text.append("\\");
    if (pick == 5) text.push_back('\t');
    line += 6;
    if (line > 80) {
      text.append(".\n");
      line = 0;
    } else {
      text.push_back(' ');
    }
  }
  text.resize(bytes);
  // The cut may have split a multi-byte character: end on a whole one.
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80) != 0) text.pop_back();
  return text;
}

std::string PromptBody(size_t bytes) {
  nlohmann::json body = {{"input", {{"prompt", Prose(bytes)}}}};
  return body.dump();
}

std::string RecordsBody(size_t bytes) {
  std::string text = R"({"input":{"records":[)";
  for (int i = 0; text.size() < bytes; ++i) {
    if (i > 0) text.push_back(',');
    // x takes short decimal values (0.25 steps), as most real numbers do.
    char record[96];
    std::snprintf(record, sizeof(record), R"({"x":%g,"y":"ab","z":[%d,2,3]})", 0.25 * (i % 4000),
                  i % 1000);
    text.append(record);
  }
  text.append("]}}");
  return text;
}

// One chain: {"level":0,"name":"node","weights":[0.5,1],"child":{...}} 100 deep.
std::string Chain(int depth) {
  std::string text;
  for (int level = 0; level < depth; ++level) {
    text.append(R"({"level":)").append(std::to_string(level));
    text.append(R"(,"name":"node","weights":[0.5,1],"child":)");
  }
  text.append("null");
  text.append(depth, '}');
  return text;
}

std::string NestedBody(size_t bytes) {
  const std::string chain = Chain(100);  // 102 levels with input and trees.
  std::string text = R"({"input":{"trees":[)";
  for (int i = 0; text.size() < bytes; ++i) {
    if (i > 0) text.push_back(',');
    text.append(chain);
  }
  text.append("]}}");
  return text;
}

struct Body {
  std::string name;
  std::string text;
};

// ---- parse candidates ----

void ParseNlohmann(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    nlohmann::json value = nlohmann::json::parse(text);
    benchmark::DoNotOptimize(value);
  }
}

void ParseNlohmannOrdered(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    nlohmann::ordered_json value = nlohmann::ordered_json::parse(text);
    benchmark::DoNotOptimize(value);
  }
}

void ParseCog(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    absl::StatusOr<cog::Json> value = cog::ParseJson(text);
    if (!value.ok()) state.SkipWithError(std::string(value.status().message()).c_str());
    benchmark::DoNotOptimize(value);
  }
}

void ParseSimdjsonDom(benchmark::State& state, const std::string& text) {
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element root;
    if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root) !=
        simdjson::SUCCESS) {
      state.SkipWithError("simdjson parse failed");
    }
    benchmark::DoNotOptimize(root);
  }
}

constexpr unsigned kRapidJsonFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseFullPrecisionFlag;

void ParseRapidJson(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    rapidjson::Document document;
    document.Parse<kRapidJsonFlags>(text.data(), text.size());
    if (document.HasParseError()) state.SkipWithError("RapidJSON parse failed");
    benchmark::DoNotOptimize(document);
  }
}

// ---- dump candidates (the value is built once, outside the timing) ----

void DumpNlohmann(benchmark::State& state, const std::string& text) {
  const cog::Json value = *cog::ParseJson(text);
  for (auto _ : state) {
    std::string out = value.dump();
    benchmark::DoNotOptimize(out);
  }
}

void DumpCog(benchmark::State& state, const std::string& text) {
  const cog::Json value = *cog::ParseJson(text);
  for (auto _ : state) {
    std::string out = cog::DumpJson(value);
    benchmark::DoNotOptimize(out);
  }
}

void DumpRapidJson(benchmark::State& state, const std::string& text) {
  rapidjson::Document document;
  document.Parse<kRapidJsonFlags>(text.data(), text.size());
  for (auto _ : state) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    document.Accept(writer);
    benchmark::DoNotOptimize(buffer.GetString());
  }
}

void DumpSimdjsonMinify(benchmark::State& state, const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(text).value();
  for (auto _ : state) {
    std::string out = simdjson::minify(root);
    benchmark::DoNotOptimize(out);
  }
}

using Candidate = void (*)(benchmark::State&, const std::string&);

// The console report, plus each benchmark's MiB/s (its median over
// repetitions, if any) kept for the summary table.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : ConsoleReporter(OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const auto rate = run.counters.find("bytes_per_second");
      if (run.error_occurred || rate == run.counters.end()) continue;
      const std::string& name = run.run_name.function_name;
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name != "median") continue;
        medians_.insert(name);
      } else if (medians_.count(name) > 0) {
        continue;
      }
      mib_per_second_[name] = rate->second.value / (1024.0 * 1024.0);
    }
  }

  // One row per operation and body, one column per candidate.
  void PrintTable(const std::vector<std::string>& rows, const std::vector<std::string>& columns,
                  const char* operation) const {
    std::printf("\n%s, MiB/s of JSON text (higher is better)\n\n| body |", operation);
    for (const std::string& column : columns) std::printf(" %s |", column.c_str());
    std::printf("\n|---|");
    for (size_t i = 0; i < columns.size(); ++i) std::printf("---|");
    std::printf("\n");
    for (const std::string& row : rows) {
      std::printf("| %s |", row.c_str());
      for (const std::string& column : columns) {
        const auto it = mib_per_second_.find(std::string(operation) + "/" + row + "/" + column);
        if (it == mib_per_second_.end()) {
          std::printf(" - |");
        } else {
          std::printf(" %.0f |", it->second);
        }
      }
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, double> mib_per_second_;
  std::set<std::string> medians_;
};

// Same bytes, same output (modulo number formatting): checked once, before
// any timing, so a candidate that silently writes something else is caught.
void CheckRoundTrips(const Body& body) {
  const cog::Json value = *cog::ParseJson(body.text);
  if (value != nlohmann::ordered_json::parse(body.text) || cog::DumpJson(value) != value.dump()) {
    std::fprintf(stderr, "%s: cog::ParseJson/DumpJson disagree with nlohmann\n",
                 body.name.c_str());
    std::abort();
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  static std::vector<Body> bodies;
  for (size_t size : {kMiB, 10 * kMiB}) {
    const std::string suffix = size == kMiB ? "_1MiB" : "_10MiB";
    bodies.push_back({"prompt" + suffix, PromptBody(size)});
    bodies.push_back({"records" + suffix, RecordsBody(size)});
    bodies.push_back({"nested" + suffix, NestedBody(size)});
  }
  for (const Body& body : bodies) CheckRoundTrips(body);

  const std::vector<std::pair<std::string, Candidate>> parsers = {
      {"nlohmann::json", ParseNlohmann},
      {"nlohmann::ordered_json", ParseNlohmannOrdered},
      {"cog::ParseJson", ParseCog},
      {"simdjson_dom_only", ParseSimdjsonDom},
      {"rapidjson", ParseRapidJson},
  };
  const std::vector<std::pair<std::string, Candidate>> dumpers = {
      {"nlohmann::ordered_json", DumpNlohmann},
      {"cog::DumpJson", DumpCog},
      {"rapidjson_writer", DumpRapidJson},
      {"simdjson_minify", DumpSimdjsonMinify},
  };
  for (const Body& body : bodies) {
    for (const auto& [name, parse] : parsers) {
      benchmark::RegisterBenchmark(
          ("parse/" + body.name + "/" + name).c_str(),
          [parse = parse, &body](benchmark::State& state) {
            parse(state, body.text);
            state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.text.size()));
          })
          ->Unit(benchmark::kMillisecond);
    }
    for (const auto& [name, dump] : dumpers) {
      benchmark::RegisterBenchmark(
          ("dump/" + body.name + "/" + name).c_str(),
          [dump = dump, &body](benchmark::State& state) {
            dump(state, body.text);
            state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.text.size()));
          })
          ->Unit(benchmark::kMillisecond);
    }
  }
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::vector<std::string> rows, parse_columns, dump_columns;
  for (const Body& body : bodies) rows.push_back(body.name);
  for (const auto& [name, parse] : parsers) parse_columns.push_back(name);
  for (const auto& [name, dump] : dumpers) dump_columns.push_back(name);
  reporter.PrintTable(rows, parse_columns, "parse");
  reporter.PrintTable(rows, dump_columns, "dump");
  benchmark::Shutdown();
  return 0;
}
