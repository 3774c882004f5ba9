#include "server/http_transfer.h"

#include <fcntl.h>

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace cog {
namespace {

// The last line of defence behind the edge's id checks: a header value that
// would end its line early is never sent, not even to an address that does
// not answer.
TEST(UploadFileTest, RefusesHeadersThatWouldInjectMore) {
  const std::string path = ::testing::TempDir() + "/upload.txt";
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("bytes", file);
  std::fclose(file);
  for (std::string header : {std::string("X-Prediction-ID: a\r\nX-Injected: 1"),
                             std::string("X-Prediction-ID: a\nb"),
                             std::string("X-Prediction-ID: a\0b", 20)}) {
    TransferOptions options;
    options.upload_attempts = 3;
    absl::StatusOr<std::string> where = UploadFile("http://127.0.0.1:9/x", path, {header}, options);
    ASSERT_FALSE(where.ok());
    EXPECT_EQ(where.status().code(), absl::StatusCode::kInvalidArgument) << where.status();
    EXPECT_NE(where.status().message().find("CR, LF or NUL"), absl::string_view::npos);
  }
}

int NewFile(const std::string& path) { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); }

TEST(DownloadToFileTest, ADeniedAddressIsRefusedBeforeConnecting) {
  TransferOptions options;
  options.outbound = *OutboundPolicy::Parse("127.0.0.0/8");
  const std::string path = ::testing::TempDir() + "/download.txt";
  // Port 9 (discard) has no listener here: without the policy this would be
  // "connection refused"; with it, the policy's own message.
  absl::Status status = DownloadToFile("http://127.0.0.1:9/x", NewFile(path), path, options, nullptr);
  EXPECT_EQ(status.message(),
            "could not download http://127.0.0.1:9/x: refused to connect to 127.0.0.1: blocked by "
            "--outbound-deny-cidrs");
}

TEST(DownloadToFileTest, OnlyHttpAndHttpsAreSpoken) {
  const std::string path = ::testing::TempDir() + "/download.txt";
  for (const char* url : {"file:///etc/hostname", "gopher://127.0.0.1:9/_x", "dict://127.0.0.1:9/i"}) {
    absl::Status status = DownloadToFile(url, NewFile(path), path, TransferOptions(), nullptr);
    EXPECT_FALSE(status.ok()) << url;
    EXPECT_NE(status.message().find("not supported"), absl::string_view::npos) << status;
  }
}

}  // namespace
}  // namespace cog
