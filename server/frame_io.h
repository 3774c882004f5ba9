// Length-prefixed protobuf frames: the wire format between cog-server and the
// Python runner (see proto/cog/v1/runner.proto).
//
// A frame is a 4-byte big-endian length followed by that many bytes of one
// serialized message. FrameReader owns nothing but its buffers: the fd belongs
// to the caller. Neither is thread-safe; RunnerConnection serialises writers.
#ifndef COG_SERVER_FRAME_IO_H_
#define COG_SERVER_FRAME_IO_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace cog {

class BusyPoller;

// The default limit on frames, both ways: the server never builds a larger one
// (files travel as paths), and reads none larger unless told otherwise.
inline constexpr uint32_t kMaxFrameBytes = 256u << 20;
// Whatever the output limit, the server reads frames at least this large: the
// runner's Hello (the OpenAPI document) comes before the runner knows the limit.
inline constexpr uint32_t kMinFrameLimit = 16u << 20;
// What a frame needs besides its output: the id, the list of files, the tags.
inline constexpr uint32_t kFrameOverheadBytes = 1u << 20;

// The limit to read runner frames with when outputs may be `max_output_bytes`
// long (what Setup.max_frame_bytes tells the runner): the output, room for the
// rest of its frame, at least kMinFrameLimit, at most what a 4-byte length holds.
uint32_t RunnerFrameLimit(uint64_t max_output_bytes);

// Returns the 4-byte header followed by the serialized message.
std::string EncodeFrame(const google::protobuf::MessageLite& message);

// Writes one whole frame to `fd`, retrying short writes and EINTR.
absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message);

// Writes the frame of a message whose only field is `outer_field`, holding
// `inner` with the bytes field `field` set to `bytes`, without copying
// `bytes` into the frame: it is written after the rest of `inner` with
// writev() (protobuf reads fields in any order). `inner`'s own `field` must be
// empty. For a large Predict.input_text.
absl::Status WriteFrameWithTrailingBytes(int fd, int outer_field,
                                         const google::protobuf::MessageLite& inner, int field,
                                         absl::string_view bytes);

// Reads frames from a blocking stream fd.
class FrameReader {
 public:
  enum class Result {
    kMessage,      // `message` holds the next frame
    kEndOfStream,  // the peer closed between frames
    // A frame over the limit (discarded as it was read, never held whole) or
    // one that does not parse: the stream is still in step, read on.
    // skipped_reason() says what was wrong, skipped_prefix() holds its first
    // bytes (enough to tell which message it was, and whose).
    kSkipped,
  };

  // How much of a skipped frame skipped_prefix() keeps.
  static constexpr size_t kSkippedPrefixBytes = 4096;
  // How much of a frame RequireOneFieldFrames() looks at: a tag and a length.
  static constexpr uint32_t kOneFieldHeadBytes = 16;

  explicit FrameReader(int fd, uint32_t max_frame_bytes = kMaxFrameBytes)
      : fd_(fd), max_frame_bytes_(max_frame_bytes) {}

  // Every frame of the runner protocol holds exactly one length-delimited
  // field (the member of a RunnerMessage's oneof) spanning the frame. Once
  // this is called, a frame that does not parse or is over the limit, and
  // whose first bytes are not such a field, means the stream is out of step
  // (bytes that are no frame were written to the socket): Next() returns
  // DataLoss rather than skip it (which could swallow gigabytes of what
  // follows). Judged before an oversized frame is skipped.
  void RequireOneFieldFrames() { one_field_frames_ = true; }

  // Reads the next frame into `message`. An error (the stream cannot go on)
  // for a frame cut short by the end of the stream, or a read error.
  absl::StatusOr<Result> Next(google::protobuf::MessageLite* message);

  // Waits for new frames through `poller` (which reads the same fd) instead
  // of read(): see BusyPoller. Not owned; null reads as before.
  void ReadWith(BusyPoller* poller) { poller_ = poller; }

  uint32_t max_frame_bytes() const { return max_frame_bytes_; }
  // The last kSkipped frame: its size, its first bytes, what was wrong.
  uint32_t skipped_size() const { return skipped_size_; }
  const std::string& skipped_prefix() const { return skipped_prefix_; }
  const std::string& skipped_reason() const { return skipped_reason_; }

 private:
  // Reads `size` bytes, fewer only at the end of the stream. Reads of less
  // than kReadAhead go through a buffer that takes what the socket has (a
  // small frame's header and body in one read() instead of two).
  absl::StatusOr<size_t> ReadUpTo(char* out, size_t size);
  static constexpr size_t kReadAhead = 16 * 1024;
  // Bytes read, in a buffer that grows without zero-filling first (a
  // std::string's resize() does: ~3% of the server's time for a 1 MiB frame).
  class Buffer {
   public:
    const char* data() const { return data_.get(); }
    size_t size() const { return size_; }
    size_t capacity() const { return capacity_; }
    // Keeps the first min(size, n) bytes; the rest up to n is uninitialised.
    char* Resize(size_t n);
    void Release();
    std::string Prefix(size_t n) const { return std::string(data(), std::min(n, size_)); }

   private:
    std::unique_ptr<char[]> data_;
    size_t size_ = 0;
    size_t capacity_ = 0;
  };
  // Reads a frame body of `size` bytes, keeping the first `keep` in `out`; an
  // error if the stream ends first (`before`: bytes of the frame read earlier).
  absl::Status ReadBody(uint32_t size, Buffer* out, size_t keep, uint32_t before = 0);
  // DataLoss unless a frame of `size` bytes starting with `head` holds one field.
  absl::Status CheckOneField(const std::string& head, uint32_t size) const;

  int fd_;
  uint32_t max_frame_bytes_;
  BusyPoller* poller_ = nullptr;
  bool one_field_frames_ = false;
  Buffer payload_;
  std::unique_ptr<char[]> ahead_;  // kReadAhead bytes, once needed
  size_t ahead_begin_ = 0;
  size_t ahead_end_ = 0;
  uint32_t skipped_size_ = 0;
  std::string skipped_prefix_;
  std::string skipped_reason_;
};

}  // namespace cog

#endif  // COG_SERVER_FRAME_IO_H_
