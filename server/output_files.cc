#include "server/output_files.h"

#include <magic.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cog {

absl::StatusOr<std::string> FileUrlToPath(absl::string_view url) {
  if (!absl::ConsumePrefix(&url, "file://")) {
    return absl::InvalidArgumentError(absl::StrCat("not a file:// URL: ", url));
  }
  if (!absl::StartsWith(url, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("file URL has no absolute path: file://", url));
  }
  std::string path;
  for (size_t i = 0; i < url.size(); ++i) {
    int value = 0;
    if (url[i] == '%' && i + 2 < url.size() && absl::SimpleHexAtoi(url.substr(i + 1, 2), &value)) {
      path.push_back(static_cast<char>(value));
      i += 2;
    } else {
      path.push_back(url[i]);
    }
  }
  return path;
}

OutputFiles::OutputFiles() {
  magic_ = magic_open(MAGIC_MIME_TYPE);
  if (magic_ != nullptr && magic_load(magic_, nullptr) != 0) {
    magic_close(magic_);
    magic_ = nullptr;
  }
}

OutputFiles::~OutputFiles() {
  absl::MutexLock lock(&mu_);
  if (magic_ != nullptr) magic_close(magic_);
}

std::string OutputFiles::SniffMediaType(absl::string_view bytes) {
  absl::MutexLock lock(&mu_);
  const char* type = magic_ != nullptr ? magic_buffer(magic_, bytes.data(), bytes.size()) : nullptr;
  if (type == nullptr || *type == '\0' || absl::string_view(type) == "application/x-empty") {
    return "application/octet-stream";
  }
  return type;
}

absl::StatusOr<std::string> OutputFiles::DataUri(const std::string& url) {
  absl::StatusOr<std::string> path = FileUrlToPath(url);
  if (!path.ok()) return path.status();
  std::ifstream file(*path, std::ios::binary | std::ios::ate);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read the output file ", *path, ": ",
                                            std::strerror(errno)));
  }
  // One read into one buffer, and the URI built around the base64 in place:
  // a 10 MiB output is copied as few times as possible.
  std::string content(static_cast<size_t>(file.tellg()), '\0');
  file.seekg(0);
  if (!file.read(content.data(), static_cast<std::streamsize>(content.size()))) {
    return absl::DataLossError(absl::StrCat("cannot read the whole output file ", *path));
  }
  constexpr size_t kSniffBytes = 64 << 10;  // libmagic needs the head, not the whole file
  std::string uri = absl::StrCat(
      "data:", SniffMediaType(absl::string_view(content).substr(0, kSniffBytes)), ";base64,");
  std::string encoded;
  absl::Base64Escape(content, &encoded);
  content = std::string();
  uri += encoded;
  return uri;
}

absl::Status OutputFiles::Resolve(Json& value) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (!absl::StartsWith(text, "file://")) return absl::OkStatus();
    absl::StatusOr<std::string> uri = DataUri(text);
    if (!uri.ok()) return uri.status();
    value = std::move(*uri);
    return absl::OkStatus();
  }
  if (value.is_array() || value.is_object()) {
    for (Json& member : value) {
      if (absl::Status status = Resolve(member); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace cog
