#include "server/runner_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

namespace runner = ::cog::v1::runner;

// Which RunnerMessage a frame holds and whose it is, read from its first bytes
// as far as they go: the oneof member's field number, and its field 1 (the id
// of a Log, Output, Metric or Done).
struct FrameHead {
  int member = 0;
  std::string id;
};

FrameHead ReadHead(const std::string& prefix) {
  FrameHead head;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(prefix.data()),
                                            static_cast<int>(prefix.size()));
  uint32_t tag = in.ReadTag();
  uint32_t length = 0;
  if ((tag & 7) != 2 || !in.ReadVarint32(&length)) return head;
  head.member = static_cast<int>(tag >> 3);
  while ((tag = in.ReadTag()) != 0) {
    uint64_t value = 0;
    switch (tag & 7) {
      case 0:
        if (!in.ReadVarint64(&value)) return head;
        break;
      case 1:
        if (!in.Skip(8)) return head;
        break;
      case 2:
        if (!in.ReadVarint32(&length)) return head;
        if ((tag >> 3) == 1) {
          if (!in.ReadString(&head.id, static_cast<int>(length))) head.id.clear();
          return head;
        }
        if (!in.Skip(static_cast<int>(length))) return head;
        break;
      case 5:
        if (!in.Skip(4)) return head;
        break;
      default:
        return head;
    }
  }
  return head;
}

runner::RunnerMessage FailedDone(const std::string& id, std::string error) {
  runner::RunnerMessage message;
  runner::Done* done = message.mutable_done();
  done->set_id(id);
  done->set_status(runner::DONE_STATUS_FAILED);
  done->set_error(std::move(error));
  return message;
}

}  // namespace

RunnerConnection::RunnerConnection(int fd, Listener* listener, uint32_t max_frame_bytes,
                                   BusyPollOptions busy_poll)
    : fd_(fd),
      listener_(listener),
      max_frame_bytes_(max_frame_bytes),
      poller_(busy_poll.max.count() > 0 ? std::make_unique<BusyPoller>(fd, busy_poll) : nullptr) {}

RunnerConnection::~RunnerConnection() {
  Close();
  if (reader_.joinable()) reader_.join();
  ::close(fd_);
}

absl::Status RunnerConnection::Start() {
  try {
    reader_ = std::thread([this] { ReadLoop(); });
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start a thread to read the runner's socket: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status RunnerConnection::Send(const v1::runner::ServerMessage& message) {
  absl::MutexLock lock(&write_mu_);
  if (closed_) return absl::UnavailableError("the runner connection is closed");
  if (!message.has_predict()) return WriteFrame(fd_, message);
  return WritePredict([&] { return WriteFrame(fd_, message); });
}

absl::Status RunnerConnection::WritePredict(absl::FunctionRef<absl::Status()> write) {
  if (poller_ == nullptr) return write();
  poller_->Expect();  // before: the Done may be read before the write returns
  absl::Status sent = write();
  if (sent.ok()) {
    poller_->Wake();
  } else {
    poller_->Fulfilled();
  }
  return sent;
}

absl::Status RunnerConnection::SendPredict(const v1::runner::ServerMessage& message,
                                           absl::string_view input_text) {
  if (input_text.empty() || !message.has_predict() || !message.predict().input_text().empty()) {
    return RunnerChannel::SendPredict(message, input_text);
  }
  absl::MutexLock lock(&write_mu_);
  if (closed_) return absl::UnavailableError("the runner connection is closed");
  return WritePredict([&] {
    return WriteFrameWithTrailingBytes(fd_, v1::runner::ServerMessage::kPredictFieldNumber,
                                       message.predict(), v1::runner::Predict::kInputTextFieldNumber,
                                       input_text);
  });
}

void RunnerConnection::Close() {
  absl::MutexLock lock(&write_mu_);
  if (closed_) return;
  closed_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

void RunnerConnection::ReadLoop() {
  FrameReader reader(fd_, max_frame_bytes_);
  reader.RequireOneFieldFrames();  // bytes that are no frame end the connection
  reader.ReadWith(poller_.get());
  while (true) {
    runner::RunnerMessage message;
    absl::StatusOr<FrameReader::Result> result = reader.Next(&message);
    if (!result.ok()) {
      listener_->OnRunnerDisconnected(result.status());
      return;
    }
    switch (*result) {
      case FrameReader::Result::kEndOfStream:
        listener_->OnRunnerDisconnected(absl::OkStatus());
        return;
      case FrameReader::Result::kSkipped:
        OnSkippedFrame(reader);
        break;
      case FrameReader::Result::kMessage:
        if (message.has_bad_frame()) {
          OnBadFrame(message.bad_frame());
        } else {
          Deliver(std::move(message));
        }
        break;
    }
  }
}

void RunnerConnection::Deliver(runner::RunnerMessage message) {
  if (poller_ != nullptr) {
    if (message.has_done()) {
      poller_->Fulfilled();
    } else {
      poller_->Progress();
    }
  }
  listener_->OnRunnerMessage(std::move(message));
}

void RunnerConnection::OnSkippedFrame(const FrameReader& reader) {
  const FrameHead head = ReadHead(reader.skipped_prefix());
  std::string reason = reader.skipped_reason();
  if (reader.skipped_size() > reader.max_frame_bytes()) {
    absl::StrAppend(&reason, " (cog-server --max-output-bytes)");
  }
  spdlog::error("skipped a frame from the runner: {} (message field {}, prediction \"{}\")", reason,
                head.member, absl::CHexEscape(head.id));
  runner::RunnerMessage stand_in;
  switch (head.member) {
    case runner::RunnerMessage::kHello:
      stand_in.mutable_hello()->set_protocol_version(runner::PROTOCOL_VERSION_CURRENT);
      stand_in.mutable_hello()->set_load_error(
          absl::StrCat("cog-server could not read the runner's Hello: ", reason));
      break;
    case runner::RunnerMessage::kSetupDone:
      stand_in.mutable_setup_done()->set_error(
          absl::StrCat("cog-server could not read the runner's SetupDone: ", reason));
      break;
    case runner::RunnerMessage::kOutput:
    case runner::RunnerMessage::kDone:
      if (head.id.empty()) return;
      stand_in = FailedDone(
          head.id, absl::StrCat("cog-server could not read this prediction's output from the runner: ",
                                reason));
      break;
    case runner::RunnerMessage::kLog:
    case runner::RunnerMessage::kMetric: {
      if (head.id.empty()) return;
      runner::Log* log = stand_in.mutable_log();
      log->set_id(head.id);
      log->set_source(runner::LOG_SOURCE_RUNNER);
      log->set_text(absl::StrCat("cog-server dropped ",
                                 head.member == runner::RunnerMessage::kLog ? "logs" : "a metric",
                                 " of this prediction: ", reason, "\n"));
      break;
    }
    default:
      return;
  }
  Deliver(std::move(stand_in));
}

void RunnerConnection::OnBadFrame(const runner::BadFrame& bad) {
  spdlog::error("the runner could not decode a frame from the server and skipped it: {}{}",
                bad.error(),
                bad.id().empty() ? ""
                                 : absl::StrCat(" (prediction \"", absl::CHexEscape(bad.id()), "\")"));
  if (bad.id().empty()) return;
  Deliver(FailedDone(
      bad.id(), absl::StrCat("the runner could not read the request of this prediction: ",
                             bad.error())));
}

}  // namespace cog
