#include "server/frame_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "server/busy_poller.h"

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

// Writes the frame (4 + `size` bytes, `size` the message's ByteSizeLong())
// to `out`.
void EncodeFrameTo(const google::protobuf::MessageLite& message, size_t size, char* out) {
  PutBigEndian32(static_cast<uint32_t>(size), out);
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out + 4));
}

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

char* PutVarint(uint64_t value, char* out) {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

// The tag of a length-delimited field (wire type 2).
uint64_t LengthDelimitedTag(int field) { return (static_cast<uint64_t>(field) << 3) | 2; }

// Writes every byte of `parts` (updated as they go out), retrying short
// writes and EINTR. MSG_NOSIGNAL: a runner that went away is an error to
// report, not SIGPIPE; writev() when `fd` is no socket (tests, fuzzers).
absl::Status WriteAll(int fd, iovec* parts, int count) {
  while (count > 0) {
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::writev(fd, parts, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("writing to runner: ", std::strerror(errno)));
    }
    size_t written = static_cast<size_t>(n);
    while (count > 0 && written >= parts->iov_len) {
      written -= parts->iov_len;
      ++parts;
      --count;
    }
    if (count > 0) {
      parts->iov_base = static_cast<char*>(parts->iov_base) + written;
      parts->iov_len -= written;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFrameSize(uint64_t size) {
  if (size <= kMaxFrameBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("frame of ", size, " bytes exceeds the limit of ", kMaxFrameBytes));
}

}  // namespace

std::string EncodeFrame(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  std::string frame(4 + size, '\0');
  EncodeFrameTo(message, size, frame.data());
  return frame;
}

absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  if (absl::Status fits = CheckFrameSize(size); !fits.ok()) return fits;
  // Not EncodeFrame's std::string: libstdc++ would zero-fill the whole frame
  // before it is serialized over (a memset of 1 MiB for a 1 MiB input).
  const size_t frame_size = 4 + size;
  std::unique_ptr<char[]> frame(new char[frame_size]);
  EncodeFrameTo(message, size, frame.get());
  iovec part = {frame.get(), frame_size};
  return WriteAll(fd, &part, 1);
}

absl::Status WriteFrameWithTrailingBytes(int fd, int outer_field,
                                         const google::protobuf::MessageLite& inner, int field,
                                         absl::string_view bytes) {
  const size_t inner_size = inner.ByteSizeLong();
  const uint64_t field_tag = LengthDelimitedTag(field);
  const uint64_t outer_tag = LengthDelimitedTag(outer_field);
  const uint64_t inner_total =
      inner_size + VarintSize(field_tag) + VarintSize(bytes.size()) + bytes.size();
  const uint64_t size = VarintSize(outer_tag) + VarintSize(inner_total) + inner_total;
  if (absl::Status fits = CheckFrameSize(size); !fits.ok()) return fits;
  // Everything but `bytes`: the header, the outer field's tag and length,
  // `inner` and the trailing field's tag and length.
  const size_t head_size = 4 + VarintSize(outer_tag) + VarintSize(inner_total) + inner_size +
                           VarintSize(field_tag) + VarintSize(bytes.size());
  std::unique_ptr<char[]> head(new char[head_size]);
  PutBigEndian32(static_cast<uint32_t>(size), head.get());
  char* at = PutVarint(inner_total, PutVarint(outer_tag, head.get() + 4));
  at = reinterpret_cast<char*>(inner.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(at)));
  PutVarint(bytes.size(), PutVarint(field_tag, at));
  iovec parts[2] = {{head.get(), head_size}, {const_cast<char*>(bytes.data()), bytes.size()}};
  return WriteAll(fd, parts, 2);
}

absl::StatusOr<size_t> FrameReader::ReadUpTo(char* out, size_t size) {
  size_t got = std::min(size, ahead_end_ - ahead_begin_);
  if (got > 0) {
    std::memcpy(out, ahead_.get() + ahead_begin_, got);
    ahead_begin_ += got;
  }
  while (got < size) {
    const size_t want = size - got;
    const bool ahead = want < kReadAhead;
    if (ahead && ahead_ == nullptr) ahead_ = std::make_unique<char[]>(kReadAhead);
    // read() returns what is there (at least a byte): never waits for more
    // than this frame needs.
    ssize_t n = !ahead ? ::read(fd_, out + got, want)
                : poller_ != nullptr ? poller_->Read(ahead_.get(), kReadAhead)
                                     : ::read(fd_, ahead_.get(), kReadAhead);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("reading from runner: ", std::strerror(errno)));
    }
    if (n == 0) break;
    if (ahead) {
      const size_t take = std::min(want, static_cast<size_t>(n));
      std::memcpy(out + got, ahead_.get(), take);
      ahead_begin_ = take;
      ahead_end_ = static_cast<size_t>(n);
      got += take;
    } else {
      got += static_cast<size_t>(n);
    }
  }
  return got;
}

char* FrameReader::Buffer::Resize(size_t n) {
  if (n > capacity_) {
    // new char[] leaves the bytes uninitialised; what was read is kept.
    std::unique_ptr<char[]> grown(new char[n]);
    if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = n;
  }
  size_ = n;
  return data_.get();
}

