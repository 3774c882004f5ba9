#include "server/runner_process.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/runner_socket.h"

namespace cog {
namespace {

TEST(RunnerProcessTest, ReportsTheExitCodeOnce) {
  absl::Notification exited;
  std::atomic<int> calls{0};
  int status = -1;
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process =
      RunnerProcess::Spawn({{"sh", "-c", "exit 3"}, {}, ""}, [&](int wait_status) {
        status = wait_status;
        ++calls;
        exited.Notify();
      });
  ASSERT_TRUE(process.ok()) << process.status();
  exited.WaitForNotification();
  EXPECT_EQ(DescribeWaitStatus(status), "exited with code 3");
  process->reset();
  EXPECT_EQ(calls.load(), 1);
}

TEST(RunnerProcessTest, MissingProgramIsAClearError) {
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process =
      RunnerProcess::Spawn({{"no-such-python-here"}, {}, ""}, nullptr);
  ASSERT_FALSE(process.ok());
  EXPECT_NE(process.status().message().find("cannot run 'no-such-python-here'"), std::string::npos)
      << process.status();
}

TEST(RunnerProcessTest, MissingWorkingDirectoryIsAClearError) {
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process =
      RunnerProcess::Spawn({{"true"}, {}, "/nonexistent/model"}, nullptr);
  ASSERT_FALSE(process.ok());
  EXPECT_NE(process.status().message().find("/nonexistent/model"), std::string::npos);
}

TEST(RunnerProcessTest, TerminateEndsAChildThatIgnoresSigterm) {
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process = RunnerProcess::Spawn(
      {{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"}, {}, ""}, nullptr);
  ASSERT_TRUE(process.ok());
  const pid_t pid = (*process)->pid();
  (*process)->Terminate(absl::Milliseconds(200));
  ASSERT_TRUE((*process)->exit_status().has_value());
  EXPECT_TRUE(WIFSIGNALED(*(*process)->exit_status()));
  EXPECT_NE(::kill(pid, 0), 0) << "the child was reaped";
}

TEST(RunnerProcessTest, DestructorKillsTheWholeProcessGroup) {
  // The child starts a grandchild (like a predictor's own subprocess) and
  // prints its pid; both must be gone once the RunnerProcess is.
  char path[] = "/tmp/runner-process-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    absl::StatusOr<std::unique_ptr<RunnerProcess>> process = RunnerProcess::Spawn(
        {{"sh", "-c", std::string("sleep 60 & echo $! > ") + path + "; wait"}, {}, ""}, nullptr);
    ASSERT_TRUE(process.ok());
    for (int i = 0; i < 500; ++i) {
      struct stat st;
      if (::stat(path, &st) == 0 && st.st_size > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  FILE* f = std::fopen(path, "r");
  ASSERT_NE(f, nullptr);
  int grandchild = 0;
  ASSERT_EQ(std::fscanf(f, "%d", &grandchild), 1);
  std::fclose(f);
  ::unlink(path);
  // The grandchild is not ours to reap; it is gone or a zombie of init's.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    char proc[64];
    std::snprintf(proc, sizeof(proc), "/proc/%d/stat", grandchild);
    FILE* stat = std::fopen(proc, "r");
    if (stat == nullptr) {
      gone = true;
      break;
    }
    char state = '?';
    std::fscanf(stat, "%*d %*s %c", &state);
    std::fclose(stat);
    gone = state == 'Z';
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " outlived the runner";
}

TEST(RunnerListenSocketTest, PrivateDirectoryIs0700AndRemovedAfterwards) {
  std::string dir;
  {
    absl::StatusOr<std::unique_ptr<RunnerListenSocket>> socket = RunnerListenSocket::CreatePrivate();
    ASSERT_TRUE(socket.ok()) << socket.status();
    const std::string path = (*socket)->path();
    dir = path.substr(0, path.rfind('/'));
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700);
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
  }
  struct stat st;
  EXPECT_NE(::stat(dir.c_str(), &st), 0) << dir << " was left behind";
}

TEST(RunnerListenSocketTest, AcceptsAConnectionAndTimesOutOrAborts) {
  absl::StatusOr<std::unique_ptr<RunnerListenSocket>> socket = RunnerListenSocket::CreatePrivate();
  ASSERT_TRUE(socket.ok());
  EXPECT_EQ((*socket)->Accept(absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, (*socket)->path().c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  absl::StatusOr<int> accepted = (*socket)->Accept(absl::Seconds(5));
  ASSERT_TRUE(accepted.ok());
  ::close(*accepted);
  ::close(client);

  std::thread aborter([&] { (*socket)->Abort(); });
  EXPECT_EQ((*socket)->Accept(absl::Seconds(30)).status().code(), absl::StatusCode::kCancelled);
  aborter.join();
}

}  // namespace
}  // namespace cog

namespace cog {
namespace {

TEST(RunnerProcessTest, ExtraEnvironmentReplacesInheritedVariables) {
  ::setenv("COG_TEST_VARIABLE", "inherited", 1);
  char path[] = "/tmp/runner-env-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  absl::Notification exited;
  absl::StatusOr<std::unique_ptr<RunnerProcess>> process = RunnerProcess::Spawn(
      {{"sh", "-c", std::string("env | grep ^COG_TEST_VARIABLE= > ") + path},
       {"COG_TEST_VARIABLE=given"},
       ""},
      [&](int) { exited.Notify(); });
  ASSERT_TRUE(process.ok());
  exited.WaitForNotification();
  FILE* f = std::fopen(path, "r");
  ASSERT_NE(f, nullptr);
  char line[128] = {0};
  std::string all;
  while (std::fgets(line, sizeof(line), f) != nullptr) all += line;
  std::fclose(f);
  ::unlink(path);
  EXPECT_EQ(all, "COG_TEST_VARIABLE=given\n");
}

}  // namespace
}  // namespace cog
