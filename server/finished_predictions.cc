#include "server/finished_predictions.h"

#include <utility>
#include <vector>

namespace cog {
namespace {

// A container or a scalar without a string: what it costs beyond its contents,
// roughly (nlohmann's node).
constexpr size_t kNodeBytes = 16;

}  // namespace

size_t FinishedPredictions::ApproximateJsonBytes(const Json& root) {
  size_t bytes = 0;
  std::vector<const Json*> pending{&root};
  while (!pending.empty()) {
    const Json* value = pending.back();
    pending.pop_back();
    bytes += kNodeBytes;
    if (value->is_string()) {
      bytes += value->get_ref<const std::string&>().size();
    } else if (value->is_object()) {
      for (auto it = value->begin(); it != value->end(); ++it) {
        bytes += it.key().size();
        pending.push_back(&it.value());
      }
    } else if (value->is_array()) {
      for (const Json& item : *value) pending.push_back(&item);
    }
  }
  return bytes;
}

FinishedPredictions::FinishedPredictions(Options options) : options_(std::move(options)) {}

size_t FinishedPredictions::ApproximateBytes(const Prediction& prediction) {
  return prediction.id.size() + prediction.logs.size() +
         (prediction.error.has_value() ? prediction.error->size() : 0) +
         ApproximateJsonBytes(*prediction.input) + ApproximateJsonBytes(prediction.output) +
         ApproximateJsonBytes(prediction.metrics);
}

void FinishedPredictions::Remove(Order::iterator it) {
  bytes_ -= it->bytes;
  by_id_.erase(it->prediction->id);
  order_.erase(it);
}

void FinishedPredictions::EvictExpired(absl::Time now) {
  while (!order_.empty() && now - order_.front().added >= options_.ttl) Remove(order_.begin());
}

void FinishedPredictions::Add(std::shared_ptr<const Prediction> prediction) {
  const size_t bytes = ApproximateBytes(*prediction);
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  auto same = by_id_.find(prediction->id);
  if (same != by_id_.end()) Remove(same->second);
  EvictExpired(now);
  if (options_.max_count == 0 || bytes > options_.max_bytes) return;
  while (!order_.empty() &&
         (order_.size() >= options_.max_count || bytes_ + bytes > options_.max_bytes)) {
    Remove(order_.begin());
  }
  const std::string id = prediction->id;
  order_.push_back(Entry{std::move(prediction), now, bytes});
  by_id_[id] = std::prev(order_.end());
  bytes_ += bytes;
}

std::shared_ptr<const Prediction> FinishedPredictions::Find(absl::string_view id) {
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  EvictExpired(now);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  return it->second->prediction;
}

size_t FinishedPredictions::size() const {
  absl::MutexLock lock(&mu_);
  return order_.size();
}

}  // namespace cog