void FrameReader::Buffer::Release() {
  data_.reset();
  size_ = capacity_ = 0;
}

absl::Status FrameReader::ReadBody(uint32_t size, Buffer* out, size_t keep, uint32_t before) {
  constexpr size_t kChunk = 1 << 16;
  // Frames up to this size (nearly all) are read into one allocation.
  constexpr size_t kFirstGrowth = 4 << 20;
  char scratch[kChunk];
  keep = std::min<size_t>(keep, size);
  out->Resize(0);
  size_t got = 0;
  while (got < size) {
    size_t want;
    char* into;
    if (got < keep) {
      // `out` grows as the bytes come, doubling from kFirstGrowth: a size the
      // peer announces but never sends costs at most that much memory (and
      // no time: the buffer is not zero-filled).
      want = std::min(keep - got, std::max(got, kFirstGrowth));
      into = out->Resize(got + want) + got;
    } else {
      want = std::min<size_t>(size - got, kChunk);
      into = scratch;
    }
    absl::StatusOr<size_t> n = ReadUpTo(into, want);
    if (!n.ok()) return n.status();
    got += *n;
    if (*n < want) {
      out->Resize(std::min(got, keep));
      return absl::DataLossError(absl::StrCat(
          "runner closed the connection in the middle of a frame of ", uint64_t{size} + before,
          " bytes (", got + before, " read)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FrameReader::Result> FrameReader::Next(google::protobuf::MessageLite* message) {
  unsigned char header[4];
  absl::StatusOr<size_t> got = ReadUpTo(reinterpret_cast<char*>(header), 4);
  if (!got.ok()) return got.status();
  if (*got == 0) return Result::kEndOfStream;
  if (*got < 4) {
    return absl::DataLossError(absl::StrCat(
        "runner closed the connection in the middle of a frame header (", *got, " of 4 bytes)"));
  }
  const uint32_t size = GetBigEndian32(header);
  if (size > max_frame_bytes_) {
    // Its first bytes say whether it is a frame at all.
    std::string head;
    if (one_field_frames_) {
      const uint32_t head_size = std::min<uint32_t>(size, kOneFieldHeadBytes);
      Buffer read_head;
      if (absl::Status read = ReadBody(head_size, &read_head, head_size, 0); !read.ok()) return read;
      head = read_head.Prefix(head_size);
      if (absl::Status in_step = CheckOneField(head, size); !in_step.ok()) return in_step;
    }
    // The length says where the next frame starts: skip this one as it comes,
    // keeping only its beginning, rather than give up the whole connection.
    Buffer prefix;
    absl::Status read = ReadBody(size - static_cast<uint32_t>(head.size()), &prefix,
                                 kSkippedPrefixBytes - head.size(), static_cast<uint32_t>(head.size()));
    skipped_prefix_ = head + prefix.Prefix(prefix.size());
    if (!read.ok()) return read;
    skipped_size_ = size;
    skipped_reason_ =
        absl::StrCat("a frame of ", size, " bytes, over the limit of ", max_frame_bytes_);
    return Result::kSkipped;
  }
  if (absl::Status read = ReadBody(size, &payload_, size); !read.ok()) return read;
  // Protobuf parses at most INT_MAX bytes (2 GiB); a larger frame is skipped.
  const bool parsed = payload_.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
                      message->ParseFromArray(payload_.data(), static_cast<int>(payload_.size()));
  if (!parsed && one_field_frames_) {
    if (absl::Status in_step = CheckOneField(payload_.Prefix(kOneFieldHeadBytes), size);
        !in_step.ok()) {
      return in_step;
    }
  }
  if (!parsed) {
    skipped_size_ = size;
    skipped_prefix_ = payload_.Prefix(kSkippedPrefixBytes);
    skipped_reason_ =
        absl::StrCat("a frame of ", size, " bytes that is not a valid ", message->GetTypeName());
  }
  // The buffer is kept for the next frame (a new allocation of a large one
  // costs page faults each time), unless it is larger than most frames are.
  if (payload_.capacity() > (8u << 20)) payload_.Release();
  return parsed ? Result::kMessage : Result::kSkipped;
}

absl::Status FrameReader::CheckOneField(const std::string& head, uint32_t size) const {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(head.data()),
                                            static_cast<int>(head.size()));
  const uint32_t tag = in.ReadTag();
  uint32_t length = 0;
  if ((tag >> 3) != 0 && (tag & 7) == 2 && in.ReadVarint32(&length) &&
      static_cast<uint64_t>(in.CurrentPosition()) + length == size) {
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat(
      "the stream from the runner is out of step: a frame of ", size,
      " bytes that is no runner message begins with \"",
      absl::CHexEscape(head.substr(0, 8)), "\" (bytes that are no frame were written to the runner's socket)"));
}

uint32_t RunnerFrameLimit(uint64_t max_output_bytes) {
  if (max_output_bytes >= UINT32_MAX - kFrameOverheadBytes) return UINT32_MAX;
  return std::max<uint32_t>(static_cast<uint32_t>(max_output_bytes) + kFrameOverheadBytes,
                            kMinFrameLimit);
}

}  // namespace cog
