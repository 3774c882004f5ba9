// The REST request path, from the bytes of a POST /predictions body to the
// JSON the server answers: ParseJson with the request limits, InputSchema::
// Validate against a fixed, representative `Input` schema, DumpJson of the
// validated input, of what is shown of it, and of a 422's detail.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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

// Set COG_FUZZ_IGNORE=secret_in_422 to go on fuzzing past a known leak of a
// secret in a 422's detail.
bool ignore_secret_in_422 = false;

// A secret the caller sent must not come back in what the server shows.
void CheckSecretHidden(const cog::Json& input, const std::string& shown) {
  if (!input.contains("api_key") || !input["api_key"].is_string()) return;
  const std::string secret = input["api_key"].get<std::string>();
  // Short secrets occur in any text by chance.
  if (secret.size() < 12) return;
  Check(!absl::StrContains(shown, cog::DumpJson(secret)));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* ignore = std::getenv("COG_FUZZ_IGNORE");
  ignore_secret_in_422 = ignore != nullptr && absl::StrContains(ignore, "secret_in_422");
  Schema();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cog::Json> body = cog::ParseJson(text);
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
  const cog::Json* input = &*body;
  if (body->is_object() && body->contains("input")) input = &(*body)["input"];
  if (!input->is_object()) return 0;

  absl::StatusOr<cog::InputSchema::Validated> validated = Schema().Validate(*input);
  if (validated.ok()) {
    (void)cog::DumpJson(validated->input);
    const std::string shown = cog::DumpJson(validated->shown);
    CheckSecretHidden(*input, shown);
    for (const std::string& pointer : validated->file_inputs) {
      const cog::Json::json_pointer where(pointer);
      Check(validated->input.contains(where) && validated->input[where].is_string());
    }
    return 0;
  }
  std::optional<cog::Json> detail = cog::ValidationDetail(validated.status());
  Check(detail.has_value() && detail->is_array() && !detail->empty());
  if (!ignore_secret_in_422) CheckSecretHidden(*input, cog::DumpJson(*detail));
  return 0;
}
