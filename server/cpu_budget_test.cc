#include "server/cpu_budget.h"

#include <sched.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace cog {
namespace {

namespace fs = std::filesystem;

double AffinityCpus() {
  cpu_set_t set;
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return CPU_COUNT(&set);
}

// A stand-in /sys/fs/cgroup and /proc/self/cgroup.
class UsableCpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/cgroup-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + path).parent_path());
    std::ofstream(root_ + "/" + path) << text;
  }
  double Usable() { return UsableCpus(root_ + "/sys", root_ + "/self_cgroup"); }

  std::string root_;
};

TEST(CpusOfCpuMaxTest, ReadsQuotaOverPeriod) {
  EXPECT_EQ(CpusOfCpuMax("150000 100000\n"), 1.5);
  EXPECT_EQ(CpusOfCpuMax("50000 100000"), 0.5);
  EXPECT_EQ(CpusOfCpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpusOfCpuMax(""), std::nullopt);
  EXPECT_EQ(CpusOfCpuMax("0 100000"), std::nullopt);
  EXPECT_EQ(CpusOfCpuMax("100000"), std::nullopt);
}

TEST_F(UsableCpusTest, AffinityAloneWithoutQuota) {
  Write("self_cgroup", "0::/\n");
  Write("sys/cpu.max", "max 100000\n");
  EXPECT_EQ(Usable(), AffinityCpus());
}

TEST_F(UsableCpusTest, NoCgroupFilesAtAllIsTheAffinity) {
  EXPECT_EQ(Usable(), AffinityCpus());
}

TEST_F(UsableCpusTest, V2QuotaOfTheContainersOwnNamespace) {
  Write("self_cgroup", "0::/\n");
  Write("sys/cpu.max", "50000 100000\n");
  EXPECT_EQ(Usable(), 0.5);
}

TEST_F(UsableCpusTest, V2QuotaOfAnAncestorCounts) {
  Write("self_cgroup", "0::/kubepods/pod1/container\n");
  Write("sys/kubepods/pod1/container/cpu.max", "max 100000\n");
  Write("sys/kubepods/pod1/cpu.max", "100000 100000\n");
  Write("sys/kubepods/cpu.max", "max 100000\n");
  EXPECT_EQ(Usable(), std::min(1.0, AffinityCpus()));
}

TEST_F(UsableCpusTest, V1CfsQuota) {
  Write("self_cgroup", "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n");
  Write("sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "25000\n");
  Write("sys/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(Usable(), 0.25);
}

TEST_F(UsableCpusTest, V1UnlimitedQuotaIsIgnored) {
  Write("self_cgroup", "1:cpu:/\n");
  Write("sys/cpu/cpu.cfs_quota_us", "-1\n");
  Write("sys/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(Usable(), AffinityCpus());
}

TEST_F(UsableCpusTest, ThisMachineHasAtLeastSomeCpu) {
  EXPECT_GT(UsableCpus(), 0.0);
  EXPECT_LE(UsableCpus(), AffinityCpus());
}

}  // namespace
}  // namespace cog
