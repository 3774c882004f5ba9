// OrphanReaper: makes cog-server the reaper of whatever its runner leaves
// behind, so that nothing a predictor starts outlives the server.
//
// Start() makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): a
// process the predictor starts whose parent goes (a daemon that double-forks,
// a setsid() grandchild, what is left when the runner is killed) is
// re-parented here instead of to init. A thread reaps those orphans as they
// exit. It never reaps a child that has a waiter of its own (RunnerProcess
// waits for the runner by pid, at once): a zombie child is reaped only once it
// has stayed a zombie for a whole poll interval. KillAll() kills every
// descendant still alive and reaps it; main calls it last, after the runner is
// stopped, and RunnerSupervisor after each runner it spawned has ended,
// before the next starts (what a killed guardian left came here), for what
// holds that runner's marker in its environment.
//
// The runner's own tree is watched by the runner's guardian (see
// runner/cog_runner/guardian.py), which also covers `kill -9` of the server.
//
// Thread-safe. At most one per process.
#ifndef COG_SERVER_ORPHAN_REAPER_H_
#define COG_SERVER_ORPHAN_REAPER_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cog {

// One process, as /proc says.
struct ProcessEntry {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';  // 'Z' for a zombie
};

// Every process /proc shows (in this PID namespace).
std::vector<ProcessEntry> ListProcesses();

// The descendants of `root` among `processes` (not `root` itself), parents
// before their children.
std::vector<ProcessEntry> DescendantsOf(pid_t root, const std::vector<ProcessEntry>& processes);

class OrphanReaper {
 public:
  explicit OrphanReaper(absl::Duration poll_interval = absl::Seconds(1));
  ~OrphanReaper();  // Stop()
  OrphanReaper(const OrphanReaper&) = delete;
  OrphanReaper& operator=(const OrphanReaper&) = delete;

  // Becomes a child subreaper and starts reaping. Fails (and reaps nothing)
  // when the kernel refuses (before Linux 3.4).
  absl::Status Start();
  // Stops the reaping thread.
  void Stop();

  // SIGKILLs every descendant of this process and reaps those that become its
  // children, until none is left or `timeout` passes. Returns how many
  // processes it killed. Call only once no other thread waits for a child.
  // With `marker` ("NAME=value"), only those whose environment holds it
  // (what one runner started inherits the marker it was spawned with; a
  // process that came here otherwise, when this one is a container's PID 1,
  // does not) and the zombies among this process's children.
  static int KillAll(absl::Duration timeout, const std::string& marker = "");

 private:
  void Reap();

  const absl::Duration poll_interval_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cog

#endif  // COG_SERVER_ORPHAN_REAPER_H_
