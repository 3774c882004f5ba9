#include "server/frame_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cog {
namespace {

void PutBigEndian32(uint32_t value, char* out) {
  out[0] = static_cast<char>((value >> 24) & 0xff);
  out[1] = static_cast<char>((value >> 16) & 0xff);
  out[2] = static_cast<char>((value >> 8) & 0xff);
  out[3] = static_cast<char>(value & 0xff);
}

uint32_t GetBigEndian32(const unsigned char* in) {
  return (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) | (uint32_t{in[2]} << 8) |
         uint32_t{in[3]};
}

}  // namespace

std::string EncodeFrame(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  std::string frame(4 + size, '\0');
  PutBigEndian32(static_cast<uint32_t>(size), frame.data());
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(frame.data() + 4));
  return frame;
}

absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message) {
  if (message.ByteSizeLong() > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame of ", message.ByteSizeLong(), " bytes exceeds the limit of ",
                     kMaxFrameBytes));
  }
  const std::string frame = EncodeFrame(message);
  size_t written = 0;
  while (written < frame.size()) {
    // MSG_NOSIGNAL: a runner that went away is an error to report, not SIGPIPE.
    ssize_t n = ::send(fd, frame.data() + written, frame.size() - written, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) {
      n = ::write(fd, frame.data() + written, frame.size() - written);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("writing to runner: ", std::strerror(errno)));
    }
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> FrameReader::ReadExactly(char* out, size_t size, bool eof_ok) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::read(fd_, out + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("reading from runner: ", std::strerror(errno)));
    }
    if (n == 0) {
      if (got == 0 && eof_ok) return false;
      return absl::DataLossError(
          absl::StrCat("runner closed the connection in the middle of a frame (", got, " of ",
                       size, " bytes)"));
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

absl::StatusOr<bool> FrameReader::Next(google::protobuf::MessageLite* message) {
  unsigned char header[4];
  absl::StatusOr<bool> more = ReadExactly(reinterpret_cast<char*>(header), 4, /*eof_ok=*/true);
  if (!more.ok() || !*more) return more;
  const uint32_t size = GetBigEndian32(header);
  if (size > max_frame_bytes_) {
    return absl::DataLossError(absl::StrCat("runner sent a frame of ", size,
                                            " bytes, over the limit of ", max_frame_bytes_));
  }
  payload_.resize(size);
  absl::StatusOr<bool> body = ReadExactly(payload_.data(), size, /*eof_ok=*/false);
  if (!body.ok()) return body.status();
  if (!message->ParseFromString(payload_)) {
    return absl::DataLossError(absl::StrCat("runner sent a frame of ", size,
                                            " bytes that is not a valid ",
                                            message->GetTypeName()));
  }
  return true;
}

}  // namespace cog
