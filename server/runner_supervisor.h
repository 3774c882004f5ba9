// RunnerSupervisor: brings the runner up, watches it die, and brings it up again.
//
// Listens on the runner socket, spawns the Python runner (unless it is started
// by someone else, as in a Kubernetes sidecar), waits for it to connect, and
// hands the connection and every frame to the PredictionService. When the
// runner goes (it exits or is killed, closes its socket, breaks the stream, or
// the service asks for a restart because a cancel was not obeyed), the service
// hears once why, and may ask for another: the supervisor then spawns a new
// runner after a backoff (or, not spawning, waits for one to connect), at most
// `restart_limit` times within `restart_window`.
//
// One supervision thread does all of this, one runner after another. It
// reports a runner's end only after that runner's reader thread has handed
// over every frame the runner sent, and only after the runner is dead (killed
// if it closed its socket but kept running) and its socket shut down; the
// connection is destroyed only after the service has let go of it.
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

class RunnerSupervisor : public RunnerConnection::Listener, public RunnerControl {
 public:
  struct Options {
    // Empty: do not spawn; wait for a runner started elsewhere.
    RunnerCommand command;
    // Empty: a private directory; else where to listen (a shared volume).
    std::string socket_path;
    // How long a runner has to connect, the first one and each one after.
    absl::Duration connect_timeout = absl::Minutes(5);
    // The largest output the runner may send; frames are read up to
    // RunnerFrameLimit of it.
    uint64_t max_output_bytes = kMaxFrameBytes;
    // How long the connection's reader polls for the runner's next frame
    // before it sleeps (RunnerConnection, BusyPoller).
    BusyPollOptions busy_poll;
    // A runner that goes after its setup succeeded is replaced at most this
    // many times within restart_window; one more end and the server is
    // DEFUNCT. Zero: never replaced (legacy Cog). A runner ended by
    // RestartRunner (a cancel not obeyed) is replaced at once and not counted:
    // the model ignoring its cancels is no reason to replace the pod.
    int restart_limit = 5;
    absl::Duration restart_window = absl::Minutes(5);
    // A spawned runner is restarted after restart_backoff, doubled for each
    // restart already made within the window, at most max_restart_backoff.
    absl::Duration restart_backoff = absl::Milliseconds(500);
    absl::Duration max_restart_backoff = absl::Seconds(10);
  };

  RunnerSupervisor(Options options, PredictionService* service);
  ~RunnerSupervisor() override;

  // Creates the socket and spawns the runner; the connection is awaited in the
  // background. Fails when the socket or the process cannot be created.
  absl::Status Start();

  // Asks the runner to exit, waits up to `grace`, then kills it; running
  // predictions end (OnRunnerGone). Returns once no runner is left.
  void Stop(absl::Duration grace);

  // The socket path the runner connects to.
  std::string socket_path() const;

  // RunnerConnection::Listener, on the connection's reader thread.
  void OnRunnerMessage(v1::runner::RunnerMessage message) override;
  void OnRunnerDisconnected(absl::Status why) override;

  // RunnerControl: kills the connected runner (or, not spawned, drops its
  // connection); the supervision thread reports it and starts another.
  void RestartRunner(const std::string& reason) override;

 private:
  // The supervision thread: one runner after another until none is wanted.
  void Supervise();
  // One runner's life: spawned (unless `spawned` already), connected, served
  // until it goes; on return it is dead, its socket shut down and its reader
  // done. Returns why it went; nullopt when Stop() came before it connected
  // (there is nothing to report then).
  std::optional<std::string> Serve(bool spawned);
  // Whether the runner Serve last returned for was ended by RestartRunner:
  // the server's own decision (a cancel not obeyed), not a fault of the
  // runner, so not counted toward restart_limit. The supervisor thread's.
  bool restart_requested_ = false;
  absl::Status Spawn();
  // The spawned runner exited (on the process's watcher thread).
  void OnProcessExit(int wait_status);
  // Shuts the connection's socket down: its reader and any blocked writer
  // return at once.
  void ShutDownConnection();
  // Waits until the reader thread has handed over its last frame.
  void AwaitDisconnected();
  // Kills the runner if it is still alive; SIGTERM first when `grace` > 0.
  void KillRunner(absl::Duration grace);
  // Destroys the connection and reaps the process (their threads end).
  void TearDown();
  bool spawning() const { return !options_.command.argv.empty(); }

  const Options options_;
  PredictionService* const service_;
  RunnerCommand command_;  // options_.command with the socket path
  std::unique_ptr<RunnerListenSocket> socket_;
  std::thread supervisor_;
  // The connection is made, used and destroyed by the supervision thread only.
  std::unique_ptr<RunnerConnection> connection_;

  mutable absl::Mutex mu_;
  // Replaced and destroyed by the supervision thread only, under mu_ (so that
  // Stop() can still kill it if that thread is stuck).
  std::unique_ptr<RunnerProcess> process_ ABSL_GUARDED_BY(mu_);
  // "COG_RUNNER_INSTANCE=<server pid>-<n>", in the environment of the
  // runner spawned last and all it starts (by Spawn: in Start, then on the
  // supervision thread only).
  std::string runner_marker_;
  int spawns_ = 0;
  int connection_fd_ ABSL_GUARDED_BY(mu_) = -1;  // -1: not connected
  bool process_exited_ ABSL_GUARDED_BY(mu_) = false;
  int wait_status_ ABSL_GUARDED_BY(mu_) = 0;
  bool disconnected_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status disconnect_status_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> restart_reason_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration stop_grace_ ABSL_GUARDED_BY(mu_);
  bool supervision_done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cog

#endif  // COG_SERVER_RUNNER_SUPERVISOR_H_
