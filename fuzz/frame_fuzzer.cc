// What the server reads from the runner's socket: length-prefixed frames
// (FrameReader), each a cog.v1.runner.RunnerMessage, and the JSON and file
// pointers the messages carry. Any bytes end in a clean end of stream or an
// error, never a crash, a hang or an allocation the bytes did not pay for.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cog/v1/runner.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "server/frame_io.h"
#include "server/json.h"
#include "server/prediction_files.h"

namespace {

using ::cog::v1::runner::RunnerMessage;

void Check(bool ok) {
  if (!ok) std::abort();
}

// What the server does with the JSON text of a message: parse it with the
// request path's limits and write it back.
void ParseAndDump(const std::string& text) {
  absl::StatusOr<cog::Json> value = cog::ParseJson(text);
  if (!value.ok()) return;
  const std::string dumped = cog::DumpJson(*value);
  (void)cog::FindNonFinite(*value);
  // What DumpJson writes, ParseJson reads back to the same text.
  absl::StatusOr<cog::Json> again = cog::ParseJson(dumped);
  Check(again.ok() && cog::DumpJson(*again) == dumped);
}

void Inspect(const RunnerMessage& message) {
  // A message re-encoded and read again is the same message.
  const std::string bytes = message.SerializeAsString();
  RunnerMessage copy;
  Check(copy.ParseFromString(bytes));
  Check(copy.SerializeAsString() == bytes);

  switch (message.message_case()) {
    case RunnerMessage::kHello:
      ParseAndDump(message.hello().openapi_json());
      break;
    case RunnerMessage::kOutput:
      ParseAndDump(message.output().value_json());
      for (const std::string& pointer : cog::ParseFilePointers(message.output().files_json())) {
        (void)cog::FileUrlToPath(pointer);
      }
      break;
    case RunnerMessage::kDone:
      ParseAndDump(message.done().output_json());
      for (const std::string& pointer : cog::ParseFilePointers(message.done().files_json())) {
        (void)cog::FileUrlToPath(pointer);
      }
      break;
    case RunnerMessage::kMetric:
      ParseAndDump(message.metric().value_json());
      break;
    default:
      break;
  }
}

// Reads every frame of `data` with frames over `limit` skipped.
void ReadAll(const uint8_t* data, size_t size, uint32_t limit) {
  // An fd the reader reads exactly these bytes from, then end of stream.
  const int fd = memfd_create("frames", MFD_CLOEXEC);
  Check(fd >= 0);
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, data + written, size - written);
    Check(n > 0);
    written += static_cast<size_t>(n);
  }
  Check(::lseek(fd, 0, SEEK_SET) == 0);

  cog::FrameReader reader(fd, limit);
  // Each frame consumes at least its 4-byte header.
  for (size_t frames = 0; frames <= size / 4; ++frames) {
    RunnerMessage message;
    absl::StatusOr<cog::FrameReader::Result> result = reader.Next(&message);
    if (!result.ok() || *result == cog::FrameReader::Result::kEndOfStream) break;
    if (*result == cog::FrameReader::Result::kSkipped) {
      Check(!reader.skipped_reason().empty());
      Check(reader.skipped_prefix().size() <= cog::FrameReader::kSkippedPrefixBytes);
      Check(reader.skipped_prefix().size() <= reader.skipped_size());
      continue;
    }
    Inspect(message);
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Invalid UTF-8 in a string field is refused, with a log line each time.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ReadAll(data, size, cog::kMaxFrameBytes);
  // A small limit, so that skipping over-limit frames is explored too.
  ReadAll(data, size, 256);
  return 0;
}
