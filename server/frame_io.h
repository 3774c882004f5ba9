// Length-prefixed protobuf frames: the wire format between cog-server and the
// Python runner (see proto/cog/v1/runner.proto).
//
// A frame is a 4-byte big-endian length followed by that many bytes of one
// serialized message. FrameReader owns nothing but its buffer: the fd belongs to
// the caller. Neither is thread-safe; RunnerConnection serialises writers.
#ifndef COG_SERVER_FRAME_IO_H_
#define COG_SERVER_FRAME_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace cog {

// Frames larger than this are refused on both sides: a runner that sends one is
// broken, and the server never builds one (files travel as paths).
inline constexpr uint32_t kMaxFrameBytes = 256u << 20;

// Returns the 4-byte header followed by the serialized message.
std::string EncodeFrame(const google::protobuf::MessageLite& message);

// Writes one whole frame to `fd`, retrying short writes and EINTR.
absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message);

// Reads frames from a blocking stream fd.
class FrameReader {
 public:
  explicit FrameReader(int fd, uint32_t max_frame_bytes = kMaxFrameBytes)
      : fd_(fd), max_frame_bytes_(max_frame_bytes) {}

  // Reads the next frame into `message`. Returns false at a clean end of stream
  // (the peer closed between frames); an error for a truncated frame, an
  // oversized length, a read error, or bytes that do not parse.
  absl::StatusOr<bool> Next(google::protobuf::MessageLite* message);

 private:
  // Reads exactly `size` bytes into `out`. Returns false on EOF before the
  // first byte when `eof_ok`.
  absl::StatusOr<bool> ReadExactly(char* out, size_t size, bool eof_ok);

  int fd_;
  uint32_t max_frame_bytes_;
  std::string payload_;
};

}  // namespace cog

#endif  // COG_SERVER_FRAME_IO_H_
