// LogBacklog: the logs waiting on one stream of a prediction's events (SSE,
// gRPC PredictStream) for a client that reads them more slowly than the model
// writes them. A prediction keeps at most --max-log-bytes of its logs, but
// every log line also goes to each stream as it comes; without a bound, a
// model printing fast to a client reading slowly (above --min-body-rate, or a
// gRPC client that stops reading: HTTP/2 flow control stalls the writes)
// grew the server by the whole of it (1 GiB printed: 1 GiB of RSS).
//
// At most `limit` bytes of logs wait; past that, log lines are left out of
// the stream (and counted), and the next event (a line that fits, an output,
// the end) is preceded by a line saying how many bytes were left out. The prediction's own logs, in its
// completed event and GET, are not affected. Metric events share the bound
// (a model recording a metric in a loop grew a slow stream by 10 MB/s); those
// left out are counted and said in the same way, and the completed event
// carries the metrics whole. Outputs are never left out (--max-output-bytes
// bounds them). Not thread-safe: the stream's lock guards it.
#ifndef COG_SERVER_LOG_BACKLOG_H_
#define COG_SERVER_LOG_BACKLOG_H_

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"

namespace cog {

class LogBacklog {
 public:
  // 0: no limit.
  explicit LogBacklog(size_t limit) : limit_(limit) {}

  // A log line of `size` bytes is to wait for the client: false if it is
  // to be left out.
  bool Admit(size_t size) {
    if (Full(size)) {
      skipped_ += size;
      return false;
    }
    waiting_ += size;
    return true;
  }

  // The same for a metric event of `size` bytes.
  bool AdmitMetric(size_t size) {
    if (Full(size)) {
      ++skipped_metrics_;
      return false;
    }
    waiting_ += size;
    return true;
  }

  // If lines were left out since the last call, the line saying so, to go
  // before the next event (a log line admitted, an output, the end); else "".
  std::string TakeNote() {
    std::string note;
    if (skipped_ != 0) {
      note = absl::StrCat("[cog-server: ", skipped_,
                          " bytes of logs left out of this stream here: its client read "
                          "them more slowly than they came (the prediction's logs keep "
                          "the last --max-log-bytes)]\n");
    }
    if (skipped_metrics_ != 0) {
      absl::StrAppend(&note, "[cog-server: ", skipped_metrics_,
                      " metric events left out of this stream here: its client read them more slowly "
                      "than they came (the completed event's metrics count them all)]\n");
    }
    skipped_ = skipped_metrics_ = 0;
    waiting_ += note.size();
    return note;
  }

  // The client's connection took `size` bytes of the logs that waited.
  void Taken(size_t size) { waiting_ -= size < waiting_ ? size : waiting_; }
  // ... or all of them.
  void TakenAll() { waiting_ = 0; }

  size_t waiting() const { return waiting_; }

 private:
  bool Full(size_t size) const { return limit_ != 0 && waiting_ != 0 && waiting_ + size > limit_; }

  const size_t limit_;
  size_t waiting_ = 0;
  size_t skipped_ = 0;
  size_t skipped_metrics_ = 0;
};

}  // namespace cog

#endif  // COG_SERVER_LOG_BACKLOG_H_
