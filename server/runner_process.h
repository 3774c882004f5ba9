// RunnerProcess: the Python runner as a child process of cog-server.
//
// Spawn() starts the child in its own process group (so that the predictor's own
// subprocesses are signalled with it), asks the kernel to kill it if the server
// dies, and reports its exit once, from a watcher thread, through the callback.
// The destructor kills the group if it is still alive and reaps it: no zombie and
// no orphan outlives this object. Thread-safe.
#ifndef COG_SERVER_RUNNER_PROCESS_H_
#define COG_SERVER_RUNNER_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cog {

struct RunnerCommand {
  std::vector<std::string> argv;       // argv[0] is looked up on PATH
  std::vector<std::string> extra_env;  // "NAME=value", added to the server's environment
  std::string working_directory;       // empty: the server's
};

// "exited with code 1", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

class RunnerProcess {
 public:
  using ExitCallback = std::function<void(int wait_status)>;

  // Fails (and leaves nothing behind) when the program cannot be executed.
  static absl::StatusOr<std::unique_ptr<RunnerProcess>> Spawn(const RunnerCommand& command,
                                                              ExitCallback on_exit);
  ~RunnerProcess();
  RunnerProcess(const RunnerProcess&) = delete;
  RunnerProcess& operator=(const RunnerProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Sends `signal` to the runner's process group, unless it has been reaped.
  void Signal(int signal);

  // Waits until the runner has exited, at most `timeout`. Returns whether it has.
  bool WaitForExit(absl::Duration timeout);

  // SIGTERM, then SIGKILL after `grace`; returns once the runner is reaped.
  void Terminate(absl::Duration grace);

  // The wait status, once exited.
  std::optional<int> exit_status() const;

 private:
  RunnerProcess(pid_t pid, ExitCallback on_exit);
  void Watch();

  const pid_t pid_;
  ExitCallback on_exit_;
  mutable absl::Mutex mu_;
  std::optional<int> wait_status_ ABSL_GUARDED_BY(mu_);
  std::thread watcher_;
};

}  // namespace cog

#endif  // COG_SERVER_RUNNER_PROCESS_H_
