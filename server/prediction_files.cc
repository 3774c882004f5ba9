#include "server/prediction_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <magic.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <new>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/server_temp_dir.h"
#include "spdlog/spdlog.h"

namespace cog {
namespace {

constexpr size_t kSniffBytes = 64 << 10;  // libmagic needs the head, not the whole file

std::string PercentDecode(absl::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    // Exactly two hex digits: SimpleHexAtoi alone would also take "-1", " 1" or "+f".
    int value = 0;
    if (text[i] == '%' && i + 2 < text.size() && absl::ascii_isxdigit(text[i + 1]) &&
        absl::ascii_isxdigit(text[i + 2]) && absl::SimpleHexAtoi(text.substr(i + 1, 2), &value)) {
      decoded.push_back(static_cast<char>(value));
      i += 2;
    } else {
      decoded.push_back(text[i]);
    }
  }
  return decoded;
}

std::string PercentEncode(absl::string_view text) {
  std::string encoded;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded.push_back(static_cast<char>(c));
    } else {
      static constexpr char kDigits[] = "0123456789ABCDEF";
      encoded.push_back('%');
      encoded.push_back(kDigits[c >> 4]);
      encoded.push_back(kDigits[c & 15]);
    }
  }
  return encoded;
}

// A safe file name from the last segment of a URL's path; "file" if none.
std::string FileNameFromUrl(absl::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = url.find("://");
  if (scheme != absl::string_view::npos) url.remove_prefix(scheme + 3);
  const size_t path = url.find('/');
  if (path == absl::string_view::npos) return "file";
  url.remove_prefix(path);
  // As UTF-8 (Latin-1 names, %E9, are common): the runner is told the path in
  // JSON, where another byte would name another file.
  std::string name = ToUtf8(PercentDecode(url.substr(url.rfind('/') + 1)));
  for (char& c : name) {
    if (c == '/' || c == '\0') c = '_';
  }
  if (name.size() > 200) {  // keep the extension, and whole characters
    size_t cut = name.size() - 200;
    while (cut < name.size() && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) ++cut;
    name = name.substr(cut);
  }
  if (name.empty() || name == "." || name == "..") return "file";
  return name;
}

// "images[1]" for "/images/1", "pair.a" for "/pair/a".
std::string ReadableLocation(absl::string_view pointer) {
  std::string readable;
  for (absl::string_view token : absl::StrSplit(pointer.substr(1), '/')) {
    std::string name = absl::StrReplaceAll(token, {{"~1", "/"}, {"~0", "~"}});
    int index = 0;
    if (!readable.empty() && absl::SimpleAtoi(name, &index)) {
      absl::StrAppend(&readable, "[", name, "]");
    } else {
      absl::StrAppend(&readable, readable.empty() ? "" : ".", name);
    }
  }
  return readable;
}

magic_set* OpenMagic(int flags) {
  magic_set* magic = magic_open(flags);
  if (magic != nullptr && magic_load(magic, nullptr) != 0) {
    magic_close(magic);
    magic = nullptr;
  }
  return magic;
}

}  // namespace

absl::StatusOr<std::string> FileUrlToPath(absl::string_view url) {
  if (!absl::ConsumePrefix(&url, "file://")) {
    return absl::InvalidArgumentError(absl::StrCat("not a file:// URL: ", url));
  }
  if (!absl::StartsWith(url, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("file URL has no absolute path: file://", url));
  }
  return PercentDecode(url);
}

absl::StatusOr<std::string> DecodeDataUri(absl::string_view uri) {
  if (!absl::StartsWithIgnoreCase(uri, "data:")) {
    return absl::InvalidArgumentError("not a data: URI");
  }
  uri.remove_prefix(5);
  const size_t comma = uri.find(',');
  if (comma == absl::string_view::npos) {
    return absl::InvalidArgumentError("the data: URI has no ',' before its data");
  }
  const absl::string_view meta = uri.substr(0, comma);
  const absl::string_view data = uri.substr(comma + 1);
  if (!absl::EndsWithIgnoreCase(meta, ";base64")) return PercentDecode(data);
  std::string bytes;
  // Base64 needs no percent-decoding unless it has a '%': no copy of what
  // may be megabytes.
  std::optional<std::string> decoded;
  if (absl::StrContains(data, '%')) decoded = PercentDecode(data);
  if (!absl::Base64Unescape(decoded.has_value() ? absl::string_view(*decoded) : data, &bytes)) {
    return absl::InvalidArgumentError("the data: URI's base64 cannot be decoded");
  }
  return bytes;
}

