#include "server/prediction_files.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(FileUrlToPathTest, DecodesPercentEscapes) {
  EXPECT_EQ(*FileUrlToPath("file:///tmp/a%20b.txt"), "/tmp/a b.txt");
  EXPECT_EQ(*FileUrlToPath("file:///tmp/100%"), "/tmp/100%");
  EXPECT_FALSE(FileUrlToPath("http://x/y").ok());
  EXPECT_FALSE(FileUrlToPath("file://relative").ok());
}

TEST(AppendBase64Test, WritesWhatAbslWritesForEveryLengthAndByte) {
  std::string data;
  uint32_t state = 12345;
  for (size_t length = 0; length <= 200; ++length) {
    std::string out = "data:;base64,";
    AppendBase64(data, &out);
    ASSERT_EQ(out, "data:;base64," + absl::Base64Escape(data)) << "length " << length;
    state = state * 1103515245 + 12345;  // every byte value turns up
    data.push_back(static_cast<char>(state >> 23));
  }
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919 + (i >> 9)) & 0xff);
  std::string out;
  AppendBase64(large, &out);
  EXPECT_EQ(out, absl::Base64Escape(large));
}

TEST(DecodeDataUriTest, DecodesBase64AndPercentEscapes) {
  EXPECT_EQ(*DecodeDataUri("data:text/plain;base64,aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeDataUri("data:,a%20b"), "a b");
  EXPECT_EQ(*DecodeDataUri("data:,"), "");
  EXPECT_FALSE(DecodeDataUri("data:no-comma").ok());
  EXPECT_FALSE(DecodeDataUri("data:;base64,!!!").ok());
  EXPECT_FALSE(DecodeDataUri("http://x/y").ok());
}

TEST(DecodeDataUriTest, APercentNotFollowedByTwoHexDigitsStaysAsItIs) {
  EXPECT_EQ(*DecodeDataUri("data:,%-1% 1%+f%1 %"), "%-1% 1%+f%1 %");
  EXPECT_EQ(*DecodeDataUri("data:,%41%4a%4A"), "AJJ");
}

TEST(PredictionFilesTest, TextBecomesATextPlainDataUri) {
  PredictionFiles files;
  PredictionFiles::OutputTarget target;
  const std::string path = WriteTemp("out.txt", "hello world");
  Json value = "file://" + path;
  ASSERT_TRUE(files.ResolveOutputs(value, {""}, target).ok());
  EXPECT_EQ(value, "data:text/plain;base64,aGVsbG8gd29ybGQ=");
}

TEST(PredictionFilesTest, MediaTypeComesFromTheContentNotTheName) {
  PredictionFiles files;
  PredictionFiles::OutputTarget target;
  // The signature and a 1x1 IHDR chunk (its CRC left out): 29 bytes.
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
  const std::string png(kPng, sizeof(kPng) - 1);
  Json value = "file://" + WriteTemp("picture.txt", png);
  ASSERT_TRUE(files.ResolveOutputs(value, {""}, target).ok());
  EXPECT_EQ(value.get<std::string>().rfind("data:image/png;base64,", 0), 0u) << value;
  std::string random(4096, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 7919 + 13) % 251);
  EXPECT_EQ(files.SniffMediaType(random), "application/octet-stream");
}

// Sniffs run at once on the transfer threads, each with a handle of its own
// (one shared handle serialized them); each gets its own answer.
TEST(PredictionFilesTest, SniffsAtOnceFromManyThreadsEachGetTheirOwnAnswer) {
  PredictionFiles files;
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
  const std::string png(kPng, sizeof(kPng) - 1);
  const std::string text = "some plain words\n";
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const bool picture = (t + i) % 2 == 0;
        const std::string type = files.SniffMediaType(picture ? png : text);
        if (type != (picture ? "image/png" : "text/plain")) wrong.fetch_add(1);
        if (picture && files.SniffExtension(png) != "png") wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(PredictionFilesTest, OnlyThePointedValuesAreFiles) {
  PredictionFiles files;
  PredictionFiles::OutputTarget target;
  const std::string a = WriteTemp("a.txt", "a\n");
  Json value = Json::parse(R"({"files": ["file://)" + a + R"("], "name": "file://)" + a +
                           R"(", "n": 3})");
  ASSERT_TRUE(files.ResolveOutputs(value, {"/files/0"}, target).ok());
  EXPECT_EQ(value["files"][0], "data:text/plain;base64," + absl::Base64Escape("a\n"));
  EXPECT_EQ(value["name"], "file://" + a) << "a str that looks like a file URL stays a str";
  EXPECT_EQ(value["n"], 3);
}

TEST(PredictionFilesTest, MissingFileIsAnErrorThatNamesIt) {
  PredictionFiles files;
  PredictionFiles::OutputTarget target;
  Json value = "file:///nonexistent/out.png";
  absl::Status status = files.ResolveOutputs(value, {""}, target);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/out.png"), std::string::npos);
}

TEST(PredictionFilesTest, APointerToNoFileIsAnError) {
  PredictionFiles files;
  PredictionFiles::OutputTarget target;
  Json value = Json::parse(R"({"n": 3})");
  EXPECT_FALSE(files.ResolveOutputs(value, {"/n"}, target).ok());
  EXPECT_FALSE(files.ResolveOutputs(value, {"/missing"}, target).ok());
  EXPECT_FALSE(files.ResolveOutputs(value, {"no-slash"}, target).ok());
  EXPECT_EQ(ParseFilePointers(R"(["/a", "/b/0"])"), (std::vector<std::string>{"/a", "/b/0"}));
  EXPECT_TRUE(ParseFilePointers("not json").empty());
}

TEST(PredictionFilesTest, DataUriInputsAreDecodedIntoTheWorkDir) {
  PredictionFiles files;
  absl::StatusOr<std::string> dir = files.MakeWorkDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(dir->rfind(files.root(), 0), 0u);
  Json input = Json::parse(R"({"image": "data:text/plain;base64,aGVsbG8=",
                               "more": ["data:,a%20b"], "s": "data:,untouched"})");
  ASSERT_TRUE(files.FetchInputs(input, {"/image", "/more/0"}, *dir, nullptr).ok());
  std::ifstream first(input["image"].get<std::string>());
  std::string content((std::istreambuf_iterator<char>(first)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "hello");
  EXPECT_EQ(input["more"][0].get<std::string>().rfind(*dir, 0), 0u);
  EXPECT_EQ(input["s"], "data:,untouched");  // not a Path: left alone
  files.RemoveWorkDir(*dir);
  EXPECT_NE(access(dir->c_str(), F_OK), 0);
}

// A predictor that nests directories deeper than removal descends at once
// (100 levels were left behind): all of it goes, with a file and a link to
// outside at the bottom, and only it.
TEST(PredictionFilesTest, AWorkDirNestedDeepIsRemovedWhole) {
  PredictionFiles files;
  absl::StatusOr<std::string> dir = files.MakeWorkDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<std::string> other = files.MakeWorkDir();
  ASSERT_TRUE(other.ok()) << other.status();
  char outside_template[] = "/tmp/cog-outside-XXXXXX";
  ASSERT_NE(mkdtemp(outside_template), nullptr);
  const std::string outside = outside_template;
  { std::ofstream(outside + "/keep") << "the server's own"; }
  std::string path = *dir;
  for (int i = 0; i < 300; ++i) {
    path += "/d";
    ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << i;
    if (i % 50 == 0) std::ofstream(path + "/f") << i;
  }
  ASSERT_EQ(symlink(outside.c_str(), (path + "/out").c_str()), 0);
  files.RemoveWorkDir(*dir);
  EXPECT_NE(access(dir->c_str(), F_OK), 0);
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(files.root())) {
    left.push_back(entry.path().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{*other});  // nothing moved out is left
  EXPECT_EQ(access((outside + "/keep").c_str(), F_OK), 0);
  std::filesystem::remove_all(outside);
}

// A runner sharing the root (a sidecar) plants links where the server is
// about to write, or swaps one in for a work directory: nothing is written or
// removed outside the root, and the input fails instead.
TEST(PredictionFilesTest, LinksPlantedInTheRootAreNeverFollowed) {
  PredictionFiles files;
  char outside_template[] = "/tmp/cog-outside-XXXXXX";
  ASSERT_NE(mkdtemp(outside_template), nullptr);
  const std::string outside = outside_template;
  { std::ofstream(outside + "/keep") << "the server's own"; }
  Json input = Json::parse(R"({"image": "data:text/plain;base64,aGVsbG8="})");

  absl::StatusOr<std::string> dir = files.MakeWorkDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_EQ(symlink(outside.c_str(), (*dir + "/0").c_str()), 0);  // where input 0 would go
  absl::Status status = files.FetchInputs(input, {"/image"}, *dir, nullptr);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("File exists"), std::string::npos) << status;

  dir = files.MakeWorkDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_EQ(rmdir(dir->c_str()), 0);
  ASSERT_EQ(symlink(outside.c_str(), dir->c_str()), 0);  // the work directory itself
  EXPECT_FALSE(files.FetchInputs(input, {"/image"}, *dir, nullptr).ok());
  files.RemoveWorkDir(*dir);  // the link goes, not what it names
  EXPECT_NE(access(dir->c_str(), F_OK), 0);

  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(outside)) {
    left.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"keep"});
  EXPECT_FALSE(files.FetchInputs(input, {"/image"}, *dir + "/../../etc", nullptr).ok())
      << "only a directory of the root's own";
  std::filesystem::remove_all(outside);
}

TEST(PredictionFilesTest, BadDataUriNamesTheInput) {
  PredictionFiles files;
  absl::StatusOr<std::string> dir = files.MakeWorkDir();
  ASSERT_TRUE(dir.ok());
  Json input = Json::parse(R"({"pair": {"b": ["data:image/png;base64,!!!"]}})");
  absl::Status status = files.FetchInputs(input, {"/pair/b/0"}, *dir, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("input pair.b[0]"), std::string::npos) << status;
  EXPECT_NE(status.message().find("base64"), std::string::npos) << status;
}

TEST(PredictionFilesTest, TheRootIsRemovedWithTheObject) {
  std::string root;
  {
    PredictionFiles files;
    root = files.root();
    ASSERT_FALSE(root.empty());
    ASSERT_TRUE(files.MakeWorkDir().ok());
  }
  EXPECT_NE(access(root.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace cog
