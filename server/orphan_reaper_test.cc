#include "server/orphan_reaper.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

std::optional<ProcessEntry> Find(pid_t pid) {
  for (const ProcessEntry& process : ListProcesses()) {
    if (process.pid == pid) return process;
  }
  return std::nullopt;
}

// Waits (bounded, generously) until `done` holds.
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Forks a child that starts a grandchild in a session of its own and exits:
// the grandchild is orphaned. Returns the grandchild's pid (read from a pipe).
pid_t OrphanedGrandchild() {
  int report[2];
  if (::pipe(report) != 0) return -1;
  const pid_t child = ::fork();
  if (child == 0) {
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::setsid();
      while (true) ::pause();
    }
    (void)!::write(report[1], &grandchild, sizeof(grandchild));
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t grandchild = -1;
  (void)!::read(report[0], &grandchild, sizeof(grandchild));
  ::close(report[0]);
  ::waitpid(child, nullptr, 0);
  return grandchild;
}

TEST(ListProcessesTest, SeesThisProcessAndItsParent) {
  std::optional<ProcessEntry> self = Find(::getpid());
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_NE(self->state, 'Z');
}

TEST(DescendantsOfTest, WalksTheTreeParentsFirst) {
  const std::vector<ProcessEntry> processes = {
      {10, 1, 'S'}, {11, 10, 'S'}, {12, 11, 'Z'}, {13, 10, 'S'}, {20, 1, 'S'}, {21, 20, 'S'}};
  std::vector<pid_t> found;
  for (const ProcessEntry& process : DescendantsOf(10, processes)) found.push_back(process.pid);
  EXPECT_EQ(found, (std::vector<pid_t>{11, 13, 12}));
  EXPECT_TRUE(DescendantsOf(12, processes).empty());
}

class OrphanReaperTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(reaper_.Start().ok()); }
  void TearDown() override { reaper_.KillAll(absl::Seconds(10)); }

  OrphanReaper reaper_{absl::Milliseconds(20)};
};

TEST_F(OrphanReaperTest, AnOrphanComesHereAndIsReapedWhenItExits) {
  const pid_t orphan = OrphanedGrandchild();
  ASSERT_GT(orphan, 0);
  std::optional<ProcessEntry> entry = Find(orphan);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->ppid, ::getpid()) << "re-parented to the subreaper, not to init";
  ::kill(orphan, SIGTERM);
  EXPECT_TRUE(Eventually([&] { return !Find(orphan).has_value(); })) << "left a zombie";
}

TEST_F(OrphanReaperTest, AChildWithAWaiterOfItsOwnIsLeftToIt) {
  for (int i = 0; i < 20; ++i) {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(7);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child) << "the reaper took it";
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 7);
  }
}

TEST_F(OrphanReaperTest, KillAllLeavesNoDescendant) {
  const pid_t orphan = OrphanedGrandchild();
  const pid_t child = ::fork();
  if (child == 0) {
    if (::fork() == 0) {
      ::setsid();
      while (true) ::pause();
    }
    while (true) ::pause();
  }
  ASSERT_TRUE(Eventually([] { return DescendantsOf(::getpid(), ListProcesses()).size() >= 3; }));
  EXPECT_GE(reaper_.KillAll(absl::Seconds(10)), 3);
  EXPECT_TRUE(DescendantsOf(::getpid(), ListProcesses()).empty());
  EXPECT_FALSE(Find(orphan).has_value());
  EXPECT_FALSE(Find(child).has_value());
}

// Starts `sleep 600` with `environment`, in a session of its own when
// `orphaned` (its parent exits: it comes to this process).
pid_t Sleeper(std::vector<std::string> environment, bool orphaned) {
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  int report[2];
  if (::pipe(report) != 0) return -1;
  const pid_t child = ::fork();
  if (child == 0) {
    if (orphaned && ::fork() != 0) ::_exit(0);
    if (orphaned) ::setsid();
    const pid_t self = ::getpid();
    (void)!::write(report[1], &self, sizeof(self));
    ::execle("/bin/sleep", "sleep", "600", nullptr, envp.data());
    ::_exit(127);
  }
  ::close(report[1]);
  pid_t sleeper = -1;
  (void)!::read(report[0], &sleeper, sizeof(sleeper));
  ::close(report[0]);
  if (orphaned) ::waitpid(child, nullptr, 0);
  return sleeper;
}

TEST_F(OrphanReaperTest, KillAllWithAMarkerKillsOnlyWhatHoldsIt) {
  const std::string marker = "COG_RUNNER_INSTANCE=test-1";
  const pid_t other = Sleeper({"PATH=/bin"}, /*orphaned=*/true);        // came here otherwise
  const pid_t similar = Sleeper({marker + "0"}, /*orphaned=*/true);     // not the same marker
  const pid_t runners = Sleeper({"A=1", marker}, /*orphaned=*/true);    // the runner's orphan
  const pid_t child = Sleeper({marker}, /*orphaned=*/false);            // and a child of ours
  // exec has happened once /proc shows the marker.
  ASSERT_TRUE(Eventually([&] {
    std::ifstream environ(absl::StrCat("/proc/", runners, "/environ"));
    std::string text((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    return text.find(marker) != std::string::npos;
  }));
  EXPECT_EQ(reaper_.KillAll(absl::Seconds(10), marker), 2);
  EXPECT_FALSE(Find(runners).has_value());
  EXPECT_FALSE(Find(child).has_value());
  EXPECT_TRUE(Find(other).has_value());
  EXPECT_TRUE(Find(similar).has_value());
  EXPECT_GE(reaper_.KillAll(absl::Seconds(10)), 2);
  EXPECT_TRUE(DescendantsOf(::getpid(), ListProcesses()).empty());
}

}  // namespace
}  // namespace cog