std::vector<std::string> ParseFilePointers(const std::string& files_json) {
  std::vector<std::string> pointers;
  if (files_json.empty()) return pointers;
  absl::StatusOr<Json> list = ParseJson(files_json);
  if (!list.ok() || !list->is_array()) return pointers;
  for (const Json& pointer : *list) {
    if (pointer.is_string()) pointers.push_back(pointer.get<std::string>());
  }
  return pointers;
}

MagicPool::~MagicPool() {
  absl::MutexLock lock(&mu_);
  for (magic_set* magic : idle_) magic_close(magic);
}

std::string MagicPool::Sniff(absl::string_view bytes) {
  magic_set* magic = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      magic = idle_.back();
      idle_.pop_back();
    }
  }
  if (magic == nullptr && !unavailable_.load(std::memory_order_relaxed)) {
    magic = OpenMagic(flags_);
    if (magic == nullptr) unavailable_ = true;  // no database: not tried again for each file
  }
  if (magic == nullptr) return "";
  const char* found = magic_buffer(magic, bytes.data(), bytes.size());
  std::string result = found != nullptr ? found : "";
  absl::MutexLock lock(&mu_);
  idle_.push_back(magic);
  return result;
}

PredictionFiles::PredictionFiles(Options options)
    : options_(std::move(options)), mime_(MAGIC_MIME_TYPE), extension_(MAGIC_EXTENSION) {
  const std::string parent = options_.temp_parent.empty() ? TempParent() : options_.temp_parent;
  // Named with the server's pid: a later server removes it if this one dies.
  if (absl::StatusOr<std::string> root = MakeServerTempDir(parent, "cog-server"); root.ok()) {
    root_ = *root;
    root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_fd_ < 0) {
      spdlog::error("cannot open {}: {}; Path inputs given as URLs will fail", root_, std::strerror(errno));
    }
  } else {
    spdlog::error("{}; Path inputs given as URLs will fail", std::string(root.status().message()));
  }
  if (options_.confine_outputs) {
    // Without links: a file is judged by where it really is (OpenOutputFile);
    // the runner is told root_ as given (its container may resolve links
    // such as /var/run differently). Without a root, nothing is within it:
    // every Path output is refused.
    std::error_code error;
    const std::filesystem::path canonical = std::filesystem::canonical(root_, error);
    options_.transfer.output_root =
        root_.empty() ? "/nonexistent/cog-server-files" : error ? root_ : canonical.string();
  }
}

PredictionFiles::~PredictionFiles() {
  if (root_fd_ >= 0) ::close(root_fd_);
  std::error_code error;
  // Not followed if it became a link: only the link goes.
  if (!root_.empty()) std::filesystem::remove_all(root_, error);
}

std::string PredictionFiles::SniffMediaType(absl::string_view bytes) {
  std::string type = mime_.Sniff(bytes);
  if (type.empty() || type == "application/x-empty") return "application/octet-stream";
  return type;
}

std::string PredictionFiles::SniffExtension(absl::string_view bytes) {
  const std::string found = extension_.Sniff(bytes);
  // "jpeg/jpg/jpe/jfif": the first is the usual one; "???" means unknown.
  std::string extension = found.substr(0, found.find('/'));
  if (extension == "???" || extension.empty()) return "";
  return extension;
}

std::string PredictionFiles::LeafOf(const std::string& dir) const {
  absl::string_view leaf = dir;
  if (root_.empty() || !absl::ConsumePrefix(&leaf, root_) || !absl::ConsumePrefix(&leaf, "/") ||
      leaf.empty() || absl::StrContains(leaf, '/') || leaf == "." || leaf == "..") {
    return "";
  }
  return std::string(leaf);
}

