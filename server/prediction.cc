#include "server/prediction.h"

#include <cstdint>
#include <cstring>

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

namespace {

// Writes `value` as exactly `width` decimal digits ending just before `end`.
char* PutDigits(char* end, int64_t value, int width) {
  for (int i = 0; i < width; ++i) {
    *--end = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return end;
}

}  // namespace

bool IsWritableTime(absl::Time time) {
  return time >= absl::FromUnixSeconds(-62135596800) && time < absl::FromUnixSeconds(253402300800);
}

std::string FormatTimestamp(absl::Time time) {
  // As Python's isoformat(), which legacy Cog uses: no fraction when it is zero.
  // By hand: absl::FormatTime (cctz) took ~3,300 instructions a call, and every
  // prediction's JSON has two or three (callgrind).
  int64_t seconds = absl::ToUnixSeconds(time);
  const int64_t micros = absl::ToInt64Microseconds(time - absl::FromUnixSeconds(seconds));
  int64_t days = seconds / 86400;
  int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  // The proleptic Gregorian date of a day counted from 1970-01-01: shift the
  // epoch to 0000-03-01 so that a leap day ends each year, then split into
  // eras of 400 years (146,097 days), years of the era and days of the year.
  const int64_t shifted = days + 719468;
  const int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
  const int64_t day_of_era = shifted - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_from_march = (5 * day_of_year + 2) / 153;
  const int64_t day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
  const int64_t month = month_from_march < 10 ? month_from_march + 3 : month_from_march - 9;
  const int64_t year = era * 400 + year_of_era + (month <= 2 ? 1 : 0);
  if (year < 1 || year > 9999) {  // not 4 digits (or an infinite time): cctz says what it is
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00", time, absl::UTCTimeZone());
  }
  char text[32];  // 2024-01-02T03:04:05.123456+00:00
  char* end = text + sizeof(text);
  char* p = end;
  p -= 6;
  std::memcpy(p, "+00:00", 6);
  if (micros != 0) {
    p = PutDigits(p, micros, 6);
    *--p = '.';
  }
  p = PutDigits(p, second_of_day % 60, 2);
  *--p = ':';
  p = PutDigits(p, second_of_day / 60 % 60, 2);
  *--p = ':';
  p = PutDigits(p, second_of_day / 3600, 2);
  *--p = 'T';
  p = PutDigits(p, day, 2);
  *--p = '-';
  p = PutDigits(p, month, 2);
  *--p = '-';
  p = PutDigits(p, year, 4);
  return std::string(p, end);
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
  AppendPredictionJson(prediction, &out);
  return out;
}

void AppendPredictionJson(const Prediction& prediction, std::string* out) {
  // Values are bounded in depth (ParseJson's limit, protobuf's for gRPC), so
  // the walk is too; it reads no more than the writing does.
  out->reserve(out->size() + SizeHint(*prediction.input) + SizeHint(prediction.output) +
               prediction.logs.size() + prediction.error.value_or("").size() + 512);
  auto time = [out](const std::optional<absl::Time>& value) {
    if (value.has_value()) {
      AppendJsonString(FormatTimestamp(*value), out);
    } else {
      *out += "null";
    }
  };
  *out += "{\"input\":";
  AppendJson(*prediction.input, out);
  *out += ",\"output\":";
  AppendJson(prediction.output, out);
  *out += ",\"id\":";
  AppendJsonString(prediction.id, out);
  *out += ",\"version\":null,\"created_at\":";
  time(prediction.created_at);
  *out += ",\"started_at\":";
  time(prediction.started_at);
  *out += ",\"completed_at\":";
  time(prediction.completed_at);
  *out += ",\"logs\":";
  AppendJsonString(prediction.logs, out);
  *out += ",\"error\":";
  if (prediction.error.has_value()) {
    AppendJsonString(*prediction.error, out);
  } else {
    *out += "null";
  }
  *out += ",\"status\":";
  AppendJsonString(StatusName(prediction.status), out);
  *out += ",\"metrics\":";
  AppendJson(prediction.metrics, out);
  *out += "}";
}

}  // namespace cog
