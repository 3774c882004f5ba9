// The REST request path, from the bytes of a POST /predictions body to the
// JSON the server answers: ParseJson with the request limits, InputSchema::
// Validate against a fixed, representative `Input` schema, DumpJson of the
// validated input, of what is shown of it, and of a 422's detail.
//
// String values "NaN", "Infinity" and "-Infinity" are turned into those
// doubles before validation: JSON cannot spell them, but a gRPC Struct can.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/input_schema.h"
#include "server/json.h"

namespace {

// What the runner would report for a predictor with
//   prompt: str = Input(min_length=1, max_length=100)
//   n: int = Input(default=1, ge=1, le=10)
//   temperature: float = Input(default=0.7, ge=0, le=2)
//   mode: str = Input(default="fast", choices=["fast", "slow"])
//   size: int = Input(default=512, choices=[256, 512, 1024])
//   tag: str = Input(default="abc", regex="^[a-z]+$")
//   seed: Optional[int], flag: bool = False, image: Optional[Path],
//   api_key: Optional[Secret], files: List[Path] = [],
//   counts: List[int] = Input(default=[], ge=0, le=100), extra: Any = None,
//   options: dict = {}
constexpr char kOpenApi[] = R"json({
  "openapi": "3.0.2",
  "components": {"schemas": {
    "Input": {
      "type": "object", "title": "Input", "required": ["prompt"],
      "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 100, "title": "Prompt", "x-order": 0},
        "n": {"type": "integer", "minimum": 1.0, "maximum": 10.0, "default": 1, "title": "N", "x-order": 1},
        "temperature": {"type": "number", "minimum": 0.0, "maximum": 2.0, "default": 0.7, "x-order": 2},
        "mode": {"default": "fast", "x-order": 3, "allOf": [{"$ref": "#/components/schemas/mode"}]},
        "size": {"default": 512, "x-order": 4, "allOf": [{"$ref": "#/components/schemas/size"}]},
        "tag": {"type": "string", "pattern": "^[a-z]+$", "default": "abc", "x-order": 5},
        "seed": {"type": "integer", "nullable": true, "x-order": 6},
        "flag": {"type": "boolean", "default": false, "x-order": 7},
        "image": {"type": "string", "format": "uri", "nullable": true, "x-order": 8},
        "api_key": {"type": "string", "format": "password", "writeOnly": true, "x-cog-secret": true, "nullable": true, "x-order": 9},
        "files": {"type": "array", "items": {"type": "string", "format": "uri"}, "default": [], "x-order": 10},
        "counts": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100}, "default": [], "x-order": 11},
        "extra": {"title": "Extra", "x-order": 12},
        "options": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}, "default": {}, "x-order": 13}
      }
    },
    "mode": {"type": "string", "enum": ["fast", "slow"], "title": "mode"},
    "size": {"type": "integer", "enum": [256, 512, 1024], "title": "size"}
  }}
})json";

void Check(bool ok) {
  if (!ok) std::abort();
}

const cog::InputSchema& Schema() {
  static const cog::InputSchema* schema = [] {
    absl::StatusOr<cog::Json> document = cog::ParseJson(kOpenApi);
    Check(document.ok());
    absl::StatusOr<cog::InputSchema> built = cog::InputSchema::FromOpenApi(*document, "Input");
    Check(built.ok());
    return new cog::InputSchema(*std::move(built));
  }();
  return *schema;
}

// A secret the caller sent must not come back in what the server shows.
void CheckSecretHidden(const cog::Json& input, const std::string& shown) {
  if (!input.contains("api_key") || !input["api_key"].is_string()) return;
  const std::string secret = input["api_key"].get<std::string>();
  // Short secrets occur in any text by chance.
  if (secret.size() < 12) return;
  // Nor can a secret be hidden that the client also sent where no Secret
  // belongs (under an unknown key, in `prompt`): that copy is echoed.
  const std::string quoted = cog::DumpJson(secret);
  cog::Json elsewhere = input;
  elsewhere.erase("api_key");
  if (absl::StrContains(cog::DumpJson(elsewhere), quoted)) return;
  Check(!absl::StrContains(shown, quoted));
}

