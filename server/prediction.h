// Prediction: the state of one prediction (or training), as the Cog HTTP API
// shows it, and the request that starts one.
//
// Plain values: copy them freely. The core (PredictionService) owns the live
// state and hands out copies; nothing here is thread-safe by itself.
#ifndef COG_SERVER_PREDICTION_H_
#define COG_SERVER_PREDICTION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/json.h"

namespace cog {

enum class PredictionStatus { kStarting, kProcessing, kSucceeded, kFailed, kCanceled };
enum class PredictionKind { kPredict, kTrain };
enum class WebhookEvent { kStart, kOutput, kLogs, kCompleted };

// "starting", "processing", "succeeded", "failed", "canceled".
absl::string_view StatusName(PredictionStatus status);
bool IsTerminal(PredictionStatus status);
absl::string_view WebhookEventName(WebhookEvent event);
std::optional<WebhookEvent> ParseWebhookEvent(absl::string_view name);

// RFC 3339 with microseconds and "+00:00", as Cog writes timestamps.
std::string FormatTimestamp(absl::Time time);
// Whether FormatTimestamp (RFC 3339) and google.protobuf.Timestamp can say
// `time`: years 0001 to 9999. A client's created_at outside is refused.
bool IsWritableTime(absl::Time time);

// The one shared empty object: a Prediction's input until it is given one.
const std::shared_ptr<const Json>& EmptyJsonObject();

struct PredictionRequest {
  std::string id;  // empty: the core makes one
  PredictionKind kind = PredictionKind::kPredict;
  Json input = Json::object();
  std::string webhook;
  // Empty: all events.
  std::vector<WebhookEvent> webhook_events_filter;
  std::string output_file_prefix;
  std::optional<absl::Time> created_at;
  Json context = Json::object();  // strings only
  std::string traceparent;
  std::string tracestate;
};

struct Prediction {
  std::string id;
  PredictionKind kind = PredictionKind::kPredict;
  // Never changes once the prediction has started, and is shared by every
  // copy of it (observers, webhooks, the finished store): a large input is
  // not copied with each.
  std::shared_ptr<const Json> input = EmptyJsonObject();
  Json output;  // null until known; a growing list for iterators
  std::optional<std::string> error;
  std::string logs;
  PredictionStatus status = PredictionStatus::kStarting;
  Json metrics;  // null or an object
  std::optional<absl::Time> created_at;
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> completed_at;
};

// The Cog response body, every key present, in legacy Cog's order.
Json PredictionToJson(const Prediction& prediction);
// DumpJson(PredictionToJson(prediction)), written straight from the
// prediction: its input, output and logs are not copied on the way.
std::string PredictionJsonText(const Prediction& prediction);
// The same text, appended to `out`.
void AppendPredictionJson(const Prediction& prediction, std::string* out);

}  // namespace cog

#endif  // COG_SERVER_PREDICTION_H_
