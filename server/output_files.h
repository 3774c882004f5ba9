// OutputFiles: turns the file:// URLs the runner returns for Path outputs into
// what a client can use. Today: data: URIs, with the media type sniffed from
// the content by libmagic. (Uploads to --upload-url / output_file_prefix are
// issue 4's next step.)
//
// Thread-safe (libmagic's cookie is used under a lock).
#ifndef COG_SERVER_OUTPUT_FILES_H_
#define COG_SERVER_OUTPUT_FILES_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/json.h"

struct magic_set;

namespace cog {

// "/tmp/a b.txt" for "file:///tmp/a%20b.txt"; an error for anything else.
absl::StatusOr<std::string> FileUrlToPath(absl::string_view url);

class OutputFiles {
 public:
  OutputFiles();
  ~OutputFiles();
  OutputFiles(const OutputFiles&) = delete;
  OutputFiles& operator=(const OutputFiles&) = delete;

  // Replaces every string starting with "file://" in `value`, at any depth, by a
  // data: URI of the file's bytes. Fails, naming the file, if one cannot be read.
  absl::Status Resolve(Json& value);

  // "text/plain", "image/png", ...; "application/octet-stream" when unknown.
  std::string SniffMediaType(absl::string_view bytes);

 private:
  absl::StatusOr<std::string> DataUri(const std::string& url);

  absl::Mutex mu_;
  magic_set* magic_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cog

#endif  // COG_SERVER_OUTPUT_FILES_H_
