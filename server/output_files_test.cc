#include "server/output_files.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

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

TEST(OutputFilesTest, TextBecomesATextPlainDataUri) {
  OutputFiles files;
  const std::string path = WriteTemp("out.txt", "hello world");
  Json value = "file://" + path;
  ASSERT_TRUE(files.Resolve(value).ok());
  EXPECT_EQ(value, "data:text/plain;base64,aGVsbG8gd29ybGQ=");
}

TEST(OutputFilesTest, MediaTypeComesFromTheContentNotTheName) {
  OutputFiles files;
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0", 33);
  Json value = "file://" + WriteTemp("picture.txt", png);
  ASSERT_TRUE(files.Resolve(value).ok());
  EXPECT_EQ(value.get<std::string>().rfind("data:image/png;base64,", 0), 0u) << value;
  std::string random(4096, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 7919 + 13) % 251);
  EXPECT_EQ(files.SniffMediaType(random), "application/octet-stream");
}

TEST(OutputFilesTest, NestedValuesAreResolvedAndOtherStringsLeftAlone) {
  OutputFiles files;
  const std::string a = WriteTemp("a.txt", "a\n");
  Json value = Json::parse(R"({"files": ["file://)" + a + R"("], "name": "not a file", "n": 3})");
  ASSERT_TRUE(files.Resolve(value).ok());
  EXPECT_EQ(value["files"][0], "data:text/plain;base64," + absl::Base64Escape("a\n"));
  EXPECT_EQ(value["name"], "not a file");
  EXPECT_EQ(value["n"], 3);
}

TEST(OutputFilesTest, MissingFileIsAnErrorThatNamesIt) {
  OutputFiles files;
  Json value = "file:///nonexistent/out.png";
  absl::Status status = files.Resolve(value);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/out.png"), std::string::npos);
}

}  // namespace
}  // namespace cog
