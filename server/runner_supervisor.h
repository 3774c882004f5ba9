// RunnerSupervisor: brings the runner up and watches it die.
//
// Listens on the runner socket, spawns the Python runner (unless it is started
// by someone else, as in a Kubernetes sidecar), waits for it to connect, and
// hands the connection and every frame to the PredictionService. When the
// runner's stream ends or its process exits, the service hears once why.
//
// Owns the socket, the child process and the connection; Stop() (or the
// destructor) shuts the runner down and cleans up all three. The service is not
// owned and must outlive this object. Thread-safe.
#ifndef COG_SERVER_RUNNER_SUPERVISOR_H_
#define COG_SERVER_RUNNER_SUPERVISOR_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/prediction_service.h"
#include "server/runner_connection.h"
#include "server/runner_process.h"
#include "server/runner_socket.h"

namespace cog {

class RunnerSupervisor : public RunnerConnection::Listener {
 public:
  struct Options {
    // Empty: do not spawn; wait for a runner started elsewhere.
    RunnerCommand command;
    // Empty: a private directory; else where to listen (a shared volume).
    std::string socket_path;
    absl::Duration connect_timeout = absl::Minutes(5);
    // The largest output the runner may send; frames are read up to
    // RunnerFrameLimit of it.
    uint64_t max_output_bytes = kMaxFrameBytes;
  };

  RunnerSupervisor(Options options, PredictionService* service);
  ~RunnerSupervisor() override;

  // Creates the socket and spawns the runner; the connection is awaited in the
  // background. Fails when the socket or the process cannot be created.
  absl::Status Start();

  // Asks the runner to exit, waits up to `grace`, then kills it.
  void Stop(absl::Duration grace);

  // The socket path the runner connects to.
  std::string socket_path() const;

  void OnRunnerMessage(v1::runner::RunnerMessage message) override;
  void OnRunnerDisconnected(absl::Status why) override;

 private:
  void AwaitConnection();
  // The spawned runner exited (on the process's waiter thread).
  void OnProcessExit(int wait_status);
  void ReportGone(const std::string& reason);

  const Options options_;
  PredictionService* const service_;
  std::unique_ptr<RunnerListenSocket> socket_;
  std::unique_ptr<RunnerProcess> process_;
  std::thread acceptor_;

  absl::Mutex mu_;
  std::unique_ptr<RunnerConnection> connection_ ABSL_GUARDED_BY(mu_);
  bool gone_reported_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cog

#endif  // COG_SERVER_RUNNER_SUPERVISOR_H_
