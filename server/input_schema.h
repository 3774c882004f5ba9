// InputSchema: validates a prediction's input against the model's OpenAPI
// `Input` (or `TrainingInput`) component, in the server, before anything is
// queued, and answers the way legacy Cog on pydantic 2 does (lax coercions,
// one error per problem, the same `type`/`msg`/`ctx`).
//
// Immutable once built; thread-safe to share.
#ifndef COG_SERVER_INPUT_SCHEMA_H_
#define COG_SERVER_INPUT_SCHEMA_H_

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/json.h"

namespace cog {

// An InvalidArgument status that carries `detail`, the list a 422 body holds.
absl::Status InvalidInputError(Json detail);
// The detail list carried by a status made by InvalidInputError.
std::optional<Json> ValidationDetail(const absl::Status& status);

class InputSchema {
 public:
  // Reads components.schemas.<component> of an OpenAPI document.
  static absl::StatusOr<InputSchema> FromOpenApi(const Json& document,
                                                 absl::string_view component);

  struct Validated {
    Json input;                             // coerced, defaults filled, in schema order
    Json shown;                             // `input` with secrets as "**********"
    std::vector<std::string> unknown_keys;  // dropped
    // JSON pointers into `input` of every Path value (a URL to fetch), also
    // inside lists and objects, in input order.
    std::vector<std::string> file_inputs;
  };
  // On failure: InvalidInputError with one entry per problem.
  absl::StatusOr<Validated> Validate(const Json& input) const;

 private:
  enum class Type { kAny, kString, kInteger, kNumber, kBoolean, kArray, kObject };
  struct Constraints {
    Type type = Type::kAny;
    std::string format;
    std::optional<double> minimum;
    std::optional<double> maximum;
    std::optional<int64_t> min_length;
    std::optional<int64_t> max_length;
    std::optional<std::string> pattern;
    // Compiled once, when the schema is read; null when the server cannot read
    // the pattern (the predictor then checks it).
    std::shared_ptr<const std::regex> compiled_pattern;
    std::vector<Json> choices;
    bool secret = false;  // format: password (cog.Secret)
  };
  // Where Path values (`format: uri`) sit inside one input's value.
  struct UriNode {
    bool uri = false;
    std::shared_ptr<const UriNode> items;       // array elements
    std::shared_ptr<const UriNode> additional;  // dict values
    std::vector<std::pair<std::string, std::shared_ptr<const UriNode>>> properties;
  };
  struct Field {
    std::string name;
    std::shared_ptr<const UriNode> uris;  // null: no Path inside
    Constraints value;
    std::optional<Constraints> items;  // for arrays
    bool nullable = false;
    bool required = false;
    std::optional<Json> default_value;
  };

  static Constraints ReadConstraints(const Json& document, const Json& property);
  // Null when no Path value can sit under `property`.
  static std::shared_ptr<const UriNode> ReadUris(const Json& document, const Json& property,
                                                 int depth);
  // Appends the pointers of the Path values under `value`; a value that is no
  // URL we can fetch is an error at `loc`.
  static void CollectUris(const UriNode& node, const Json& value, const std::string& pointer,
                          const Json& loc, std::vector<std::string>& out, Json& errors);
  // Coerces `value` in place; appends errors located at `loc`.
  static bool CheckValue(const Constraints& c, Json& value, const Json& loc, Json& errors);

  std::vector<Field> fields_;
};

}  // namespace cog

#endif  // COG_SERVER_INPUT_SCHEMA_H_
