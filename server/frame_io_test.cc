#include "server/frame_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "cog/v1/runner.pb.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

using ::cog::v1::runner::RunnerMessage;
using ::cog::v1::runner::ServerMessage;

class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  ~SocketPair() {
    CloseWriter();
    CloseReader();
  }
  int reader() const { return fds_[0]; }
  int writer() const { return fds_[1]; }
  void CloseWriter() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  void CloseReader() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
  }
  void WriteRaw(const std::string& bytes) {
    ASSERT_EQ(::write(writer(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(FrameIoTest, HeaderIsBigEndianLength) {
  ServerMessage message;
  message.mutable_cancel()->set_id("abc");
  const std::string frame = EncodeFrame(message);
  ASSERT_GE(frame.size(), 4u);
  const size_t body = frame.size() - 4;
  EXPECT_EQ(static_cast<unsigned char>(frame[0]), 0);
  EXPECT_EQ(static_cast<unsigned char>(frame[3]), body);
  ServerMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(frame.substr(4)));
  EXPECT_EQ(parsed.cancel().id(), "abc");
}

TEST(FrameIoTest, RoundTripsSeveralFramesThenCleanEof) {
  SocketPair pair;
  for (int i = 0; i < 3; ++i) {
    RunnerMessage message;
    message.mutable_log()->set_id("p" + std::to_string(i));
    message.mutable_log()->set_text(std::string(1000 * i, 'x') + "\n");
    ASSERT_TRUE(WriteFrame(pair.writer(), message).ok());
  }
  // An empty message is a valid zero-length frame.
  ASSERT_TRUE(WriteFrame(pair.writer(), RunnerMessage()).ok());
  pair.CloseWriter();

  FrameReader reader(pair.reader());
  for (int i = 0; i < 3; ++i) {
    RunnerMessage message;
    absl::StatusOr<bool> more = reader.Next(&message);
    ASSERT_TRUE(more.ok()) << more.status();
    ASSERT_TRUE(*more);
    EXPECT_EQ(message.log().id(), "p" + std::to_string(i));
    EXPECT_EQ(message.log().text().size(), 1000u * i + 1);
  }
  RunnerMessage empty;
  ASSERT_TRUE(*reader.Next(&empty));
  EXPECT_EQ(empty.message_case(), RunnerMessage::MESSAGE_NOT_SET);
  RunnerMessage after_end;
  absl::StatusOr<bool> end = reader.Next(&after_end);
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
}

TEST(FrameIoTest, TruncatedFrameIsDataLoss) {
  SocketPair pair;
  pair.WriteRaw(std::string("\x00\x00\x00\x10" "abc", 7));
  pair.CloseWriter();
  FrameReader reader(pair.reader());
  RunnerMessage message;
  absl::StatusOr<bool> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(result.status().message().find("middle of a frame"), std::string::npos);
}

TEST(FrameIoTest, OversizedLengthIsRefusedWithoutReadingIt) {
  SocketPair pair;
  pair.WriteRaw(std::string("\x7f\xff\xff\xff", 4));
  FrameReader reader(pair.reader(), /*max_frame_bytes=*/1024);
  RunnerMessage message;
  absl::StatusOr<bool> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(result.status().message().find("over the limit"), std::string::npos);
}

TEST(FrameIoTest, GarbagePayloadIsDataLoss) {
  SocketPair pair;
  // Field 1, wire type 2 (length-delimited) claiming 100 bytes that are not there.
  pair.WriteRaw(std::string("\x00\x00\x00\x02\x0a\x64", 6));
  FrameReader reader(pair.reader());
  RunnerMessage message;
  absl::StatusOr<bool> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
}

TEST(FrameIoTest, WriteToClosedPeerIsAnErrorNotSigpipe) {
  SocketPair pair;
  pair.CloseReader();
  ServerMessage message;
  message.mutable_shutdown();
  absl::Status status = absl::OkStatus();
  // The first write may still land in the socket buffer; keep writing until it fails.
  for (int i = 0; i < 100 && status.ok(); ++i) status = WriteFrame(pair.writer(), message);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cog