absl::StatusOr<std::string> PredictionFiles::MakeWorkDir() {
  if (root_fd_ < 0) return absl::InternalError("the server has no temporary directory");
  uint64_t random = 0;
  if (::getrandom(&random, sizeof(random), 0) != sizeof(random)) random ^= absl::ToUnixNanos(absl::Now());
  const std::string leaf = absl::StrCat("p", next_dir_.fetch_add(1), "-", absl::Hex(random, absl::kZeroPad16));
  const std::string dir = absl::StrCat(root_, "/", leaf);
  if (::mkdirat(root_fd_, leaf.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot make ", dir, ": ", std::strerror(errno)));
  }
  return dir;
}

namespace {

// A new directory `name` beneath `parent_fd`, opened without following a
// link; fails if something is there already.
absl::StatusOr<int> MakeDirBeneath(int parent_fd, const std::string& name, const std::string& shown) {
  if (::mkdirat(parent_fd, name.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot make ", shown, ": ", std::strerror(errno)));
  }
  const int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", shown, ": ", std::strerror(errno)));
  return fd;
}

// How deep RemoveBeneath descends (an open directory each level) before it
// moves what is deeper up beside the tree it removes.
constexpr int kMaxRemoveDepth = 32;

// Removes `name` beneath `parent_fd` with what is in it, following no link
// (a link is removed, not what it names). Directories deeper
// than kMaxRemoveDepth are moved (never followed) to `top_fd` under a new
// name, which is added to `moved` for the caller to remove in turn.
void RemoveBeneath(int parent_fd, const char* name, int depth, int top_fd, const std::string& prefix,
                   std::vector<std::string>* moved) {
  const int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ::unlinkat(parent_fd, name, 0);  // a file, or a link
    return;
  }
  if (DIR* entries = ::fdopendir(fd); entries != nullptr) {
    while (const dirent* entry = ::readdir(entries)) {
      const absl::string_view child = entry->d_name;
      if (child == "." || child == "..") continue;
      if (depth < kMaxRemoveDepth) {
        RemoveBeneath(fd, entry->d_name, depth + 1, top_fd, prefix, moved);
        continue;
      }
      // No new name that already exists: one planted there is not replaced.
      for (int attempt = 0; attempt < 100; ++attempt) {
        std::string to = absl::StrCat(prefix, ".deep", moved->size(), "-", attempt);
        if (::renameat2(fd, entry->d_name, top_fd, to.c_str(), RENAME_NOREPLACE) == 0) {
          moved->push_back(std::move(to));
          break;
        }
        if (errno != EEXIST) {
          ::unlinkat(fd, entry->d_name, 0);  // not a directory after all
          break;
        }
      }
    }
    ::closedir(entries);  // closes fd
  } else {
    ::close(fd);
  }
  ::unlinkat(parent_fd, name, AT_REMOVEDIR);
}

}  // namespace

void PredictionFiles::RemoveWorkDir(const std::string& dir) {
  const std::string leaf = LeafOf(dir);
  if (root_fd_ < 0 || leaf.empty()) return;
  // Depth first, as deep as a predictor made it (100 nested directories
  // were left behind), with a bounded number of directories open at once.
  std::vector<std::string> moved;
  RemoveBeneath(root_fd_, leaf.c_str(), 0, root_fd_, leaf, &moved);
  for (size_t i = 0; i < moved.size(); ++i) {
    const std::string name = moved[i];  // not a reference into what the call appends to
    RemoveBeneath(root_fd_, name.c_str(), 0, root_fd_, leaf, &moved);
  }
  moved.push_back(leaf);
  for (const std::string& name : moved) {
    if (::faccessat(root_fd_, name.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
      spdlog::warn("cannot remove all of {}/{}", root_, name);
    }
  }
}

absl::StatusOr<std::string> PredictionFiles::FetchOne(const std::string& url, int dir_fd,
                                                      const std::string& dir,
                                                      const std::atomic<bool>* canceled) {
  // Made new, never through a link (O_EXCL, O_NOFOLLOW, beneath dir_fd).
  auto create = [dir_fd, &dir](const std::string& name) -> absl::StatusOr<int> {
    const int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", dir, "/", name, ": ", std::strerror(errno)));
    return fd;
  };
  if (absl::StartsWithIgnoreCase(url, "data:")) {
    absl::StatusOr<std::string> decoded = DecodeDataUri(url);
    if (!decoded.ok()) return decoded.status();
    const std::string& bytes = *decoded;
    const std::string extension = SniffExtension(absl::string_view(bytes).substr(0, kSniffBytes));
    const std::string name = absl::StrCat("file", extension.empty() ? "" : ".", extension);
    const std::string path = absl::StrCat(dir, "/", name);
    absl::StatusOr<int> fd = create(name);
    if (!fd.ok()) return fd.status();
    const absl::Cleanup close_file = [&fd] { ::close(*fd); };
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(*fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
      done += static_cast<size_t>(n);
    }
    return path;
  }
  const std::string name = FileNameFromUrl(url);
  const std::string path = absl::StrCat(dir, "/", name);
  absl::StatusOr<int> fd = create(name);
  if (!fd.ok()) return fd.status();
  if (absl::Status status = DownloadToFile(url, *fd, path, options_.transfer, canceled); !status.ok()) {
    return status;
  }
  return path;
}

absl::Status PredictionFiles::FetchInputs(Json& input, const std::vector<std::string>& pointers,
                                          const std::string& dir, const std::atomic<bool>* canceled,
                                          const Json* urls_from) {
  const Json& from = urls_from != nullptr ? *urls_from : input;
  const std::string leaf = LeafOf(dir);
  const int dir_fd = root_fd_ < 0 || leaf.empty()
                         ? -1
                         : ::openat(root_fd_, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", dir, ": ", std::strerror(errno)));
  const absl::Cleanup close_dir = [dir_fd] { ::close(dir_fd); };
  for (size_t i = 0; i < pointers.size(); ++i) {
    const Json::json_pointer pointer(pointers[i]);
    if (!from.contains(pointer) || !from[pointer].is_string()) continue;
    const std::string& url = from[pointer].get_ref<const std::string&>();  // not copied: it may be megabytes
    // Each file in a directory of its own: its name stays the one it had.
    const std::string file_dir = absl::StrCat(dir, "/", i);
    absl::StatusOr<int> file_dir_fd = MakeDirBeneath(dir_fd, absl::StrCat(i), file_dir);
    absl::StatusOr<std::string> path =
        file_dir_fd.ok() ? FetchOne(url, *file_dir_fd, file_dir, canceled) : file_dir_fd.status();
    if (file_dir_fd.ok()) ::close(*file_dir_fd);
    if (!path.ok()) {
      if (path.status().code() == absl::StatusCode::kCancelled) return path.status();
      return absl::Status(path.status().code(),
                          absl::StrCat("input ", ReadableLocation(pointers[i]), ": ",
                                       path.status().message()));
    }
    input[pointer] = *path;
  }
  return absl::OkStatus();
}

void AppendBase64(absl::string_view data, std::string* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  // The two characters of every 12-bit value, first one in the low byte.
  static const std::array<uint16_t, 4096> kPairs = [] {
    std::array<uint16_t, 4096> pairs{};
    for (size_t i = 0; i < pairs.size(); ++i) {
      pairs[i] = static_cast<uint16_t>(static_cast<unsigned char>(kAlphabet[i >> 6]) |
                                       (static_cast<unsigned char>(kAlphabet[i & 63]) << 8));
    }
    return pairs;
  }();
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const size_t start = out->size();
  out->resize(start + (n + 2) / 3 * 4);
  char* to = out->data() + start;
  size_t i = 0;
  // Six bytes (48 bits) at a time, read as one big-endian 64-bit load while
  // eight are left: eight characters, written as one 64-bit store.
  for (; i + 8 <= n; i += 6, to += 8) {
    uint64_t bits;
    std::memcpy(&bits, in + i, 8);
    bits = __builtin_bswap64(bits) >> 16;
    const uint64_t chars = uint64_t{kPairs[(bits >> 36) & 0xfff]} |
                           (uint64_t{kPairs[(bits >> 24) & 0xfff]} << 16) |
                           (uint64_t{kPairs[(bits >> 12) & 0xfff]} << 32) |
                           (uint64_t{kPairs[bits & 0xfff]} << 48);
    std::memcpy(to, &chars, 8);
  }
  for (; i + 3 <= n; i += 3, to += 4) {
    const uint32_t bits = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    const uint16_t high = kPairs[bits >> 12];
    const uint16_t low = kPairs[bits & 0xfff];
    std::memcpy(to, &high, 2);
    std::memcpy(to + 2, &low, 2);
  }
  if (i < n) {  // one or two bytes left: padded with '='
    const uint32_t bits = (uint32_t{in[i]} << 16) | (i + 1 < n ? uint32_t{in[i + 1]} << 8 : 0);
    to[0] = kAlphabet[bits >> 18];
    to[1] = kAlphabet[(bits >> 12) & 63];
    to[2] = i + 1 < n ? kAlphabet[(bits >> 6) & 63] : '=';
    to[3] = '=';
  }
}

absl::StatusOr<std::string> PredictionFiles::DataUri(const std::string& path, uint64_t* room) {
  uint64_t size = 0;
  absl::StatusOr<int> fd = OpenOutputFile(path, &size, options_.transfer.output_root);
  if (!fd.ok()) return fd.status();
  const absl::Cleanup close_file = [&fd] { ::close(*fd); };
  // Bounded before it is read, with the output's other files: a 1 GiB file
  // once took 2.8 GB of the server's memory, and 40 files each under the
  // bound 37 times it (a sparse file costs its predictor no disk).
  const uint64_t uri_bytes = 64 + (size + 2) / 3 * 4;
  if (options_.max_data_uri_bytes != 0 && uri_bytes > *room) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the output file ", path, " is ", size, " bytes, a data: URI of about ", uri_bytes, " bytes",
        uri_bytes > options_.max_data_uri_bytes ? "" : " that with the output's other files would pass",
        uri_bytes > options_.max_data_uri_bytes ? ", over " : " ", "--max-output-bytes (",
        options_.max_data_uri_bytes, "); give the server --upload-url to upload files this large"));
  }
  if (options_.max_data_uri_bytes != 0) *room -= uri_bytes;
  // One read into one buffer (not zero-filled first), and the base64
  // written straight after the URI's head.
  std::unique_ptr<char[]> content(new (std::nothrow) char[std::max<uint64_t>(size, 1)]);
  if (content == nullptr) {  // with --max-output-bytes 0, a file larger than memory
    return absl::ResourceExhaustedError(absl::StrCat(
        "the output file ", path, " is ", size, " bytes, more than the server can hold as a data: URI; "
        "give the server --upload-url to upload files this large"));
  }
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(*fd, content.get() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(absl::StrCat("cannot read the whole output file ", path, ": ",
                                              n < 0 ? std::strerror(errno) : "it got shorter"));
    }
    done += static_cast<uint64_t>(n);
  }
  const absl::string_view bytes(content.get(), size);
  std::string uri = absl::StrCat("data:", SniffMediaType(bytes.substr(0, kSniffBytes)), ";base64,");
  uri.reserve(uri.size() + (size + 2) / 3 * 4);
  AppendBase64(bytes, &uri);
  return uri;
}

