// HTTP file transfers with libcurl: downloading a Path input to a local file,
// and uploading a Path output by PUT.
//
// Free functions; each call uses its own curl handle, so they are safe to call
// from any number of threads at once. They block until the transfer ends.
// Every handle speaks http and https only, also after redirects, and connects
// only where TransferOptions::outbound allows (see outbound_policy.h).
#ifndef COG_SERVER_HTTP_TRANSFER_H_
#define COG_SERVER_HTTP_TRANSFER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/outbound_policy.h"

namespace cog {

struct TransferOptions {
  std::string user_agent = "cog-server";
  absl::Duration connect_timeout = absl::Seconds(10);
  // A transfer that moves fewer than min_bytes_per_second on average over
  // stall_timeout is abandoned: a peer trickling 2 bytes a second held a
  // prediction (an upload, its cancel and shutdown too) for as long as the
  // file was long.
  absl::Duration stall_timeout = absl::Seconds(30);
  int64_t min_bytes_per_second = 4 << 10;
  // Downloads only: the most bytes one may write to disk (0: no limit);
  // past it the download fails, naming --max-download-bytes.
  uint64_t max_download_bytes = 0;
  int max_redirects = 10;
  // Uploads only: tries on connection errors, 429 and 5xx.
  int upload_attempts = 3;
  absl::Duration upload_backoff = absl::Milliseconds(250);
  // Where connections may go (--outbound-deny-cidrs); by default not to
  // link-local and metadata addresses.
  OutboundPolicy outbound;
  // Uploads only: the directory a file must be in (OpenOutputFile's
  // `within`); empty: anywhere.
  std::string output_root;
};

// Calls curl_global_init once per process.
void InitCurlOnce();

// GETs an http(s) URL into `path` (created or truncated), following
// redirects. Fails on a non-2xx status, a stall, or when `canceled` becomes
// true (Cancelled); the message says which, with the URL. Of an answer that
// is not the file (an error page, a redirect's body), 64 KiB are read.
// `fd` is the file, opened for writing, which it closes; `path` names it in
// messages.
absl::Status DownloadToFile(const std::string& url, int fd, const std::string& path,
                            const TransferOptions& options, const std::atomic<bool>* canceled);

// Opens a file a predictor returned (a Path output) for reading: a regular
// file (a symbolic link to one is followed), else FailedPrecondition naming
// what it is (a directory, a named pipe, a device, a socket): a directory
// read as a file once took the server down, and a named pipe's open() or
// read() waited for a writer forever. Sets `*size`. The caller closes the fd.
// With `within` (an absolute path without symbolic links), the file must be
// under that directory once every link is resolved, else PermissionDenied: a
// runner started elsewhere (a sidecar) may name only files of the directory
// the two share, not the server's own (a service account's token, say). What
// was opened is what is judged, so swapping in a link after the check does
// not help.
absl::StatusOr<int> OpenOutputFile(const std::string& path, uint64_t* size,
                                   const std::string& within = "");

// PUTs the bytes of `path` to `url` with the given extra headers
// ("Name: value"), retrying connection errors, 429 and 5xx. Returns the
// response's Location header if it has one, else `url`, without its query.
// A header carrying CR, LF or NUL is refused (InvalidArgument) and nothing is
// sent: a caller's text must not become headers of its own. Stops, Cancelled,
// when `canceled` (may be null) becomes true. Of the answer, 64 KiB are read:
// one without end held the call for good.
absl::StatusOr<std::string> UploadFile(const std::string& url, const std::string& path,
                                       const std::vector<std::string>& headers,
                                       const TransferOptions& options,
                                       const std::atomic<bool>* canceled = nullptr);

}  // namespace cog

#endif  // COG_SERVER_HTTP_TRANSFER_H_
