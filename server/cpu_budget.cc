#include "server/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cog {
namespace {

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<int64_t> ReadInteger(const std::string& path) {
  std::optional<std::string> text = ReadSmallFile(path);
  int64_t value;
  if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) return std::nullopt;
  return value;
}

// `cgroup` ("/a/b") and each of its ancestors, down to "".
std::vector<std::string> SelfAndAncestors(std::string cgroup) {
  std::vector<std::string> paths;
  while (!cgroup.empty() && cgroup != "/") {
    paths.push_back(cgroup);
    cgroup.resize(cgroup.rfind('/'));
  }
  paths.push_back("");
  return paths;
}

}  // namespace

std::optional<double> CpusOfCpuMax(absl::string_view cpu_max) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(cpu_max), ' ', absl::SkipEmpty());
  int64_t quota;
  int64_t period;
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &quota) ||
      !absl::SimpleAtoi(fields[1], &period) || quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

double UsableCpus(const std::string& sys_fs_cgroup, const std::string& proc_self_cgroup) {
  double cpus = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  auto lower_to = [&cpus](std::optional<double> quota) {
    if (quota) cpus = std::min(cpus, *quota);
  };
  // Each line of /proc/self/cgroup is "id:controllers:path"; "0::path" is v2.
  // In a container with its own cgroup namespace the path is "/" and the
  // container's cgroup is mounted at sys_fs_cgroup itself.
  std::optional<std::string> self = ReadSmallFile(proc_self_cgroup);
  for (absl::string_view line : absl::StrSplit(self.value_or(""), '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    const bool v2 = fields[0] == "0" && fields[1].empty();
    const bool v1_cpu = absl::StrContains(absl::StrCat(",", fields[1], ","), ",cpu,");
    if (!v2 && !v1_cpu) continue;
    const std::string mount = v2 ? sys_fs_cgroup : absl::StrCat(sys_fs_cgroup, "/", fields[1]);
    for (const std::string& path : SelfAndAncestors(fields[2])) {
      const std::string dir = mount + path;
      if (v2) {
        if (std::optional<std::string> max = ReadSmallFile(dir + "/cpu.max")) lower_to(CpusOfCpuMax(*max));
        continue;
      }
      std::optional<int64_t> quota = ReadInteger(dir + "/cpu.cfs_quota_us");
      std::optional<int64_t> period = ReadInteger(dir + "/cpu.cfs_period_us");
      if (quota && period && *quota > 0 && *period > 0) {
        lower_to(static_cast<double>(*quota) / static_cast<double>(*period));
      }
    }
  }
  return cpus;
}

}  // namespace cog
