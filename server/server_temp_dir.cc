#include "server/server_temp_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

// The lock of every directory this process made, held until it exits.
absl::Mutex locks_mu;
std::vector<int>* locks ABSL_GUARDED_BY(locks_mu) = nullptr;

void HoldLock(int fd) {
  absl::MutexLock lock(&locks_mu);
  if (locks == nullptr) locks = new std::vector<int>;
  locks->push_back(fd);
}

// The pid in "<prefix>-<pid>-XXXXXX"; 0 if the name is not one.
pid_t OwnerPid(absl::string_view name, absl::string_view prefix) {
  if (!absl::ConsumePrefix(&name, prefix) || !absl::ConsumePrefix(&name, "-")) return 0;
  const size_t dash = name.find('-');
  if (dash == absl::string_view::npos || name.size() - dash - 1 != 6) return 0;
  int pid = 0;
  if (!absl::SimpleAtoi(name.substr(0, dash), &pid) || pid <= 0) return 0;
  return pid;
}

bool ProcessIsGone(pid_t pid) {
  if (pid == ::getpid()) return true;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

std::string TempParent() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

absl::StatusOr<std::string> MakeServerTempDir(const std::string& parent, absl::string_view prefix) {
  std::string path = absl::StrCat(parent, "/", prefix, "-", ::getpid(), "-XXXXXX");
  if (::mkdtemp(path.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot make a directory in ", parent, ": ", std::strerror(errno)));
  }
  ::chmod(path.c_str(), 0700);  // mkdtemp already does; make it explicit
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    HoldLock(fd);
  } else if (fd >= 0) {
    ::close(fd);  // unlocked, it is still protected by the pid in its name
  }
  return path;
}

std::vector<std::string> RemoveStaleServerTempDirs(const std::string& parent,
                                                   const std::vector<std::string>& prefixes) {
  std::vector<std::string> removed;
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) return removed;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    pid_t pid = 0;
    for (const std::string& prefix : prefixes) {
      if ((pid = OwnerPid(name, prefix)) != 0) break;
    }
    if (pid == 0 || !ProcessIsGone(pid)) continue;
    const std::string path = absl::StrCat(parent, "/", name);
    struct stat info;
    if (::lstat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid()) {
      continue;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    const bool unlocked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    if (!unlocked) continue;  // its server lives, in a PID namespace of its own
    std::error_code error;
    std::filesystem::remove_all(path, error);
    if (error) {
      spdlog::warn("cannot remove {}, left by a server that is gone: {}", path, error.message());
    } else {
      removed.push_back(path);
    }
  }
  ::closedir(dir);
  return removed;
}

}  // namespace cog
