#include "server/orphan_reaper.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/runner_process.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

// "pid (comm) S ppid ...": comm may hold spaces and parentheses, so the
// fields are counted from the last ')'.
bool ReadStat(pid_t pid, ProcessEntry* entry) {
  std::ifstream file(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(file, line)) return false;
  const size_t end = line.rfind(')');
  if (end == std::string::npos) return false;
  std::istringstream fields(line.substr(end + 1));
  char state = '?';
  long ppid = 0;
  if (!(fields >> state >> ppid)) return false;
  entry->pid = pid;
  entry->ppid = static_cast<pid_t>(ppid);
  entry->state = state;
  return true;
}

}  // namespace

std::vector<ProcessEntry> ListProcesses() {
  std::vector<ProcessEntry> processes;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return processes;
  while (const dirent* entry = ::readdir(proc)) {
    int pid = 0;
    ProcessEntry process;
    if (absl::SimpleAtoi(entry->d_name, &pid) && pid > 0 && ReadStat(pid, &process)) {
      processes.push_back(process);
    }
  }
  ::closedir(proc);
  return processes;
}

std::vector<ProcessEntry> DescendantsOf(pid_t root, const std::vector<ProcessEntry>& processes) {
  std::multimap<pid_t, const ProcessEntry*> children;
  for (const ProcessEntry& process : processes) children.emplace(process.ppid, &process);
  std::vector<ProcessEntry> found;
  std::vector<pid_t> parents = {root};
  std::set<pid_t> seen = {root};
  for (size_t i = 0; i < parents.size(); ++i) {
    auto [begin, end] = children.equal_range(parents[i]);
    for (auto it = begin; it != end; ++it) {
      if (!seen.insert(it->second->pid).second) continue;
      found.push_back(*it->second);
      parents.push_back(it->second->pid);
    }
  }
  return found;
}

OrphanReaper::OrphanReaper(absl::Duration poll_interval) : poll_interval_(poll_interval) {}

OrphanReaper::~OrphanReaper() { Stop(); }

absl::Status OrphanReaper::Start() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot become a child subreaper: ", std::strerror(errno)));
  }
  thread_ = std::thread([this] { Reap(); });
  return absl::OkStatus();
}

void OrphanReaper::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void OrphanReaper::Reap() {
  const pid_t self = ::getpid();
  std::set<pid_t> zombies;  // zombie children at the last poll
  while (!stop_.WaitForNotificationWithTimeout(poll_interval_)) {
    // Cheap when there is nothing to do: is any child a zombie at all?
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
      zombies.clear();
      continue;
    }
    std::set<pid_t> now;
    for (const ProcessEntry& process : ListProcesses()) {
      if (process.ppid != self || process.state != 'Z') continue;
      int status = 0;
      // A zombie for a whole interval has no waiter of its own.
      if (zombies.count(process.pid) != 0 && ::waitpid(process.pid, &status, WNOHANG) > 0) {
        spdlog::debug("reaped orphan {}, which {}", process.pid, DescribeWaitStatus(status));
      } else {
        now.insert(process.pid);
      }
    }
    zombies = std::move(now);
  }
}

namespace {

// Whether `pid`'s environment holds `entry` ("NAME=value") whole.
bool EnvironmentHolds(pid_t pid, const std::string& entry) {
  std::ifstream file(absl::StrCat("/proc/", pid, "/environ"), std::ios::binary);
  std::string variable;
  while (std::getline(file, variable, '\0')) {
    if (variable == entry) return true;
  }
  return false;
}

}  // namespace

int OrphanReaper::KillAll(absl::Duration timeout, const std::string& marker) {
  const pid_t self = ::getpid();
  const absl::Time deadline = absl::Now() + timeout;
  std::set<pid_t> killed;
  while (true) {
    std::vector<ProcessEntry> descendants = DescendantsOf(self, ListProcesses());
    if (!marker.empty()) {
      descendants.erase(std::remove_if(descendants.begin(), descendants.end(),
                                       [&](const ProcessEntry& process) {
                                         return process.state == 'Z' ? process.ppid != self
                                                                     : !EnvironmentHolds(process.pid, marker);
                                       }),
                        descendants.end());
    }
    if (descendants.empty()) break;
    for (const ProcessEntry& process : descendants) {
      if (process.state == 'Z') {
        // Its parent reaps it, or it comes to this process when the parent dies.
        if (process.ppid == self) ::waitpid(process.pid, nullptr, WNOHANG);
      } else if (::kill(process.pid, SIGKILL) == 0) {
        killed.insert(process.pid);
      }
    }
    if (absl::Now() >= deadline) {
      spdlog::warn("{} descendant process(es) still there after {}", descendants.size(),
                   absl::FormatDuration(timeout));
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (!killed.empty()) {
    spdlog::info("killed {} process(es) the runner left behind", killed.size());
  }
  return static_cast<int>(killed.size());
}

}  // namespace cog
