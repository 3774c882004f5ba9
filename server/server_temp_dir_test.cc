#include "server/server_temp_dir.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

namespace fs = std::filesystem;

// A pid that names no process: a child that has exited and been reaped.
pid_t DeadPid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

class ServerTempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/stale-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    parent_ = pattern;
  }
  void TearDown() override { fs::remove_all(parent_); }

  std::string MakeDir(const std::string& name) {
    const std::string path = parent_ + "/" + name;
    fs::create_directories(path + "/p0");
    std::ofstream(path + "/p0/input.bin") << "left behind";
    return path;
  }

  std::vector<std::string> Remove() {
    std::vector<std::string> removed = RemoveStaleServerTempDirs(parent_, {"cog-runner", "cog-server"});
    std::sort(removed.begin(), removed.end());
    return removed;
  }

  std::string parent_;
};

TEST_F(ServerTempDirTest, MadeDirectoriesAreNamedWithThePidAndPrivate) {
  absl::StatusOr<std::string> dir = MakeServerTempDir(parent_, "cog-runner");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(fs::path(*dir).filename().string().rfind(absl::StrCat("cog-runner-", ::getpid(), "-"), 0),
            0u);
  struct stat info;
  ASSERT_EQ(::stat(dir->c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
}

TEST_F(ServerTempDirTest, RemovesWhatADeadServerLeftAndKeepsTheRest) {
  const pid_t dead = DeadPid();
  const std::string stale_runner = MakeDir(absl::StrCat("cog-runner-", dead, "-aB3xYz"));
  const std::string stale_server = MakeDir(absl::StrCat("cog-server-", dead, "-Qw9eRt"));
  const std::string live = MakeDir(absl::StrCat("cog-server-", ::getppid(), "-abcdef"));
  const std::string old_style = MakeDir("cog-runner-abcdef");
  const std::string other = MakeDir(absl::StrCat("something-", dead, "-abcdef"));
  const std::string short_suffix = MakeDir(absl::StrCat("cog-runner-", dead, "-abc"));
  const std::string file = parent_ + absl::StrCat("/cog-server-", dead, "-zzzzzz");
  std::ofstream(file) << "not a directory";
  const std::string link = parent_ + absl::StrCat("/cog-server-", dead, "-linkto");
  fs::create_directory_symlink(live, link);

  EXPECT_EQ(Remove(), (std::vector<std::string>{stale_runner, stale_server}));
  for (const std::string& kept : {live, old_style, other, short_suffix, file, link}) {
    EXPECT_TRUE(fs::exists(fs::symlink_status(kept))) << kept;
  }
  EXPECT_TRUE(fs::exists(live + "/p0/input.bin")) << "nothing removed through the symlink";
}

TEST_F(ServerTempDirTest, OwnPidCountsAsGoneUnlessTheDirectoryIsLocked) {
  // An earlier server with this pid (PID 1 of a restarted container).
  const std::string earlier = MakeDir(absl::StrCat("cog-runner-", ::getpid(), "-eArLy1"));
  absl::StatusOr<std::string> mine = MakeServerTempDir(parent_, "cog-server");
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(Remove(), (std::vector<std::string>{earlier}));
  EXPECT_TRUE(fs::exists(*mine));
}

TEST_F(ServerTempDirTest, ALockedDirectoryOfADeadPidIsKept) {
  // A live server in another PID namespace: its pid means nothing here, its lock does.
  const std::string elsewhere = MakeDir(absl::StrCat("cog-server-", DeadPid(), "-nSpace"));
  const int fd = ::open(elsewhere.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  EXPECT_EQ(Remove(), std::vector<std::string>{});
  ::close(fd);
  EXPECT_EQ(Remove(), std::vector<std::string>{elsewhere});
}

TEST_F(ServerTempDirTest, AMissingParentRemovesNothing) {
  EXPECT_TRUE(RemoveStaleServerTempDirs(parent_ + "/missing", {"cog-runner"}).empty());
}

}  // namespace
}  // namespace cog
