// How many CPUs this process can keep busy at once, for choices that trade CPU
// time for latency (busy polling the runner's socket).
#ifndef COG_SERVER_CPU_BUDGET_H_
#define COG_SERVER_CPU_BUDGET_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace cog {

// The CPUs of this process's affinity mask, lowered by its cgroup's CPU quota
// (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`; a container's CPU limit), the
// tightest of its cgroup and their ancestors'. `sys_fs_cgroup` and
// `proc_self_cgroup` are for tests.
double UsableCpus(const std::string& sys_fs_cgroup = "/sys/fs/cgroup",
                  const std::string& proc_self_cgroup = "/proc/self/cgroup");

// The CPUs a cgroup v2 `cpu.max` ("150000 100000") allows; nullopt for "max"
// (no quota) or text that is no quota.
std::optional<double> CpusOfCpuMax(absl::string_view cpu_max);

}  // namespace cog

#endif  // COG_SERVER_CPU_BUDGET_H_
