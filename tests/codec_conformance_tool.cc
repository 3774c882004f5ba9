// Produces and checks the canonical runner-protocol frames with the C++
// generated code, for tests/codec_conformance_test.py and
// tests/runner_wire_fuzz_test.py:
//   codec_conformance_tool encode   writes every canonical frame to stdout
//   codec_conformance_tool decode   reads frames from stdin; exit 0 iff they
//                                   equal the canonical messages, in order
//   codec_conformance_tool canon server|runner
//                                   reads frames from stdin and answers each
//                                   with a frame: "\1" and the message as C++
//                                   parsed and serialized it, or "\0" if it does
//                                   not parse as a ServerMessage (RunnerMessage)
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
    R"pb(predict {
           id: "p-2"
           input_json: "{\"prompt\": null}"
           input_text_name: "prompt"
           input_text: "long \342\234\223 text\n"
           batch_outputs: true
           batch_text_items: true
         })pb",
    R"pb(cancel { id: "p-1" })pb",
    R"pb(healthcheck { sequence: 18446744073709551615 })pb",
    R"pb(shutdown {})pb",
    R"pb(setup {})pb",
    R"pb(setup { weights: "w" max_frame_bytes: 4294967296 })pb",
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
    R"pb(output { id: "p-1" value_text: "text \342\234\223" })pb",
    R"pb(done { id: "p-3" status: DONE_STATUS_SUCCEEDED output_text: "plain\n" })pb",
    R"pb(healthcheck_result { sequence: 300 healthy: true error: "disk full" })pb",
    R"pb(done { id: "p-2" status: DONE_STATUS_SUCCEEDED })pb",
    R"pb(bad_frame { error: "field 1 (id) is not valid UTF-8" id: "\377p" })pb",
    R"pb(output { id: "p-4" value_json: "[\"a\",\"\342\234\223\"]" value_items: true })pb",
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
  absl::StatusOr<cog::FrameReader::Result> more = reader.Next(&actual);
  if (!more.ok() || *more != cog::FrameReader::Result::kMessage) {
    std::cerr << "missing frame for: " << expected.ShortDebugString() << " ("
              << (more.ok() ? reader.skipped_reason() : std::string(more.status().message()))
              << ")\n";
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

std::string ReadAll(int fd) {
  std::string data;
  char chunk[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, chunk, sizeof(chunk))) > 0) data.append(chunk, static_cast<size_t>(n));
  return data;
}

uint32_t Length(const std::string& data, size_t pos) {
  return (uint32_t{static_cast<unsigned char>(data[pos])} << 24) |
         (uint32_t{static_cast<unsigned char>(data[pos + 1])} << 16) |
         (uint32_t{static_cast<unsigned char>(data[pos + 2])} << 8) |
         uint32_t{static_cast<unsigned char>(data[pos + 3])};
}

template <typename Message>
int Canonicalize() {
  const std::string data = ReadAll(STDIN_FILENO);
  std::string out;
  for (size_t pos = 0; pos + 4 <= data.size();) {
    const uint32_t size = Length(data, pos);
    if (data.size() - pos - 4 < size) {
      std::cerr << "input ends inside a frame\n";
      return 2;
    }
    Message message;
    std::string answer(1, '\0');
    if (message.ParseFromArray(data.data() + pos + 4, static_cast<int>(size))) {
      answer[0] = '\1';
      // Unknown fields would come back as they came: only what C++ understood counts.
      message.DiscardUnknownFields();
      answer += message.SerializeAsString();
    }
    const uint32_t length = static_cast<uint32_t>(answer.size());
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((length >> shift) & 0xff);
    out += answer;
    pos += 4 + size;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
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
  if (mode == "canon" && argc > 2) {
    const std::string side = argv[2];
    if (side == "server") return Canonicalize<ServerMessage>();
    if (side == "runner") return Canonicalize<RunnerMessage>();
  }
  std::cerr << "usage: codec_conformance_tool encode|decode|canon server|runner\n";
  return 2;
}
