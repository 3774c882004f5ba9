#include "server/prediction.h"

#include "absl/time/clock.h"

namespace cog {

absl::string_view StatusName(PredictionStatus status) {
  switch (status) {
    case PredictionStatus::kStarting:
      return "starting";
    case PredictionStatus::kProcessing:
      return "processing";
    case PredictionStatus::kSucceeded:
      return "succeeded";
    case PredictionStatus::kFailed:
      return "failed";
    case PredictionStatus::kCanceled:
      return "canceled";
  }
  return "failed";
}

bool IsTerminal(PredictionStatus status) {
  return status == PredictionStatus::kSucceeded || status == PredictionStatus::kFailed ||
         status == PredictionStatus::kCanceled;
}

absl::string_view WebhookEventName(WebhookEvent event) {
  switch (event) {
    case WebhookEvent::kStart:
      return "start";
    case WebhookEvent::kOutput:
      return "output";
    case WebhookEvent::kLogs:
      return "logs";
    case WebhookEvent::kCompleted:
      return "completed";
  }
  return "completed";
}

std::optional<WebhookEvent> ParseWebhookEvent(absl::string_view name) {
  for (WebhookEvent event : {WebhookEvent::kStart, WebhookEvent::kOutput, WebhookEvent::kLogs,
                             WebhookEvent::kCompleted}) {
    if (WebhookEventName(event) == name) return event;
  }
  return std::nullopt;
}

const std::shared_ptr<const Json>& EmptyJsonObject() {
  static const auto* const empty = new std::shared_ptr<const Json>(std::make_shared<const Json>(Json::object()));
  return *empty;
}

std::string FormatTimestamp(absl::Time time) {
  // As Python's isoformat(), which legacy Cog uses: no fraction when it is zero.
  const bool whole = absl::ToUnixMicros(time) % 1000000 == 0;
  return absl::FormatTime(whole ? "%Y-%m-%dT%H:%M:%S+00:00" : "%Y-%m-%dT%H:%M:%E6S+00:00", time,
                          absl::UTCTimeZone());
}

namespace {

Json TimeOrNull(const std::optional<absl::Time>& time) {
  return time.has_value() ? Json(FormatTimestamp(*time)) : Json();
}

}  // namespace

Json PredictionToJson(const Prediction& prediction) {
  Json body = Json::object();
  body["input"] = *prediction.input;
  body["output"] = prediction.output;
  body["id"] = prediction.id;
  body["version"] = nullptr;
  body["created_at"] = TimeOrNull(prediction.created_at);
  body["started_at"] = TimeOrNull(prediction.started_at);
  body["completed_at"] = TimeOrNull(prediction.completed_at);
  body["logs"] = prediction.logs;
  body["error"] = prediction.error.has_value() ? Json(*prediction.error) : Json();
  body["status"] = StatusName(prediction.status);
  body["metrics"] = prediction.metrics;
  return body;
}

namespace {

// About how many bytes DumpJson writes for `value`, from its strings' sizes:
// enough to reserve the response once instead of growing it by copies.
size_t SizeHint(const Json& value) {
  switch (value.type()) {
    case Json::value_t::string:
      return value.get_ref<const std::string&>().size() + 2;
    case Json::value_t::array: {
      size_t size = 2;
      for (const Json& item : value.get_ref<const Json::array_t&>()) size += SizeHint(item) + 1;
      return size;
    }
    case Json::value_t::object: {
      size_t size = 2;
      for (const auto& [key, item] : value.get_ref<const Json::object_t&>()) {
        size += key.size() + 4 + SizeHint(item);
      }
      return size;
    }
    default:
      return 24;
  }
}

}  // namespace

std::string PredictionJsonText(const Prediction& prediction) {
  std::string out;
  // Values are bounded in depth (ParseJson's limit, protobuf's for gRPC), so
  // the walk is too; it reads no more than the writing does.
  out.reserve(SizeHint(*prediction.input) + SizeHint(prediction.output) + prediction.logs.size() +
              prediction.error.value_or("").size() + 512);
  auto time = [&out](const std::optional<absl::Time>& value) {
    if (value.has_value()) {
      AppendJsonString(FormatTimestamp(*value), &out);
    } else {
      out += "null";
    }
  };
  out += "{\"input\":";
  AppendJson(*prediction.input, &out);
  out += ",\"output\":";
  AppendJson(prediction.output, &out);
  out += ",\"id\":";
  AppendJsonString(prediction.id, &out);
  out += ",\"version\":null,\"created_at\":";
  time(prediction.created_at);
  out += ",\"started_at\":";
  time(prediction.started_at);
  out += ",\"completed_at\":";
  time(prediction.completed_at);
  out += ",\"logs\":";
  AppendJsonString(prediction.logs, &out);
  out += ",\"error\":";
  if (prediction.error.has_value()) {
    AppendJsonString(*prediction.error, &out);
  } else {
    out += "null";
  }
  out += ",\"status\":";
  AppendJsonString(StatusName(prediction.status), &out);
  out += ",\"metrics\":";
  AppendJson(prediction.metrics, &out);
  out += "}";
  return out;
}

}  // namespace cog
