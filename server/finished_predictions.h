// FinishedPredictions: the recent results of predictions that have ended, so
// that a client that started one asynchronously (gRPC GetPrediction,
// GET /predictions/{id}) can still read its answer once it is over.
//
// Bounded three ways: at most `max_count` entries, each kept at most `ttl`
// after it was added, and at most `max_bytes` of their inputs, outputs and
// logs together (as ApproximateBytes counts them); past any bound the oldest
// go first. A prediction larger than `max_bytes` on its own is not kept.
// Adding an id that is already kept replaces it (an id may run again).
//
// The store belongs to one server process: behind a load balancer each pod
// knows only the predictions it ran itself.
//
// Thread-safe. Entries are shared, immutable Predictions.
#ifndef COG_SERVER_FINISHED_PREDICTIONS_H_
#define COG_SERVER_FINISHED_PREDICTIONS_H_

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/prediction.h"

namespace cog {

class FinishedPredictions {
 public:
  struct Options {
    size_t max_count = 1000;   // 0: nothing is kept
    absl::Duration ttl = absl::Minutes(10);
    size_t max_bytes = 256u << 20;
    // The clock; tests substitute their own.
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  explicit FinishedPredictions(Options options);

  void Add(std::shared_ptr<const Prediction> prediction);
  // The prediction `id` if it is kept and not older than the ttl; else null.
  std::shared_ptr<const Prediction> Find(absl::string_view id);
  size_t size() const;

  // What a kept prediction counts against max_bytes: its id, logs, error and
  // the strings and numbers of its input, output and metrics (walked without
  // recursion; containers count a few bytes each).
  static size_t ApproximateBytes(const Prediction& prediction);
  // The same count for one JSON value: its strings and object keys, and a few
  // bytes for each node.
  static size_t ApproximateJsonBytes(const Json& value);

 private:
  struct Entry {
    std::shared_ptr<const Prediction> prediction;
    absl::Time added;
    size_t bytes = 0;
  };
  using Order = std::list<Entry>;  // oldest first

  void Remove(Order::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictExpired(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Order order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Order::iterator> by_id_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cog

#endif  // COG_SERVER_FINISHED_PREDICTIONS_H_
