// RunnerConnection: one connected runner socket, read by its own thread.
//
// Owns the fd. Every frame the runner sends is handed, in order, to the
// Listener on the reader thread; when the stream ends (or breaks) the Listener
// hears it once. Send() is thread-safe; frames from concurrent senders are never
// interleaved. The Listener is not owned and must outlive this object.
//
// A bad frame costs one prediction at most, never the connection; bytes that
// are no frame at all (see FrameReader::RequireOneFieldFrames) end it, as the
// stream can no longer be followed. A frame from
// the runner over the limit (skipped as it is read, never held whole) or that
// does not parse is logged, and the Listener hears what it stood for, as far as
// its first bytes tell: a Done(failed) for an Output or Done of a prediction, a
// note in the logs for its Log or Metric, a failed SetupDone or Hello. A
// BadFrame (the runner could not decode a frame the server sent) is logged and,
// when it names a prediction, becomes that prediction's Done(failed); the
// Listener never sees a BadFrame itself.
#ifndef COG_SERVER_RUNNER_CONNECTION_H_
#define COG_SERVER_RUNNER_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "cog/v1/runner.pb.h"
#include "server/busy_poller.h"
#include "server/frame_io.h"

namespace cog {

// Where the core sends frames to the runner. An interface so that the core's
// tests can stand in for a runner.
class RunnerChannel {
 public:
  virtual ~RunnerChannel() = default;
  virtual absl::Status Send(const v1::runner::ServerMessage& message) = 0;
  // A Predict (input_text empty) with `input_text` as its input_text, which
  // a real connection writes without copying it into the frame.
  virtual absl::Status SendPredict(const v1::runner::ServerMessage& message,
                                   absl::string_view input_text) {
    if (input_text.empty()) return Send(message);
    v1::runner::ServerMessage whole = message;
    whole.mutable_predict()->set_input_text(std::string(input_text));
    return Send(whole);
  }
};

class RunnerConnection : public RunnerChannel {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnRunnerMessage(v1::runner::RunnerMessage message) = 0;
    // The stream ended: OK for a clean close, the error otherwise.
    virtual void OnRunnerDisconnected(absl::Status why) = 0;
  };

  // Reads frames of up to `max_frame_bytes` (see RunnerFrameLimit).
  // `busy_poll`: how long at most the reader thread polls the socket for the
  // next frame before it sleeps (BusyPoller); zero sleeps at once.
  RunnerConnection(int fd, Listener* listener, uint32_t max_frame_bytes = kMaxFrameBytes,
                   BusyPollOptions busy_poll = {});
  ~RunnerConnection() override;
  RunnerConnection(const RunnerConnection&) = delete;
  RunnerConnection& operator=(const RunnerConnection&) = delete;

  // Starts the reader thread; ResourceExhausted if there can be none (a pids
  // limit reached), and then nothing is read.
  absl::Status Start();
  absl::Status Send(const v1::runner::ServerMessage& message) override;
  absl::Status SendPredict(const v1::runner::ServerMessage& message,
                           absl::string_view input_text) override;
  // Shuts the socket down; the reader thread ends and the Listener hears it.
  void Close();

 private:
  void ReadLoop();
  // Writes a Predict with `write`, telling the poller.
  absl::Status WritePredict(absl::FunctionRef<absl::Status()> write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Hands `message` to the Listener (a Done fulfils its Predict).
  void Deliver(v1::runner::RunnerMessage message);
  // What a frame that could not be read stood for, from its first bytes.
  void OnSkippedFrame(const FrameReader& reader);
  void OnBadFrame(const v1::runner::BadFrame& bad);

  const int fd_;
  Listener* const listener_;
  const uint32_t max_frame_bytes_;
  // Null unless busy polling: Expect()s each Predict, Fulfilled() by its Done.
  const std::unique_ptr<BusyPoller> poller_;
  absl::Mutex write_mu_;
  bool closed_ ABSL_GUARDED_BY(write_mu_) = false;
  std::thread reader_;
};

}  // namespace cog

#endif  // COG_SERVER_RUNNER_CONNECTION_H_
