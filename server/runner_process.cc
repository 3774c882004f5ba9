#include "server/runner_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <system_error>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace cog {

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with code ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    return absl::StrCat("was killed by signal ", signal, " (", strsignal(signal), ")");
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

absl::StatusOr<std::unique_ptr<RunnerProcess>> RunnerProcess::Spawn(const RunnerCommand& command,
                                                                    ExitCallback on_exit) {
  if (command.argv.empty()) return absl::InvalidArgumentError("empty runner command");
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls are allowed in a multi-threaded parent.
  std::vector<char*> argv;
  for (const std::string& arg : command.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // extra_env replaces variables of the same name: with duplicates, the child
  // would see whichever its libc finds first.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const std::string& extra : command.extra_env) replaced = replaced || extra.rfind(name, 0) == 0;
    if (!replaced) env_storage.push_back(entry);
  }
  for (const std::string& e : command.extra_env) env_storage.push_back(e);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  // The child reports a failed chdir/exec through this pipe; a successful exec
  // closes it (O_CLOEXEC) and the parent reads EOF.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(report[0]);
    ::close(report[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the server died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGXFSZ, SIG_DFL);  // ignored by the server (main.cc), not by what the model runs
    ::signal(SIGPIPE, SIG_DFL);
    int failed_step = 0;
    if (!command.working_directory.empty() && ::chdir(command.working_directory.c_str()) != 0) {
      failed_step = 1;
    } else {
      ::execvpe(argv[0], argv.data(), envp.data());
      failed_step = 2;
    }
    const int report_errno[2] = {failed_step, errno};
    (void)!::write(report[1], report_errno, sizeof(report_errno));
    ::_exit(127);
  }
  ::close(report[1]);
  int child_error[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(child_error))) {
    ::waitpid(pid, nullptr, 0);
    if (child_error[0] == 1) {
      return absl::FailedPreconditionError(absl::StrCat("cannot enter working directory ",
                                                        command.working_directory, ": ",
                                                        std::strerror(child_error[1])));
    }
    return absl::FailedPreconditionError(absl::StrCat("cannot run '", command.argv[0],
                                                      "': ", std::strerror(child_error[1])));
  }
  try {
    return std::unique_ptr<RunnerProcess>(new RunnerProcess(pid, std::move(on_exit)));
  } catch (const std::system_error& e) {  // no thread to watch it (a pids limit reached)
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start a thread to watch the runner: ", e.what()));
  }
}

RunnerProcess::RunnerProcess(pid_t pid, ExitCallback on_exit)
    : pid_(pid), on_exit_(std::move(on_exit)) {
  watcher_ = std::thread([this] { Watch(); });
}

RunnerProcess::~RunnerProcess() {
  Terminate(absl::ZeroDuration());
  if (watcher_.joinable()) watcher_.join();
}

void RunnerProcess::Watch() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  // The group may still hold the predictor's own children; they go with it.
  ::kill(-pid_, SIGKILL);
  {
    absl::MutexLock lock(&mu_);
    wait_status_ = status;
  }
  if (on_exit_) on_exit_(status);
}

void RunnerProcess::Signal(int signal) {
  absl::MutexLock lock(&mu_);
  if (!wait_status_.has_value()) ::kill(-pid_, signal);
}

bool RunnerProcess::WaitForExit(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto exited = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return wait_status_.has_value(); };
  return mu_.AwaitWithTimeout(absl::Condition(&exited), timeout);
}

void RunnerProcess::Terminate(absl::Duration grace) {
  if (grace > absl::ZeroDuration()) {
    Signal(SIGTERM);
    if (WaitForExit(grace)) return;
  }
  Signal(SIGKILL);
  WaitForExit(absl::InfiniteDuration());
}

std::optional<int> RunnerProcess::exit_status() const {
  absl::MutexLock lock(&mu_);
  return wait_status_;
}

}  // namespace cog
