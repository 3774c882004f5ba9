// Produces and checks the canonical runner-protocol frames with the C++
// generated code, for tests/codec_conformance_test.py:
//   codec_conformance_tool encode   writes every canonical frame to stdout
//   codec_conformance_tool decode   reads frames from stdin; exit 0 iff they
//                                   equal the canonical messages, in order
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cog/v1/runner.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/frame_io.h"

namespace {

using ::cog::v1::runner::RunnerMessage;
using ::cog::v1::runner::ServerMessage;

// Every message type, every field set to a value other than its default.
const std::vector<std::string> kServerMessages = {
    R"pb(setup { weights: "/src/weights" })pb",
    R"pb(predict { id: "p-1" kind: KIND_TRAIN input_json: "{\"s\": \"h\303\251\"}" context_json: "{\"a\": \"b\"}" })pb",
    R"pb(cancel { id: "p-1" })pb",
    R"pb(healthcheck { sequence: 18446744073709551615 })pb",
    R"pb(shutdown {})pb",
    R"pb(setup {})pb",
};

const std::vector<std::string> kRunnerMessages = {
    R"pb(hello {
           protocol_version: PROTOCOL_VERSION_CURRENT
           runner_version: "0.1.0"
           python_version: "3.11.7"
           pid: 4242
           openapi_json: "{\"openapi\": \"3.0.2\"}"
           load_error: "ImportError: no torch"
           predict_is_async: true
           has_train: true
           has_healthcheck: true
           max_concurrency: 8
           cog_version: "0.1.0"
         })pb",
    R"pb(setup_done { succeeded: true error: "RuntimeError: boom" })pb",
    R"pb(log { id: "p-1" source: LOG_SOURCE_STDERR text: "line \342\234\223\n" })pb",
    R"pb(output { id: "p-1" value_json: "\000\377\"bytes\"" files_json: "[\"\"]" })pb",
    R"pb(metric { id: "p-1" name: "tokens" value_json: "12" mode: METRIC_MODE_APPEND })pb",
    R"pb(done { id: "p-1" status: DONE_STATUS_CANCELED error: "canceled" output_json: "[1, 2]"
            files_json: "[\"/1\"]" })pb",
    R"pb(healthcheck_result { sequence: 300 healthy: true error: "disk full" })pb",
    R"pb(done { id: "p-2" status: DONE_STATUS_SUCCEEDED })pb",
};

template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  if (!google::protobuf::TextFormat::ParseFromString(text, &message)) {
    std::cerr << "bad canonical message: " << text << "\n";
    std::exit(2);
  }
  return message;
}

template <typename Message>
bool Check(cog::FrameReader& reader, const std::string& text) {
  const Message expected = Parse<Message>(text);
  Message actual;
  absl::StatusOr<bool> more = reader.Next(&actual);
  if (!more.ok() || !*more) {
    std::cerr << "missing frame for: " << expected.ShortDebugString() << " ("
              << (more.ok() ? "end of stream" : std::string(more.status().message())) << ")\n";
    return false;
  }
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (!differencer.Compare(expected, actual)) {
    std::cerr << "mismatch for " << expected.ShortDebugString() << ":\n" << diff;
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "encode") {
    std::string out;
    for (const auto& text : kServerMessages) out += cog::EncodeFrame(Parse<ServerMessage>(text));
    for (const auto& text : kRunnerMessages) out += cog::EncodeFrame(Parse<RunnerMessage>(text));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  if (mode == "decode") {
    cog::FrameReader reader(STDIN_FILENO);
    bool ok = true;
    for (const auto& text : kServerMessages) ok = Check<ServerMessage>(reader, text) && ok;
    for (const auto& text : kRunnerMessages) ok = Check<RunnerMessage>(reader, text) && ok;
    std::cerr << (ok ? "all frames match\n" : "frames differ\n");
    return ok ? 0 : 1;
  }
  std::cerr << "usage: codec_conformance_tool encode|decode\n";
  return 2;
}
