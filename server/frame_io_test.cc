#include "server/frame_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cog/v1/runner.pb.h"
#include "gtest/gtest.h"
#include "server/busy_poller.h"

namespace cog {
namespace {

using ::cog::v1::runner::RunnerMessage;
using ::cog::v1::runner::ServerMessage;
using Result = FrameReader::Result;

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
    absl::StatusOr<Result> more = reader.Next(&message);
    ASSERT_TRUE(more.ok()) << more.status();
    ASSERT_EQ(*more, Result::kMessage);
    EXPECT_EQ(message.log().id(), "p" + std::to_string(i));
    EXPECT_EQ(message.log().text().size(), 1000u * i + 1);
  }
  RunnerMessage empty;
  ASSERT_EQ(*reader.Next(&empty), Result::kMessage);
  EXPECT_EQ(empty.message_case(), RunnerMessage::MESSAGE_NOT_SET);
  RunnerMessage after_end;
  absl::StatusOr<Result> end = reader.Next(&after_end);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, Result::kEndOfStream);
}

TEST(FrameIoTest, ManySmallFramesInOneWriteAndOneSplitByteByByteAllArrive) {
  // The reader takes what the socket has: frames that arrived together, a
  // large frame after small ones, and a frame that comes a byte at a time
  // must each come out whole and in order.
  SocketPair pair;
  std::string together;
  for (int i = 0; i < 500; ++i) {
    ServerMessage message;
    message.mutable_cancel()->set_id("id-" + std::to_string(i));
    together += EncodeFrame(message);
  }
  ServerMessage large;
  large.mutable_cancel()->set_id(std::string(100000, 'x'));
  together += EncodeFrame(large);
  ServerMessage last;
  last.mutable_cancel()->set_id("last");
  const std::string last_frame = EncodeFrame(last);
  std::thread writer([&] {
    pair.WriteRaw(together);
    for (char byte : last_frame) pair.WriteRaw(std::string(1, byte));
    pair.CloseWriter();
  });
  FrameReader reader(pair.reader());
  ServerMessage message;
  for (int i = 0; i < 500; ++i) {
    absl::StatusOr<Result> result = reader.Next(&message);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(*result, Result::kMessage);
    ASSERT_EQ(message.cancel().id(), "id-" + std::to_string(i));
  }
  absl::StatusOr<Result> result = reader.Next(&message);
  ASSERT_TRUE(result.ok() && *result == Result::kMessage);
  EXPECT_EQ(message.cancel().id().size(), 100000u);
  result = reader.Next(&message);
  ASSERT_TRUE(result.ok() && *result == Result::kMessage);
  EXPECT_EQ(message.cancel().id(), "last");
  result = reader.Next(&message);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, Result::kEndOfStream);
  writer.join();
}

TEST(FrameIoTest, TruncatedFrameIsDataLoss) {
  SocketPair pair;
  pair.WriteRaw(std::string("\x00\x00\x00\x10" "abc", 7));
  pair.CloseWriter();
  FrameReader reader(pair.reader());
  RunnerMessage message;
  absl::StatusOr<Result> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(result.status().message().find("middle of a frame"), std::string::npos);
}

TEST(FrameIoTest, AnnouncedSizeThatNeverArrivesIsDataLossNotAnAllocation) {
  SocketPair pair;
  // 255 MiB announced (under the limit), 3 bytes sent.
  pair.WriteRaw(std::string("\x0f\xf0\x00\x00" "abc", 7));
  pair.CloseWriter();
  FrameReader reader(pair.reader());
  RunnerMessage message;
  absl::StatusOr<Result> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(result.status().message().find("middle of a frame of 267386880 bytes"),
            std::string::npos)
      << result.status();
}

TEST(FrameIoTest, FramesLargerThanOneReadChunkRoundTrip) {
  SocketPair pair;
  RunnerMessage big;
  big.mutable_output()->set_id("p");
  big.mutable_output()->set_value_json(std::string(3 << 20, 'v'));
  const std::string frame = EncodeFrame(big);
  std::thread writer([&] { pair.WriteRaw(frame + frame); });
  FrameReader reader(pair.reader());
  for (int i = 0; i < 2; ++i) {
    RunnerMessage message;
    absl::StatusOr<Result> more = reader.Next(&message);
    ASSERT_TRUE(more.ok()) << more.status();
    ASSERT_EQ(*more, Result::kMessage);
    EXPECT_EQ(message.output().value_json().size(), size_t{3} << 20);
  }
  writer.join();
}

