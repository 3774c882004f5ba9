#include "server/http_transfer.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cog {
namespace {

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using FileHandle = std::unique_ptr<FILE, FileCloser>;

// A handle for `url`, configured by `guard` (which must outlive it) like
// every outbound handle, with the options' user agent and timeouts.
CurlHandle NewHandle(const std::string& url, const TransferOptions& options, OutboundGuard* guard) {
  InitCurlOnce();
  CurlHandle curl(curl_easy_init());
  if (curl == nullptr) return curl;
  CURL* c = curl.get();
  guard->ApplyTo(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
  // Less than the minimum rate for the whole window counts as stalled.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
                   static_cast<long>(std::max<int64_t>(1, options.min_bytes_per_second)));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(absl::ToInt64Seconds(options.stall_timeout))));
  return curl;
}

// The most of an answer that is not the file (an error page, a redirect's
// body, what an upload's PUT answers) that is read: a peer sending one
// without end, faster than the stall rule notices, held its prediction and
// slot for good, past cancels and shutdown.
constexpr uint64_t kMaxAnswerBytes = 64 << 10;

// Where a download goes, and how much of it may.
struct DownloadSink {
  FILE* file;
  CURL* curl;
  uint64_t max_bytes;  // 0: no limit
  const std::atomic<bool>* canceled;  // may be null
  uint64_t written = 0;
  bool over = false;
  uint64_t other_bytes = 0;  // of answers that are not the file
  bool other_cut = false;
};

size_t WriteToFile(char* data, size_t size, size_t count, void* sink_pointer) {
  DownloadSink* sink = static_cast<DownloadSink*>(sink_pointer);
  const size_t bytes = size * count;
  // An error page or a redirect's body is not the file (the status fails the
  // download after), and is read only so far.
  long status = 0;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    sink->other_bytes += bytes;
    if (sink->other_bytes <= kMaxAnswerBytes) return bytes;
    sink->other_cut = true;
    return 0;  // fails the transfer (CURLE_WRITE_ERROR)
  }
  if (sink->max_bytes != 0) {
    curl_off_t announced = -1;  // refused at once when Content-Length says so
    curl_easy_getinfo(sink->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
    if (sink->written + bytes > sink->max_bytes ||
        (announced > 0 && static_cast<uint64_t>(announced) > sink->max_bytes)) {
      sink->over = true;
      return 0;  // fails the transfer (CURLE_WRITE_ERROR)
    }
  }
  sink->written += bytes;
  return std::fwrite(data, 1, bytes, sink->file);
}

constexpr long kUploadBufferBytes = 2 << 20;

// What an upload sends: `size` bytes of `file`, as announced.
struct UploadSource {
  FILE* file;
  uint64_t size;
  uint64_t sent = 0;
  bool shrank = false;
};

size_t ReadFromFile(char* buffer, size_t size, size_t count, void* source_pointer) {
  UploadSource* source = static_cast<UploadSource*>(source_pointer);
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, source->size - source->sent));
  const size_t read = want == 0 ? 0 : std::fread(buffer, 1, want, source->file);
  if (read == 0 && std::ferror(source->file)) return CURL_READFUNC_ABORT;
  if (read == 0 && source->sent < source->size) {
    // Shorter than announced: the peer would wait for the rest until the
    // stall rule gave up.
    source->shrank = true;
    return CURL_READFUNC_ABORT;
  }
  source->sent += read;
  return read;
}

// An upload's answer: read up to kMaxAnswerBytes, then left (the status
// says how it went).
size_t DiscardAnswer(char*, size_t size, size_t count, void* answer_bytes_pointer) {
  uint64_t* answer_bytes = static_cast<uint64_t*>(answer_bytes_pointer);
  *answer_bytes += size * count;
  return *answer_bytes <= kMaxAnswerBytes ? size * count : 0;
}

int AbortWhenCanceled(void* canceled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(canceled)->load() ? 1 : 0;
}

// A download's progress: stops it when canceled, and when an answer that is
// not the file passes kMaxAnswerBytes. A redirect's body never reaches
// WriteToFile (libcurl reads it itself, to follow the redirect): only here
// can one without end be stopped.
int WatchDownload(void* sink_pointer, curl_off_t, curl_off_t now, curl_off_t, curl_off_t) {
  DownloadSink* sink = static_cast<DownloadSink*>(sink_pointer);
  if (sink->canceled != nullptr && sink->canceled->load()) return 1;
  long status = 0;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
  if ((status < 200 || status >= 300) && now > static_cast<curl_off_t>(kMaxAnswerBytes)) {
    sink->other_cut = true;
    return 1;
  }
  return 0;
}

