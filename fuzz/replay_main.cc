// A main() for fuzz targets built without libFuzzer: runs
// LLVMFuzzerTestOneInput once on every file named on the command line, and on
// every file in every folder named there, as one GoogleTest case. Arguments
// that start with '-' (libFuzzer's flags) are ignored, so a command line that
// reproduces a crash with a libFuzzer build works here too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

std::vector<std::string>& Paths() {
  static std::vector<std::string> paths;
  return paths;
}

void Replay(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  ASSERT_TRUE(in) << "cannot read " << file;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SCOPED_TRACE(file.string());
  // A copy of exactly `size` bytes, so that ASan sees any read past the end.
  std::vector<uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
}

TEST(FuzzCorpusReplay, EveryInputRunsCleanly) {
  ASSERT_FALSE(Paths().empty()) << "name corpus files or folders on the command line";
  size_t replayed = 0;
  for (const std::string& path : Paths()) {
    if (std::filesystem::is_directory(path)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) {
        Replay(file);
        ++replayed;
      }
    } else {
      Replay(path);
      ++replayed;
    }
  }
  EXPECT_GT(replayed, 0u) << "no input found";
  std::printf("replayed %zu inputs\n", replayed);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') Paths().push_back(argv[i]);
  }
  return RUN_ALL_TESTS();
}
