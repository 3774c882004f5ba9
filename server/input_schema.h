// InputSchema: validates a prediction's input against the model's OpenAPI
// `Input` (or `TrainingInput`) component, in the server, before anything is
// queued, and answers the way legacy Cog on pydantic 2 does (lax coercions,
// one error per problem, the same `type`/`msg`/`ctx`).
//
// Immutable once built; thread-safe to share.
#ifndef COG_SERVER_INPUT_SCHEMA_H_
#define COG_SERVER_INPUT_SCHEMA_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/json.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace cog {

// An InvalidArgument status that carries `detail`, the list a 422 body holds.
absl::Status InvalidInputError(Json detail);
// The detail list carried by a status made by InvalidInputError.
std::optional<Json> ValidationDetail(const absl::Status& status);

class InputSchema {
 public:
  // Reads components.schemas.<component> of an OpenAPI document. Fails,
  // InvalidArgument, when the component is missing or an input's `pattern`
  // is no regular expression pydantic 2 would accept (Rust regex syntax: no
  // look-around, no backreferences).
  static absl::StatusOr<InputSchema> FromOpenApi(const Json& document,
                                                 absl::string_view component);

  struct Validated {
    Json input;  // coerced, defaults filled, in schema order
    // `input` with secrets as "**********", when the schema has a Secret
    // (otherwise what is shown is `input` itself: no copy is made).
    std::optional<Json> shown;
    const Json& Shown() const { return shown.has_value() ? *shown : input; }
    std::vector<std::string> unknown_keys;  // dropped
    // JSON pointers into `input` of every Path value (a URL to fetch), also
    // inside lists and objects, in input order.
    std::vector<std::string> file_inputs;
  };
  // On failure: InvalidInputError with one entry per problem. No entry's
  // `input` ever shows a Secret, not even the whole input that a `missing`
  // entry echoes. Numbers must be finite anywhere in the input (JSON cannot
  // carry NaN or infinity; they can only come from a gRPC Struct).
  // Takes `input` by value: its values are moved, not copied (pass it with
  // std::move when it is not needed afterwards).
  absl::StatusOr<Validated> Validate(Json input) const;

 private:
  enum class Type { kAny, kString, kInteger, kNumber, kBoolean, kArray, kObject };
  struct Constraints {
    Type type = Type::kAny;
    std::string format;
    std::optional<double> minimum;
    std::optional<double> maximum;
    std::optional<int64_t> min_length;
    std::optional<int64_t> max_length;
    std::optional<std::string> pattern;  // as the schema spells it, for messages
    std::shared_ptr<const re2::RE2> compiled_pattern;  // set whenever `pattern` is
    std::vector<Json> choices;
    bool nullable = false;  // null is taken (an element of List[Optional[T]])
    // An array's elements (to any depth: List[List[int]]). Bounds, lengths
    // and a pattern the schema puts on an array are its elements': the
    // runner writes Input(ge=0) of a List[int] there, and checks each item
    // of a default against it.
    std::shared_ptr<const Constraints> items;
  };
  // What the schema says sits where inside one input's value: Path values
  // (`format: uri`), to fetch, and Secrets (`format: password` or
  // `x-cog-secret`), never to show.
  struct ValueNode {
    bool uri = false;
    bool secret = false;
    bool has_uri = false;     // this node or one below it is a Path
    bool has_secret = false;  // this node or one below it is a Secret
    std::shared_ptr<const ValueNode> items;       // array elements
    std::shared_ptr<const ValueNode> additional;  // dict values
    std::vector<std::pair<std::string, std::shared_ptr<const ValueNode>>> properties;
  };
  struct Field {
    std::string name;
    std::shared_ptr<const ValueNode> node;  // null: no Path or Secret inside
    Constraints value;
    bool nullable = false;
    bool required = false;
    std::optional<Json> default_value;
  };

  static absl::StatusOr<Constraints> ReadConstraints(const Json& document, const Json& property,
                                                     const std::string& field, int depth = 0,
                                                     const Constraints* inherited = nullptr);
  // Null when no Path or Secret can sit under `property`.
  static std::shared_ptr<const ValueNode> ReadNode(const Json& document, const Json& property,
                                                   int depth);
  // Appends the pointers of the Path values under `value`; a value that is no
  // URL we can fetch is an error at `loc`.
  static void CollectUris(const ValueNode& node, const Json& value, const std::string& pointer,
                          const Json& loc, std::vector<std::string>& out, Json& errors);
  // Replaces every Secret in `value` (not null) with "**********".
  static void HideSecrets(const ValueNode& node, Json& value);
  // Coerces `value` in place; appends errors located at `loc`.
  static bool CheckValue(const Constraints& c, Json& value, const Json& loc, Json& errors);
  // Hides the Secrets in what each of `errors` echoes, found by its `loc`.
  void HideSecretsInErrors(Json& errors) const;

  std::vector<Field> fields_;
  // The whole input: one property per field that has a node.
  std::shared_ptr<const ValueNode> root_;
};

}  // namespace cog

#endif  // COG_SERVER_INPUT_SCHEMA_H_