void AbortOnCancel(CURL* c, const std::atomic<bool>* canceled) {
  if (canceled == nullptr) return;
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, AbortWhenCanceled);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, canceled);
}

size_t KeepLocation(char* data, size_t size, size_t count, void* location) {
  absl::string_view line(data, size * count);
  if (absl::StartsWithIgnoreCase(line, "location:")) {
    line.remove_prefix(9);
    *static_cast<std::string*>(location) = std::string(absl::StripAsciiWhitespace(line));
  }
  return size * count;
}

std::string TransferError(CURLcode code, const char* detail, const TransferOptions& options,
                          const OutboundGuard& guard) {
  if (code == CURLE_COULDNT_CONNECT && !guard.refusal().empty()) return guard.refusal();
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return absl::StrCat("fewer than ", std::max<int64_t>(1, options.min_bytes_per_second),
                        " bytes a second moved for ", absl::FormatDuration(options.stall_timeout),
                        " (timed out; see --file-stall-timeout and --min-body-rate)");
  }
  return *detail != '\0' ? std::string(detail) : std::string(curl_easy_strerror(code));
}

}  // namespace

void InitCurlOnce() {
  static std::once_flag initialized;
  std::call_once(initialized, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

absl::Status DownloadToFile(const std::string& url, int fd, const std::string& path,
                            const TransferOptions& options, const std::atomic<bool>* canceled) {
  FileHandle file(::fdopen(fd, "wb"));
  if (file == nullptr) {
    const int error = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(error)));
  }
  OutboundGuard guard(&options.outbound);
  CurlHandle curl = NewHandle(url, options, &guard);
  if (curl == nullptr) return absl::InternalError("libcurl could not make a handle");
  CURL* c = curl.get();
  char detail[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, static_cast<long>(options.max_redirects));
  // Not CURLOPT_MAXFILESIZE: it applies to the body of a redirect or an
  // error page too, and a 404 read as "too large".
  DownloadSink sink{file.get(), c, options.max_download_bytes, canceled};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteToFile);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, WatchDownload);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
  const CURLcode code = curl_easy_perform(c);
  if (canceled != nullptr && canceled->load()) return absl::CancelledError("canceled");
  if (sink.other_cut) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return absl::FailedPreconditionError(absl::StrCat(
        "could not download ", RedactUrl(url), ": the server answered HTTP ", status, " with a body of more than ",
        kMaxAnswerBytes, " bytes (left unread)"));
  }
  if (sink.over) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "could not download ", RedactUrl(url), ": it is larger than --max-download-bytes (",
        options.max_download_bytes, " bytes)"));
  }
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("could not download ", RedactUrl(url), ": ", TransferError(code, detail, options, guard)));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    return absl::FailedPreconditionError(
        absl::StrCat("could not download ", RedactUrl(url), ": the server answered HTTP ", status));
  }
  if (std::fflush(file.get()) != 0 || std::ferror(file.get())) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {

bool IsWithin(absl::string_view path, absl::string_view dir) {
  return path.size() > dir.size() && absl::StartsWith(path, dir) && path[dir.size()] == '/';
}

absl::Status OutsideError(const std::string& path, const std::string& resolved,
                          const std::string& within) {
  return absl::PermissionDeniedError(absl::StrCat(
      "the output file ", path, resolved.empty() || resolved == path ? "" : absl::StrCat(" (", resolved, ")"),
      " is outside ", within, ", the files directory cog-server shares with a runner started elsewhere "
      "(--files-dir): the server reads no other file for it (a runner as new as the server copies "
      "a model's files there before it names them)"));
}

}  // namespace

absl::StatusOr<int> OpenOutputFile(const std::string& path, uint64_t* size,
                                   const std::string& within) {
  if (!within.empty()) {
    // Judged before the open as well: opening a device outside can do
    // something. The check after the open is the one that counts.
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) != nullptr && !IsWithin(resolved, within)) {
      return OutsideError(path, resolved, within);
    }
  }
  auto not_regular = [&path](mode_t mode) {
    const char* what = S_ISDIR(mode)                    ? "a directory"
                       : S_ISFIFO(mode)                 ? "a named pipe"
                       : S_ISCHR(mode) || S_ISBLK(mode) ? "a device"
                       : S_ISSOCK(mode)                 ? "a socket"
                                                        : "not a file";
    return absl::FailedPreconditionError(absl::StrCat(
        "the output file ", path, " is ", what, ", not a regular file: return the Path of a file"));
  };
  // Looked at before it is opened: opening a device can do something (a
  // terminal, a tape), and a socket cannot be opened at all.
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0 && !S_ISREG(status.st_mode)) return not_regular(status.st_mode);
  // O_NONBLOCK: were it swapped for a named pipe since, the open does not
  // wait for a writer; fstat below sees what was opened.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot read the output file ", path, ": ", std::strerror(errno)));
  }
  if (::fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot read the output file ", path, ": ", std::strerror(error)));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    return not_regular(status.st_mode);
  }
  if (!within.empty()) {
    // Where the open went, every link resolved by the kernel as it opened.
    std::string opened(PATH_MAX, '\0');
    const ssize_t n = ::readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), opened.data(), opened.size());
    opened.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n <= 0 || !IsWithin(opened, within)) {
      ::close(fd);
      return OutsideError(path, opened, within);
    }
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *size = static_cast<uint64_t>(status.st_size);
  return fd;
}