// What a gRPC Struct can carry and JSON cannot. Bounded recursion: ParseJson
// refused anything deeper than its limit.
void MakeNonFinite(cog::Json& value) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    double number;
    if (text == "NaN") {
      number = std::numeric_limits<double>::quiet_NaN();
    } else if (text == "Infinity") {
      number = std::numeric_limits<double>::infinity();
    } else if (text == "-Infinity") {
      number = -std::numeric_limits<double>::infinity();
    } else {
      return;
    }
    value = number;
    return;
  }
  if (value.is_structured()) {
    for (cog::Json& item : value) MakeNonFinite(item);
  }
}

bool IsIntegerOrNull(const cog::Json& value) {
  return value.is_null() || value.is_number_integer();
}

// What the schema promises of a valid input, checked independently of it.
void CheckValidated(const cog::Json& input) {
  Check(cog::FindNonFinite(input).empty());
  Check(input["n"].is_number_integer() && input["n"] >= 1 && input["n"] <= 10);
  Check(IsIntegerOrNull(input["seed"]) && IsIntegerOrNull(input["size"]));
  for (const cog::Json& count : input["counts"]) Check(count.is_number_integer());
  const cog::Json& temperature = input["temperature"];
  Check(temperature.is_number_float() && temperature >= 0.0 && temperature <= 2.0);
  const std::string& tag = input["tag"].get_ref<const std::string&>();
  Check(!tag.empty() && std::all_of(tag.begin(), tag.end(), [](char c) {
    return c >= 'a' && c <= 'z';
  }));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Schema();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cog::Json> body = cog::ParseJson(text);
  {
    // In place, as the gateway parses a body it reserved room after: the
    // bytes past the end (here the input's own, reversed: quotes, brackets)
    // must not change the answer.
    std::string padded(text);
    padded.append(std::string(text.rbegin(), text.rend()));
    padded.append(cog::kJsonPadding, '"');
    padded.resize(text.size());
    absl::StatusOr<cog::Json> in_place =
        cog::ParseJson(padded, cog::kDefaultMaxJsonDepth, padded.capacity() - padded.size());
    Check(in_place.ok() == body.ok());
    if (body.ok()) {
      Check(cog::DumpJson(*in_place) == cog::DumpJson(*body));
    } else {
      Check(in_place.status() == body.status());
    }
  }
  if (!body.ok()) {
    Check(body.status().code() == absl::StatusCode::kInvalidArgument);
    Check(!body.status().message().empty());
    return 0;
  }
  // DumpJson writes what ParseJson reads back to the same text.
  const std::string dumped = cog::DumpJson(*body);
  absl::StatusOr<cog::Json> again = cog::ParseJson(dumped);
  Check(again.ok() && cog::DumpJson(*again) == dumped);

  // The body's `input`, or the body itself when it has none (so that the
  // fuzzer need not rediscover the envelope).
  cog::Json* input = &*body;
  if (body->is_object() && body->contains("input")) input = &(*body)["input"];
  if (!input->is_object()) return 0;
  MakeNonFinite(*input);

  absl::StatusOr<cog::InputSchema::Validated> validated = Schema().Validate(*input);
  if (validated.ok()) {
    CheckValidated(validated->input);
    (void)cog::DumpJson(validated->input);
    const std::string shown = cog::DumpJson(validated->Shown());
    CheckSecretHidden(*input, shown);
    for (const std::string& pointer : validated->file_inputs) {
      const cog::Json::json_pointer where(pointer);
      Check(validated->input.contains(where) && validated->input[where].is_string());
    }
    return 0;
  }
  std::optional<cog::Json> detail = cog::ValidationDetail(validated.status());
  Check(detail.has_value() && detail->is_array() && !detail->empty());
  CheckSecretHidden(*input, cog::DumpJson(*detail));
  CheckSecretHidden(*input, std::string(validated.status().message()));  // what gRPC answers
  return 0;
}