TEST(FrameIoTest, TrailingBytesReadAsIfTheFieldWereSetInPlace) {
  // Sizes around one varint byte and the socket's buffer, so that the
  // length prefixes grow and writev() is cut short and resumed.
  for (size_t size : {size_t{1}, size_t{127}, size_t{128}, size_t{16383}, size_t{16384},
                      size_t{3} << 20}) {
    SocketPair pair;
    ServerMessage message;
    message.mutable_predict()->set_id("p-1");
    message.mutable_predict()->set_input_json(R"({"s":null,"n":3})");
    message.mutable_predict()->set_input_text_name("s");
    std::string text(size, 't');
    text.back() = 'z';
    absl::Status written;
    std::thread writer([&] {
      written = WriteFrameWithTrailingBytes(pair.writer(), ServerMessage::kPredictFieldNumber,
                                            message.predict(),
                                            v1::runner::Predict::kInputTextFieldNumber, text);
      // Then an ordinary frame: the stream is still in step.
      ServerMessage cancel;
      cancel.mutable_cancel()->set_id("p-1");
      if (written.ok()) written = WriteFrame(pair.writer(), cancel);
    });
    FrameReader reader(pair.reader());
    ServerMessage got;
    absl::StatusOr<Result> first = reader.Next(&got);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ(*first, Result::kMessage) << "size " << size;
    ServerMessage expected = message;
    expected.mutable_predict()->set_input_text(text);
    EXPECT_EQ(got.SerializeAsString(), expected.SerializeAsString()) << "size " << size;
    ServerMessage next;
    absl::StatusOr<Result> second = reader.Next(&next);
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(next.cancel().id(), "p-1");
    writer.join();
    EXPECT_TRUE(written.ok()) << written;
  }
}

RunnerMessage LogOf(const std::string& id, const std::string& text) {
  RunnerMessage message;
  message.mutable_log()->set_id(id);
  message.mutable_log()->set_text(text);
  return message;
}

TEST(FrameIoTest, OversizedFrameIsSkippedAndTheNextOneRead) {
  SocketPair pair;
  // Written from a thread: the big frame does not fit in the socket buffer.
  std::thread writer([&pair] {
    EXPECT_TRUE(WriteFrame(pair.writer(), LogOf("big", std::string(1 << 20, 'x'))).ok());
    EXPECT_TRUE(WriteFrame(pair.writer(), LogOf("next", "fine\n")).ok());
    pair.CloseWriter();
  });
  FrameReader reader(pair.reader(), /*max_frame_bytes=*/1024);
  RunnerMessage message;
  absl::StatusOr<Result> result = reader.Next(&message);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, Result::kSkipped);
  EXPECT_GT(reader.skipped_size(), 1u << 20);
  EXPECT_NE(reader.skipped_reason().find("over the limit of 1024"), std::string::npos);
  // Its beginning is kept: enough to tell whose it was.
  EXPECT_EQ(reader.skipped_prefix().size(), FrameReader::kSkippedPrefixBytes);
  EXPECT_NE(reader.skipped_prefix().find("big"), std::string::npos);

  result = reader.Next(&message);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(*result, Result::kMessage);
  EXPECT_EQ(message.log().id(), "next");
  EXPECT_EQ(*reader.Next(&message), Result::kEndOfStream);
  writer.join();
}

TEST(FrameIoTest, OversizedFrameCutShortIsDataLoss) {
  SocketPair pair;
  pair.WriteRaw(std::string("\x7f\xff\xff\xff", 4) + std::string(5000, 'x'));
  pair.CloseWriter();
  FrameReader reader(pair.reader(), /*max_frame_bytes=*/1024);
  RunnerMessage message;
  absl::StatusOr<Result> result = reader.Next(&message);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
}

TEST(FrameIoTest, FramesThatDoNotParseAreSkippedAndTheNextOneRead) {
  SocketPair pair;
  // Field 1, wire type 2 (length-delimited) claiming 100 bytes that are not there.
  pair.WriteRaw(std::string("\x00\x00\x00\x02\x0a\x64", 6));
  // A Log whose text is not UTF-8 (a proto3 string must be).
  pair.WriteRaw(std::string("\x00\x00\x00\x07\x1a\x05\x1a\x03\xff\xfe\xfd", 11));
  ASSERT_TRUE(WriteFrame(pair.writer(), LogOf("next", "fine\n")).ok());
  FrameReader reader(pair.reader());
  RunnerMessage message;
  absl::StatusOr<Result> result = reader.Next(&message);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, Result::kSkipped);
  EXPECT_NE(reader.skipped_reason().find("not a valid cog.v1.runner.RunnerMessage"),
            std::string::npos);
  EXPECT_EQ(reader.skipped_prefix(), std::string("\x0a\x64", 2));
  EXPECT_EQ(*reader.Next(&message), Result::kSkipped);
  result = reader.Next(&message);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(*result, Result::kMessage);
  EXPECT_EQ(message.log().id(), "next");
}