absl::StatusOr<std::string> UploadFile(const std::string& url, const std::string& path,
                                       const std::vector<std::string>& headers,
                                       const TransferOptions& options,
                                       const std::atomic<bool>* canceled) {
  auto canceled_error = [&] {
    return absl::CancelledError(absl::StrCat("the upload of ", path, " to ", RedactUrl(url), " was canceled"));
  };
  for (const std::string& header : headers) {
    if (absl::Status safe = CheckHeaderLine(header); !safe.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("could not upload ", path, " to ", RedactUrl(url), ": ", safe.message()));
    }
  }
  std::string last_error;
  absl::Duration backoff = options.upload_backoff;
  for (int attempt = 1; attempt <= std::max(1, options.upload_attempts); ++attempt) {
    if (attempt > 1) {
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
      backoff *= 2;
    }
    if (canceled != nullptr && canceled->load()) return canceled_error();
    uint64_t size = 0;
    absl::StatusOr<int> fd = OpenOutputFile(path, &size, options.output_root);
    if (!fd.ok()) return fd.status();
    FileHandle file(::fdopen(*fd, "rb"));
    if (file == nullptr) {
      const int error = errno;
      ::close(*fd);
      return absl::InternalError(
          absl::StrCat("cannot read the output file ", path, ": ", std::strerror(error)));
    }
    OutboundGuard guard(&options.outbound);
    CurlHandle curl = NewHandle(url, options, &guard);
    if (curl == nullptr) return absl::InternalError("libcurl could not make a handle");
    CURL* c = curl.get();
    std::unique_ptr<curl_slist, SlistDeleter> list;
    for (const std::string& header : headers) {
      list.reset(curl_slist_append(list.release(), header.c_str()));
    }
    list.reset(curl_slist_append(list.release(), "Expect:"));  // no 100-continue round trip
    char detail[CURL_ERROR_SIZE] = "";
    std::string location;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    UploadSource source{file.get(), size};
    curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadFromFile);
    curl_easy_setopt(c, CURLOPT_READDATA, &source);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    // libcurl's largest upload buffer (its default is 64 KiB): bench/upload_bench's
    // sending CPU 0.53-0.61 -> 0.32-0.37 ms/MiB on loopback. Allocated for the
    // transfer only, and touched only as far as the file goes.
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, KeepLocation);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &location);
    uint64_t answer_bytes = 0;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, DiscardAnswer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer_bytes);
    AbortOnCancel(c, canceled);
    CURLcode code = curl_easy_perform(c);
    if (canceled != nullptr && canceled->load()) return canceled_error();
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    // An answer longer than is read: the file was sent, and its status says
    // how it went.
    if (code == CURLE_WRITE_ERROR && answer_bytes > kMaxAnswerBytes && source.sent == size) code = CURLE_OK;
    if (source.shrank) {
      last_error = absl::StrCat("the file shrank to ", source.sent, " of its ", size, " bytes as it was sent");
      continue;  // sent again as it is now
    }
    if (code == CURLE_OK && status >= 200 && status < 300) {
      // Signed upload URLs carry their signature in the query: it is no part
      // of where the file now lives.
      std::string where = location.empty() ? url : location;
      where = where.substr(0, where.find_first_of("?#"));
      where = WithoutUserinfo(where);  // a password in --upload-url is not every client's
      return where;
    }
    if (code != CURLE_OK) {
      last_error = TransferError(code, detail, options, guard);
      // Neither a refused address nor a refused protocol changes on a retry.
      if ((code == CURLE_COULDNT_CONNECT && !guard.refusal().empty()) ||
          code == CURLE_UNSUPPORTED_PROTOCOL) {
        break;
      }
    } else {
      last_error = absl::StrCat("the server answered HTTP ", status);
      if (status != 429 && status < 500) break;  // the request itself is wrong: no retry
    }
  }
  return absl::UnavailableError(absl::StrCat("could not upload ", path, " to ", RedactUrl(url), ": ", last_error));
}

}  // namespace cog