absl::StatusOr<std::string> PredictionFiles::Upload(const std::string& path,
                                                    const std::string& prefix,
                                                    const std::string& prediction_id,
                                                    const std::atomic<bool>* canceled) {
  std::string head(kSniffBytes, '\0');
  {
    uint64_t size = 0;
    absl::StatusOr<int> fd = OpenOutputFile(path, &size, options_.transfer.output_root);
    if (!fd.ok()) return fd.status();
    ssize_t n;
    while ((n = ::read(*fd, head.data(), head.size())) < 0 && errno == EINTR) {
    }
    ::close(*fd);
    head.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  const std::string name = std::filesystem::path(path).filename().string();
  const std::string url =
      absl::StrCat(prefix, absl::EndsWith(prefix, "/") ? "" : "/", PercentEncode(name));
  std::vector<std::string> headers = {"Content-Type: " + SniffMediaType(head)};
  if (!prediction_id.empty()) headers.push_back("X-Prediction-ID: " + prediction_id);
  return UploadFile(url, path, headers, options_.transfer, canceled);
}

absl::StatusOr<std::string> PredictionFiles::ResolveOne(const std::string& url,
                                                        OutputTarget& target,
                                                        uint64_t* data_uri_room) {
  if (auto it = target.done.find(url); it != target.done.end()) return it->second;
  absl::StatusOr<std::string> path = FileUrlToPath(url);
  if (!path.ok()) return path.status();
  const std::string& prefix =
      target.upload_prefix.empty() ? options_.upload_url : target.upload_prefix;
  if (prefix.empty()) {
    // A data: URI is not kept: the same file returned twice is rare, and
    // keeping megabytes per file for it is not worth it.
    return DataUri(*path, data_uri_room);
  }
  absl::StatusOr<std::string> uploaded = Upload(*path, prefix, target.prediction_id, target.canceled);
  if (uploaded.ok()) target.done[url] = *uploaded;
  return uploaded;
}

absl::Status PredictionFiles::ResolveOutputs(Json& value, const std::vector<std::string>& pointers,
                                             OutputTarget& target) {
  uint64_t data_uri_room = options_.max_data_uri_bytes;
  for (const std::string& text : pointers) {
    Json* slot = nullptr;
    try {
      const Json::json_pointer pointer(text);
      if (value.contains(pointer)) slot = &value[pointer];
    } catch (const Json::exception&) {
      slot = nullptr;
    }
    if (slot == nullptr || !slot->is_string()) {
      return absl::InternalError(
          absl::StrCat("the runner named an output file at '", text, "', where there is none"));
    }
    absl::StatusOr<std::string> resolved = ResolveOne(slot->get<std::string>(), target, &data_uri_room);
    if (!resolved.ok()) return resolved.status();
    *slot = std::move(*resolved);
  }
  return absl::OkStatus();
}

}  // namespace cog