TEST(FrameIoTest, BytesThatAreNoFrameEndAStreamOfOneFieldFrames) {
  // What a predictor writing to the runner's socket looks like: a "length" of
  // 3.7 GB over the limit, and junk within it. Neither is skipped (which would
  // swallow what follows): the stream is out of step.
  for (const std::string& junk : {std::string(64, '\xde'), std::string("\x00\x00\x00\x08" "\xff\xff\xff\xff\xff\xff\xff\xff", 12)}) {
    SocketPair pair;
    pair.WriteRaw(junk);
    ASSERT_TRUE(WriteFrame(pair.writer(), LogOf("next", "swallowed\n")).ok());
    FrameReader reader(pair.reader(), /*max_frame_bytes=*/1024);
    reader.RequireOneFieldFrames();
    RunnerMessage message;
    absl::StatusOr<Result> result = reader.Next(&message);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << junk.size();
    EXPECT_NE(result.status().message().find("out of step"), std::string::npos) << result.status();
  }
  // Frames that are one field but do not parse, or are over the limit, are
  // still skipped one by one.
  SocketPair pair;
  pair.WriteRaw(std::string("\x00\x00\x00\x07\x1a\x05\x1a\x03\xff\xfe\xfd", 11));
  std::thread writer([&pair] {
    EXPECT_TRUE(WriteFrame(pair.writer(), LogOf("big", std::string(1 << 20, 'x'))).ok());
    EXPECT_TRUE(WriteFrame(pair.writer(), LogOf("next", "fine\n")).ok());
  });
  FrameReader reader(pair.reader(), /*max_frame_bytes=*/1024);
  reader.RequireOneFieldFrames();
  RunnerMessage message;
  EXPECT_EQ(*reader.Next(&message), Result::kSkipped);
  EXPECT_EQ(*reader.Next(&message), Result::kSkipped);
  EXPECT_EQ(reader.skipped_prefix().size(), FrameReader::kSkippedPrefixBytes);
  EXPECT_NE(reader.skipped_prefix().find("big"), std::string::npos);
  absl::StatusOr<Result> result = reader.Next(&message);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(*result, Result::kMessage);
  EXPECT_EQ(message.log().id(), "next");
  writer.join();
}

TEST(FrameIoTest, RunnerFrameLimitLeavesRoomAndAFloor) {
  EXPECT_EQ(RunnerFrameLimit(0), kMinFrameLimit);
  EXPECT_EQ(RunnerFrameLimit(1000), kMinFrameLimit);
  EXPECT_EQ(RunnerFrameLimit(100u << 20), (100u << 20) + kFrameOverheadBytes);
  EXPECT_EQ(RunnerFrameLimit(uint64_t{1} << 40), UINT32_MAX);
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

// Reads frames until the end of the stream: their cancel ids, then "<end>"
// or "<error ...>".
std::vector<std::string> ReadAll(FrameReader& reader) {
  std::vector<std::string> ids;
  while (true) {
    ServerMessage message;
    absl::StatusOr<Result> result = reader.Next(&message);
    if (!result.ok()) {
      ids.push_back("<error " + result.status().ToString() + ">");
      return ids;
    }
    if (*result == Result::kEndOfStream) {
      ids.push_back("<end>");
      return ids;
    }
    ids.push_back(message.cancel().id());
  }
}

std::string CancelFrame(const std::string& id) {
  ServerMessage message;
  message.mutable_cancel()->set_id(id);
  return EncodeFrame(message);
}

TEST(FrameIoTest, BusyPollingReaderReadsFramesInPiecesAndTheirEnd) {
  // Frames that come together, a byte at a time, after pauses longer than
  // the polls (the reader sleeps then), then a frame cut short: what comes
  // out is what a reader that never polls reads.
  for (const bool poll : {false, true}) {
    SocketPair pair;
    FrameReader reader(pair.reader());
    BusyPoller poller(pair.reader(), {std::chrono::microseconds(200)});
    if (poll) {
      reader.ReadWith(&poller);
      poller.Expect();
    }
    std::vector<std::string> ids;
    std::thread thread([&] { ids = ReadAll(reader); });
    pair.WriteRaw(CancelFrame("a") + CancelFrame("b"));
    for (char byte : CancelFrame("bytes")) pair.WriteRaw(std::string(1, byte));
    const std::string paused = CancelFrame(std::string(100000, 'p'));
    pair.WriteRaw(paused.substr(0, 3));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pair.WriteRaw(paused.substr(3, 5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pair.WriteRaw(paused.substr(5003));
    const std::string cut = CancelFrame("cut short");
    pair.WriteRaw(cut.substr(0, cut.size() - 2));
    pair.CloseWriter();
    thread.join();
    ASSERT_EQ(ids.size(), 5u) << (poll ? "polling" : "not polling");
    EXPECT_EQ(ids[0], "a");
    EXPECT_EQ(ids[1], "b");
    EXPECT_EQ(ids[2], "bytes");
    EXPECT_EQ(ids[3], std::string(100000, 'p'));
    EXPECT_NE(ids[4].find("DATA_LOSS"), std::string::npos) << ids[4];
  }
}

TEST(FrameIoTest, BusyPollingOnAPipeReadsAsWithoutIt) {
  // recv() cannot poll a pipe (ENOTSOCK): the reader reads it as it would
  // without a BusyPoller, rather than failing.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  FrameReader reader(fds[0]);
  BusyPoller poller(fds[0], {std::chrono::microseconds(200)});
  reader.ReadWith(&poller);
  poller.Expect();
  const std::string frames = CancelFrame("one") + CancelFrame("two");
  ASSERT_EQ(::write(fds[1], frames.data(), frames.size()), static_cast<ssize_t>(frames.size()));
  ::close(fds[1]);
  EXPECT_EQ(ReadAll(reader), (std::vector<std::string>{"one", "two", "<end>"}));
  ::close(fds[0]);
}

}  // namespace
}  // namespace cog
