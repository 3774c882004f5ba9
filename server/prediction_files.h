// PredictionFiles: the files of predictions, at the edge between clients and
// the runner. Path inputs given as http(s):// or data: URLs are fetched into a
// directory of the prediction's own (under one temporary root this object
// owns and removes); the file:// URLs the runner returns for Path outputs
// become uploads (PUT to --upload-url or the request's output_file_prefix) or
// data: URIs. Media types are sniffed from the content by libmagic.
//
// Thread-safe: transfers run in parallel, each sniff with a libmagic handle
// of its own (MagicPool).
#ifndef COG_SERVER_PREDICTION_FILES_H_
#define COG_SERVER_PREDICTION_FILES_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/http_transfer.h"
#include "server/json.h"

struct magic_set;

namespace cog {

// libmagic handles of one kind (`flags`), one per sniff at a time: a handle is
// not thread-safe, and one shared handle made every prediction's files wait
// for each other (a text file costs libmagic 0.4 to 4 ms). Handles are kept
// for reuse, as many as were ever in use at once (~200 KiB each; the database
// is mapped, shared).
class MagicPool {
 public:
  explicit MagicPool(int flags) : flags_(flags) {}
  ~MagicPool();
  MagicPool(const MagicPool&) = delete;
  MagicPool& operator=(const MagicPool&) = delete;

  // What libmagic says of `bytes`; empty if it cannot load its database or
  // knows nothing.
  std::string Sniff(absl::string_view bytes);

 private:
  const int flags_;
  std::atomic<bool> unavailable_{false};  // libmagic could not load its database
  absl::Mutex mu_;
  std::vector<magic_set*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cog

namespace cog {

// "/tmp/a b.txt" for "file:///tmp/a%20b.txt"; an error for anything else.
absl::StatusOr<std::string> FileUrlToPath(absl::string_view url);

// The bytes a data: URI carries ("data:[<media type>][;base64],<data>",
// RFC 2397): the data percent-decoded, then base64-decoded when the metadata
// ends in ";base64". An error without the ',' or for base64 that cannot be
// decoded. The media type is not used: files are named by their content.
absl::StatusOr<std::string> DecodeDataUri(absl::string_view uri);

// Appends `data` in base64 (RFC 4648, padded), as absl::Base64Escape writes
// it, in a fraction of the instructions: one table lookup per 12 bits, six
// bytes at a time (a 10 MiB file as a data: URI: 87 -> ~25 M).
void AppendBase64(absl::string_view data, std::string* out);

// The JSON pointers of a runner frame's `files_json` (where its Path values
// are); empty for an empty or unreadable list.
std::vector<std::string> ParseFilePointers(const std::string& files_json);

class PredictionFiles {
 public:
  struct Options {
    // Where the temporary root goes; empty: $TMPDIR, else /tmp.
    std::string temp_parent;
    // --upload-url: where Path outputs go when a request names no prefix.
    std::string upload_url;
    // --max-output-bytes: the largest data: URI a Path output may become
    // without an upload URL (0: no limit); a larger file fails its prediction.
    uint64_t max_data_uri_bytes = 0;
    // The runner was started elsewhere (a sidecar) and shares root() with the
    // server (--files-dir on a volume both mount at the same path): Path
    // outputs are read only from under root(), and each prediction has a
    // directory there (MakeWorkDir) for the runner to copy a model's files
    // into.
    bool confine_outputs = false;
    TransferOptions transfer;
  };

  explicit PredictionFiles(Options options);
  PredictionFiles() : PredictionFiles(Options{}) {}
  ~PredictionFiles();  // removes the temporary root and all under it
  PredictionFiles(const PredictionFiles&) = delete;
  PredictionFiles& operator=(const PredictionFiles&) = delete;

  // ---- inputs ----

  // Makes a new, empty directory for one prediction's files under root(),
  // named p<n>-<random>: a runner sharing root() cannot make it first and
  // fill it with links.
  absl::StatusOr<std::string> MakeWorkDir();
  // Removes a directory MakeWorkDir made, with everything in it, following
  // no link.
  void RemoveWorkDir(const std::string& dir);
  // Replaces each URL `pointers` locate in `input` (JSON pointers) by the path
  // of a local copy in `dir`: http(s) URLs are downloaded, data: URIs decoded.
  // Fails with a message that names the input and the URL; Cancelled when
  // `canceled` becomes true during a download. With `urls_from`, the URLs are
  // read at the same pointers there (`input` need not hold them: a data: URI
  // may be megabytes, not worth a copy).
  absl::Status FetchInputs(Json& input, const std::vector<std::string>& pointers,
                           const std::string& dir, const std::atomic<bool>* canceled,
                           const Json* urls_from = nullptr);

  // ---- outputs ----

  // Where one prediction's output files go, and what each already became
  // (a file is uploaded or encoded once, however often it is returned).
  struct OutputTarget {
    std::string prediction_id;
    std::string upload_prefix;  // empty: --upload-url, and if that is empty, data: URIs
    // Set when the prediction is canceled: an upload under way stops
    // (ResolveOutputs is then Cancelled). May be null.
    const std::atomic<bool>* canceled = nullptr;
    absl::flat_hash_map<std::string, std::string> done;
  };
  // Replaces the file:// URL at each of `pointers` (JSON pointers into
  // `value`) by the uploaded file's URL or a data: URI. Fails, naming the
  // file, if one cannot be read or uploaded.
  absl::Status ResolveOutputs(Json& value, const std::vector<std::string>& pointers,
                              OutputTarget& target);

  // "text/plain", "image/png", ...; "application/octet-stream" when unknown.
  std::string SniffMediaType(absl::string_view bytes);
  // "png", "jpg", ...; empty when libmagic knows none.
  std::string SniffExtension(absl::string_view bytes);

  const std::string& root() const { return root_; }

 private:
  // `data_uri_room`: what data: URIs may still come to in this output.
  absl::StatusOr<std::string> ResolveOne(const std::string& url, OutputTarget& target,
                                         uint64_t* data_uri_room);
  absl::StatusOr<std::string> DataUri(const std::string& path, uint64_t* room);
  absl::StatusOr<std::string> Upload(const std::string& path, const std::string& prefix,
                                     const std::string& prediction_id,
                                     const std::atomic<bool>* canceled);
  // Into a new file in the directory `dir_fd` (`dir` in messages).
  absl::StatusOr<std::string> FetchOne(const std::string& url, int dir_fd, const std::string& dir,
                                       const std::atomic<bool>* canceled);
  // The name of `dir` within root_; empty if it is not one of its directories.
  std::string LeafOf(const std::string& dir) const;

  Options options_;  // options_.transfer.output_root: root_ when confine_outputs
  std::string root_;  // empty if it could not be made
  // root_, opened: work directories and the files downloaded into them are
  // made beneath it, each step relative to a descriptor and following no
  // link, so that a runner sharing root_ (a sidecar) cannot make the server
  // write elsewhere by swapping a link in.
  int root_fd_ = -1;
  std::atomic<uint64_t> next_dir_{0};

  MagicPool mime_;
  MagicPool extension_;
};

}  // namespace cog

#endif  // COG_SERVER_PREDICTION_FILES_H_
