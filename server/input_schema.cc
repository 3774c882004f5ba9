#include "server/input_schema.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "re2/re2.h"

namespace cog {
namespace {

constexpr char kDetailPayload[] = "type.cog/validation_detail";
constexpr char kHidden[] = "**********";  // how cog.Secret shows itself
constexpr char kFiniteMessage[] = "Input should be a finite number";

// The int64 a whole double stands for, if it is whole and strictly inside
// (-2^63, 2^63): the bounds of pydantic's float_as_int. Never casts a double
// that does not fit (undefined behaviour).
std::optional<int64_t> WholeInt64(double value) {
  constexpr double kTwoTo63 = 9223372036854775808.0;
  if (!(value > -kTwoTo63 && value < kTwoTo63) || std::floor(value) != value) return std::nullopt;
  return static_cast<int64_t>(value);
}

// A number as Python prints it in pydantic's messages: 10, 2, 0.5, 1e+30.
std::string NumberText(double value) {
  std::optional<int64_t> whole = WholeInt64(value);
  if (whole.has_value() && std::fabs(value) < 1e15) return absl::StrCat(*whole);
  return DumpJson(Json(value));
}

Json NumberJson(double value, bool integer) {
  if (integer) {
    if (std::optional<int64_t> whole = WholeInt64(value); whole.has_value()) return Json(*whole);
  }
  return Json(value);
}

bool IsNonFinite(const Json& value) {
  return value.is_number_float() && !std::isfinite(value.get<double>());
}

void AddError(Json& errors, absl::string_view type, const Json& loc, absl::string_view msg,
              const Json& input, Json ctx = Json()) {
  Json error = Json::object();
  error["type"] = type;
  error["loc"] = loc;
  error["msg"] = msg;
  error["input"] = input;
  if (!ctx.is_null()) error["ctx"] = std::move(ctx);
  errors.push_back(std::move(error));
}

// Appends a finite_number error for every NaN or infinity in `value`, located
// below `loc`. Walks with a stack of its own, not by recursion: a value built
// from a gRPC Struct has no depth limit of ours.
void AddNonFiniteErrors(const Json& value, const Json& loc, Json& errors) {
  if (!value.is_structured()) {
    if (IsNonFinite(value)) AddError(errors, "finite_number", loc, kFiniteMessage, value);
    return;
  }
  struct Frame {
    const Json* container;
    Json::const_iterator next;
    size_t index;  // of `next` in an array
  };
  std::vector<Frame> stack = {{&value, value.cbegin(), 0}};
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.next == top.container->cend()) {
      stack.pop_back();
      continue;
    }
    const Json::const_iterator at = top.next++;
    ++top.index;
    if (at->is_structured()) {
      stack.push_back({&*at, at->cbegin(), 0});  // `top` is not used past here
      continue;
    }
    if (!IsNonFinite(*at)) continue;
    Json where = loc;
    for (const Frame& frame : stack) {
      if (frame.container->is_array()) {
        where.push_back(frame.index - 1);
      } else {
        where.push_back(std::prev(frame.next).key());
      }
    }
    AddError(errors, "finite_number", where, kFiniteMessage, *at);
  }
}

std::string ChoiceText(const Json& choice) {
  if (choice.is_string()) return absl::StrCat("'", choice.get<std::string>(), "'");
  return DumpJson(choice);
}

std::string ChoicesText(const std::vector<Json>& choices) {
  std::string text;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) text += i + 1 == choices.size() ? " or " : ", ";
    text += ChoiceText(choices[i]);
  }
  return text;
}

// Python's str length counts code points, not bytes: the bytes that are not
// UTF-8 continuation bytes (10xxxxxx), counted eight at a time.
int64_t CodePoints(const std::string& text) {
  const size_t n = text.size();
  int64_t continuations = 0;
  size_t i = 0;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    continuations += __builtin_popcountll(word & kHigh & ~((word << 1) & kHigh));
  }
  for (; i < n; ++i) continuations += (static_cast<unsigned char>(text[i]) & 0xc0) == 0x80;
  return static_cast<int64_t>(n) - continuations;
}

std::optional<bool> ParseBool(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  for (const char* yes : {"1", "on", "t", "true", "y", "yes"}) {
    if (lower == yes) return true;
  }
  for (const char* no : {"0", "off", "f", "false", "n", "no"}) {
    if (lower == no) return false;
  }
  return std::nullopt;
}

// An integer in a string, as pydantic's str_as_int reads it: surrounding
// whitespace, a sign, and a fraction of only zeros ("3.00") are allowed.
// Integers up to 2^64 are kept (as Python ints they are valid); beyond that
// JSON here cannot carry them and the answer is int_parsing_size, as for a
// float out of range.
enum class IntText { kInt, kTooBig, kInvalid };
IntText ParseIntText(absl::string_view text, Json& out) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() > 4300) return IntText::kTooBig;  // pydantic's limit too
  if (const size_t dot = text.find('.'); dot != absl::string_view::npos &&
                                         text.find_first_not_of('0', dot + 1) == text.npos) {
    text = text.substr(0, dot);
  }
  int64_t signed_value;
  uint64_t unsigned_value;
  if (absl::SimpleAtoi(text, &signed_value)) {
    out = signed_value;
    return IntText::kInt;
  }
  if (absl::SimpleAtoi(text, &unsigned_value)) {
    out = unsigned_value;
    return IntText::kInt;
  }
  absl::string_view digits = text;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (!digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return IntText::kTooBig;
  }
  return IntText::kInvalid;
}

// Pydantic 2 matches `pattern` with Rust's regex crate, whose syntax RE2
// shares but whose \d, \w and \s are Unicode classes where RE2's are ASCII:
// they are spelled out here, so that "^\w+$" takes "café" as pydantic does.
// (\b, \B, and \W or \S inside brackets stay ASCII.) Rust's "(?<name>" is
// RE2's "(?P<name>".
std::string ToRe2Syntax(absl::string_view pattern) {
  const std::string word = R"(\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D})";
  const std::string space =
      R"(\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char escaped = pattern[++i];
      switch (escaped) {
        case 'd':
          out += R"(\p{Nd})";
          break;
        case 'D':
          out += R"(\P{Nd})";
          break;
        case 'w':
          out += in_class ? word : absl::StrCat("[", word, "]");
          break;
        case 's':
          out += in_class ? space : absl::StrCat("[", space, "]");
          break;
        case 'W':
          out += in_class ? R"(\W)" : absl::StrCat("[^", word, "]");
          break;
        case 'S':
          out += in_class ? R"(\S)" : absl::StrCat("[^", space, "]");
          break;
        default:
          out += c;
          out += escaped;
      }
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {  // [:alpha:]
        const size_t end = pattern.find(":]", i + 2);
        if (end != absl::string_view::npos) {
          absl::StrAppend(&out, pattern.substr(i, end + 2 - i));
          i = end + 1;
          continue;
        }
      }
      in_class = c != ']';
      out += c;
      continue;
    }
    out += c;
    if (c == '[') {
      in_class = true;
      // A ']' first in a class (after any '^') is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
    } else if (c == '(' && absl::StartsWith(pattern.substr(i), "(?<") && i + 3 < pattern.size() &&
               pattern[i + 3] != '=' && pattern[i + 3] != '!') {
      out += "?P<";
      i += 2;
    }
  }
  return out;
}

// `key` of `node`, or null when `node` is no object or has no such member:
// an odd schema must not throw.
const Json* Member(const Json& node, const std::string& key) {
  if (!node.is_object()) return nullptr;
  auto it = node.find(key);
  return it == node.end() ? nullptr : &*it;
}

std::string StringMember(const Json& node, const std::string& key) {
  const Json* member = Member(node, key);
  return member != nullptr && member->is_string() ? member->get<std::string>() : "";
}

bool TrueMember(const Json& node, const std::string& key) {
  const Json* member = Member(node, key);
  return member != nullptr && member->is_boolean() && member->get<bool>();
}

const Json* Component(const Json& document, const std::string& name) {
  const Json* components = Member(document, "components");
  const Json* schemas = components == nullptr ? nullptr : Member(*components, "schemas");
  return schemas == nullptr ? nullptr : Member(*schemas, name);
}

// The component a `$ref` (or `allOf: [{$ref}]`) names, else the node itself.
const Json& Dereference(const Json& document, const Json& node) {
  const Json* ref = Member(node, "$ref");
  const Json* all_of = Member(node, "allOf");
  if (ref == nullptr && all_of != nullptr && all_of->is_array() && !all_of->empty()) {
    ref = Member((*all_of)[0], "$ref");
  }
  if (ref == nullptr || !ref->is_string()) return node;
  absl::string_view name = ref->get_ref<const std::string&>();
  if (!absl::ConsumePrefix(&name, "#/components/schemas/")) return node;
  const Json* component = Component(document, std::string(name));
  return component != nullptr ? *component : node;
}

std::string EscapePointerToken(const std::string& token) {
  std::string escaped;
  for (char c : token) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

}  // namespace

absl::Status InvalidInputError(Json detail) {
  const std::string text = DumpJson(detail);
  absl::Status status = absl::InvalidArgumentError(
      detail.is_array() && !detail.empty() && detail[0].contains("msg")
          ? absl::StrCat("invalid input: ", text)
          : "invalid input");
  status.SetPayload(kDetailPayload, absl::Cord(text));
  return status;
}

std::optional<Json> ValidationDetail(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kDetailPayload);
  if (!payload.has_value()) return std::nullopt;
  return Json::parse(std::string(*payload), nullptr, /*allow_exceptions=*/false);
}

absl::StatusOr<InputSchema::Constraints> InputSchema::ReadConstraints(const Json& document,
                                                                      const Json& property,
                                                                      const std::string& field,
                                                                      int depth,
                                                                      const Constraints* inherited) {
  Constraints c;
  const Json& source = Dereference(document, property);
  const std::string type = StringMember(source, "type");
  if (type == "string") c.type = Type::kString;
  if (type == "integer") c.type = Type::kInteger;
  if (type == "number") c.type = Type::kNumber;
  if (type == "boolean") c.type = Type::kBoolean;
  if (type == "array") c.type = Type::kArray;
  if (type == "object") c.type = Type::kObject;
  c.format = StringMember(source, "format");
  c.nullable = TrueMember(property, "nullable") || TrueMember(source, "nullable");
  if (const Json* choices = Member(source, "enum"); choices != nullptr && choices->is_array()) {
    for (const Json& choice : *choices) c.choices.push_back(choice);
  }
  if (const Json* minimum = Member(property, "minimum"); minimum != nullptr && minimum->is_number()) {
    c.minimum = minimum->get<double>();
  }
  if (const Json* maximum = Member(property, "maximum"); maximum != nullptr && maximum->is_number()) {
    c.maximum = maximum->get<double>();
  }
  if (const Json* length = Member(property, "minLength");
      length != nullptr && length->is_number_integer()) {
    c.min_length = length->get<int64_t>();
  }
  if (const Json* length = Member(property, "maxLength");
      length != nullptr && length->is_number_integer()) {
    c.max_length = length->get<int64_t>();
  }
  if (const Json* pattern = Member(property, "pattern"); pattern != nullptr && pattern->is_string()) {
    c.pattern = pattern->get<std::string>();
    // RE2, not std::regex: linear time, and no recursion per character (which
    // overflows the stack on a string of some 100 KB).
    RE2::Options options;
    options.set_log_errors(false);
    std::shared_ptr<const RE2> compiled = std::make_shared<RE2>(ToRe2Syntax(*c.pattern), options);
    if (!compiled->ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", field, "' has a pattern the server cannot match, '", *c.pattern, "': ",
          compiled->error(),
          " (patterns are pydantic 2's: Rust regex syntax, without look-around or "
          "backreferences)"));
    }
    c.compiled_pattern = std::move(compiled);
  }
  // An array's bounds, lengths and pattern are its elements' (JSON Schema has
  // no such thing for an array, and Cog's Input(ge=..) of a List[int] means
  // each int): handed down to the innermost, which keep their own if set.
  if (inherited != nullptr) {
    if (!c.minimum.has_value()) c.minimum = inherited->minimum;
    if (!c.maximum.has_value()) c.maximum = inherited->maximum;
    if (!c.min_length.has_value()) c.min_length = inherited->min_length;
    if (!c.max_length.has_value()) c.max_length = inherited->max_length;
    if (!c.pattern.has_value()) {
      c.pattern = inherited->pattern;
      c.compiled_pattern = inherited->compiled_pattern;
    }
  }
  const Json* items = Member(source, "items");
  if (c.type != Type::kArray || items == nullptr || depth >= 16) return c;  // recursive types end here
  absl::StatusOr<Constraints> item = ReadConstraints(document, *items, field, depth + 1, &c);
  if (!item.ok()) return item.status();
  c.minimum = c.maximum = std::nullopt;
  c.min_length = c.max_length = std::nullopt;
  c.pattern.reset();
  c.compiled_pattern.reset();
  c.items = std::make_shared<const Constraints>(*std::move(item));
  return c;
}

std::shared_ptr<const InputSchema::ValueNode> InputSchema::ReadNode(const Json& document,
                                                                    const Json& property,
                                                                    int depth) {
  if (depth > 16 || !property.is_object()) return nullptr;  // recursive types end here
  const Json& source = Dereference(document, property);
  auto node = std::make_shared<ValueNode>();
  const std::string format = StringMember(source, "format");
  node->uri = StringMember(source, "type") == "string" && format == "uri";
  node->secret = format == "password" || TrueMember(source, "x-cog-secret") ||
                 TrueMember(property, "x-cog-secret");
  if (const Json* items = Member(source, "items")) {
    node->items = ReadNode(document, *items, depth + 1);
  }
  if (const Json* additional = Member(source, "additionalProperties")) {
    node->additional = ReadNode(document, *additional, depth + 1);
  }
  if (const Json* properties = Member(source, "properties");
      properties != nullptr && properties->is_object()) {
    for (const auto& [name, child] : properties->items()) {
      if (auto found = ReadNode(document, child, depth + 1)) {
        node->properties.emplace_back(name, std::move(found));
      }
    }
  }
  node->has_uri = node->uri;
  node->has_secret = node->secret;
  auto take = [&node](const std::shared_ptr<const ValueNode>& child) {
    if (child == nullptr) return;
    node->has_uri = node->has_uri || child->has_uri;
    node->has_secret = node->has_secret || child->has_secret;
  };
  take(node->items);
  take(node->additional);
  for (const auto& [name, child] : node->properties) take(child);
  if (!node->has_uri && !node->has_secret) return nullptr;
  return node;
}

namespace {

// Where `key` of an object under `node` leads: its property, else the
// node for any other key; null when the schema says nothing of it.
template <typename Node>
const Node* ChildFor(const Node& node, const std::string& key) {
  for (const auto& [name, child] : node.properties) {
    if (name == key) return child.get();
  }
  return node.additional.get();
}

}  // namespace

void InputSchema::CollectUris(const ValueNode& node, const Json& value, const std::string& pointer,
                              const Json& loc, std::vector<std::string>& out, Json& errors) {
  if (!node.has_uri) return;
  if (node.uri && value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    // Schemes are case-insensitive (RFC 3986; Python's urlparse lowers them).
    if (absl::StartsWithIgnoreCase(text, "http://") || absl::StartsWithIgnoreCase(text, "https://") ||
        absl::StartsWithIgnoreCase(text, "data:")) {
      out.push_back(pointer);
    } else {
      // Legacy Cog's words; the scheme as Python's urlparse reads it.
      std::string scheme;
      const size_t colon = text.find(':');
      if (colon != std::string::npos && colon > 0 && absl::ascii_isalpha(text[0]) &&
          std::all_of(text.begin(), text.begin() + colon, [](char c) {
            return absl::ascii_isalnum(c) || c == '+' || c == '-' || c == '.';
          })) {
        scheme = absl::AsciiStrToLower(text.substr(0, colon));
      }
      AddError(errors, "value_error", loc,
               absl::StrCat("Value error, '", scheme,
                            "' is not a valid URL scheme. 'data', 'http', or 'https' is supported."),
               value, Json{{"error", Json::object()}});
    }
    return;
  }
  if (node.items != nullptr && value.is_array()) {
    Json item_loc = loc;
    item_loc.push_back(0);
    for (size_t i = 0; i < value.size(); ++i) {
      item_loc.back() = i;
      CollectUris(*node.items, value[i], absl::StrCat(pointer, "/", i), item_loc, out, errors);
    }
  }
  if (!value.is_object()) return;
  // In input order, each member by the one node the schema gives it.
  Json child_loc = loc;
  child_loc.push_back("");
  for (const auto& [name, member] : value.items()) {
    const ValueNode* child = ChildFor(node, name);
    if (child == nullptr) continue;
    child_loc.back() = name;
    CollectUris(*child, member, absl::StrCat(pointer, "/", EscapePointerToken(name)), child_loc,
                out, errors);
  }
}

void InputSchema::HideSecrets(const ValueNode& node, Json& value) {
  if (!node.has_secret || value.is_null()) return;
  if (node.secret) {
    value = kHidden;
    return;
  }
  if (value.is_array() && node.items != nullptr) {
    for (Json& item : value) HideSecrets(*node.items, item);
    return;
  }
  if (value.is_object() && (!node.properties.empty() || node.additional != nullptr)) {
    for (auto& [name, member] : value.items()) {
      if (const ValueNode* child = ChildFor(node, name)) HideSecrets(*child, member);
    }
    return;
  }
  // Not the shape the schema gives it (say, a string where a list of
  // Secrets belongs): a Secret may be anywhere in it.
  value = kHidden;
}

void InputSchema::HideSecretsInErrors(Json& errors) const {
  if (root_ == nullptr || !root_->has_secret) return;
  for (Json& error : errors) {
    const Json* loc = Member(error, "loc");
    if (loc == nullptr || !loc->is_array() || !error.contains("input")) continue;
    // `loc` is ["body", "input", <field>, ...]. What an entry echoes is the
    // value at `loc`, but for `missing` the object that lacks loc's last key.
    size_t end = loc->size();
    if (StringMember(error, "type") == "missing" && end > 0) --end;
    const ValueNode* node = root_.get();
    for (size_t i = 2; i < end && node != nullptr && !node->secret; ++i) {
      const Json& step = (*loc)[i];
      if (step.is_string()) {
        node = ChildFor(*node, step.get_ref<const std::string&>());
      } else {
        node = node->items.get();
      }
    }
    if (node != nullptr) HideSecrets(*node, error["input"]);
  }
}

absl::StatusOr<InputSchema> InputSchema::FromOpenApi(const Json& document,
                                                     absl::string_view component) {
  const Json* input = Component(document, std::string(component));
  if (input == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the OpenAPI document has no components.schemas.", component));
  }
  InputSchema schema;
  const Json* properties = Member(*input, "properties");
  if (properties == nullptr || !properties->is_object()) return schema;
  std::vector<std::pair<int64_t, Field>> ordered;
  for (const auto& [name, property] : properties->items()) {
    Field field;
    field.name = name;
    absl::StatusOr<Constraints> value = ReadConstraints(document, property, name);
    if (!value.ok()) return value.status();
    field.value = *std::move(value);
    field.node = ReadNode(document, property, 0);
    field.nullable = TrueMember(property, "nullable");
    if (const Json* default_value = Member(property, "default")) {
      field.default_value = *default_value;
    }
    int64_t order = 0;
    if (const Json* x_order = Member(property, "x-order")) {
      if (x_order->is_number_integer()) order = x_order->get<int64_t>();
      if (x_order->is_number_float()) order = WholeInt64(x_order->get<double>()).value_or(0);
    }
    ordered.emplace_back(order, std::move(field));
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (const Json* required = Member(*input, "required"); required != nullptr && required->is_array()) {
    for (const Json& name : *required) {
      for (auto& [order, field] : ordered) {
        if (name == field.name) field.required = true;
      }
    }
  }
  auto root = std::make_shared<ValueNode>();
  for (auto& [order, field] : ordered) {
    if (field.node != nullptr) {
      root->properties.emplace_back(field.name, field.node);
      root->has_uri = root->has_uri || field.node->has_uri;
      root->has_secret = root->has_secret || field.node->has_secret;
    }
    schema.fields_.push_back(std::move(field));
  }
  schema.root_ = std::move(root);
  return schema;
}

bool InputSchema::CheckValue(const Constraints& c, Json& value, const Json& loc, Json& errors) {
  if (value.is_null() && c.nullable) return true;  // List[Optional[T]]: null elements
  // Errors show the value as it was given. Only scalars are coerced, so only
  // they are set aside first: an input can be 100 MB, and is never copied.
  std::optional<Json> before_coercion;
  auto coerce = [&](Json coerced) {
    before_coercion.emplace(std::move(value));
    value = std::move(coerced);
  };
  auto given = [&]() -> const Json& { return before_coercion ? *before_coercion : value; };
  switch (c.type) {
    case Type::kAny:
    case Type::kObject:
      break;
    case Type::kString:
      if (!value.is_string()) {
        AddError(errors, "string_type", loc, "Input should be a valid string", value);
        return false;
      }
      break;
    case Type::kInteger: {
      // int64 and uint64 alike: in Python both are just ints.
      if (value.is_number_integer()) break;
      if (value.is_boolean()) {
        coerce(value.get<bool>() ? 1 : 0);
      } else if (value.is_number_float()) {
        // In the order of pydantic's float_as_int.
        const double d = value.get<double>();
        if (!std::isfinite(d)) {
          AddError(errors, "finite_number", loc, kFiniteMessage, value);
          return false;
        }
        if (std::floor(d) != d) {
          AddError(errors, "int_from_float", loc,
                   "Input should be a valid integer, got a number with a fractional part", value);
          return false;
        }
        std::optional<int64_t> whole = WholeInt64(d);
        if (!whole.has_value()) {
          AddError(errors, "int_parsing_size", loc,
                   "Unable to parse input string as an integer, exceeded maximum size", value);
          return false;
        }
        coerce(*whole);
      } else if (value.is_string()) {
        Json parsed;
        switch (ParseIntText(value.get_ref<const std::string&>(), parsed)) {
          case IntText::kInt:
            coerce(std::move(parsed));
            break;
          case IntText::kTooBig:
            AddError(errors, "int_parsing_size", loc,
                     "Unable to parse input string as an integer, exceeded maximum size", value);
            return false;
          case IntText::kInvalid:
            AddError(errors, "int_parsing", loc,
                     "Input should be a valid integer, unable to parse string as an integer",
                     value);
            return false;
        }
      } else {
        AddError(errors, "int_type", loc, "Input should be a valid integer", value);
        return false;
      }
      break;
    }
    case Type::kNumber: {
      if (value.is_boolean()) {
        coerce(value.get<bool>() ? 1.0 : 0.0);
      } else if (value.is_number_integer()) {
        coerce(value.get<double>());
      } else if (value.is_string()) {
        double parsed;
        if (!absl::SimpleAtod(absl::StripAsciiWhitespace(value.get_ref<const std::string&>()),
                              &parsed)) {
          AddError(errors, "float_parsing", loc,
                   "Input should be a valid number, unable to parse string as a number", value);
          return false;
        }
        coerce(parsed);
      } else if (!value.is_number_float()) {
        AddError(errors, "float_type", loc, "Input should be a valid number", value);
        return false;
      }
      // NaN and infinity: JSON cannot carry them to the predictor (pydantic
      // would pass them; our JSON writer would make them null).
      if (!std::isfinite(value.get<double>())) {
        AddError(errors, "finite_number", loc, kFiniteMessage, given());
        return false;
      }
      break;
    }
    case Type::kBoolean: {
      if (value.is_boolean()) break;
      std::optional<bool> parsed;
      if (value.is_number()) {
        const double d = value.get<double>();
        if (d == 0 || d == 1) parsed = d == 1;
      } else if (value.is_string()) {
        parsed = ParseBool(value.get_ref<const std::string&>());
      } else {
        AddError(errors, "bool_type", loc, "Input should be a valid boolean", value);
        return false;
      }
      if (!parsed.has_value()) {
        AddError(errors, "bool_parsing", loc,
                 "Input should be a valid boolean, unable to interpret input", value);
        return false;
      }
      coerce(*parsed);
      break;
    }
    case Type::kArray:
      if (!value.is_array()) {
        AddError(errors, "list_type", loc, "Input should be a valid list", value);
        return false;
      }
      break;
  }

  bool ok = true;
  if (!c.choices.empty()) {
    bool found = false;
    for (const Json& choice : c.choices) found = found || choice == value;
    if (!found) {
      const std::string expected = ChoicesText(c.choices);
      AddError(errors, "enum", loc, absl::StrCat("Input should be ", expected), given(),
               Json{{"expected", expected}});
      return false;
    }
  }
  if (value.is_number()) {
    const bool integer = c.type == Type::kInteger;
    const double d = value.get<double>();
    if (c.minimum.has_value() && d < *c.minimum) {
      AddError(errors, "greater_than_equal", loc,
               absl::StrCat("Input should be greater than or equal to ", NumberText(*c.minimum)),
               given(), Json{{"ge", NumberJson(*c.minimum, integer)}});
      ok = false;
    }
    if (c.maximum.has_value() && d > *c.maximum) {
      AddError(errors, "less_than_equal", loc,
               absl::StrCat("Input should be less than or equal to ", NumberText(*c.maximum)),
               given(), Json{{"le", NumberJson(*c.maximum, integer)}});
      ok = false;
    }
  }
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    const int64_t length =
        c.min_length.has_value() || c.max_length.has_value() ? CodePoints(text) : 0;
    if (c.min_length.has_value() && length < *c.min_length) {
      AddError(errors, "string_too_short", loc,
               absl::StrCat("String should have at least ", *c.min_length,
                            *c.min_length == 1 ? " character" : " characters"),
               given(), Json{{"min_length", *c.min_length}});
      ok = false;
    }
    if (c.max_length.has_value() && length > *c.max_length) {
      AddError(errors, "string_too_long", loc,
               absl::StrCat("String should have at most ", *c.max_length,
                            *c.max_length == 1 ? " character" : " characters"),
               given(), Json{{"max_length", *c.max_length}});
      ok = false;
    }
    // Searched anywhere in the string, as pydantic's Regex::is_match does.
    if (c.compiled_pattern != nullptr && !RE2::PartialMatch(text, *c.compiled_pattern)) {
      AddError(errors, "string_pattern_mismatch", loc,
               absl::StrCat("String should match pattern '", *c.pattern, "'"), given(),
               Json{{"pattern", *c.pattern}});
      ok = false;
    }
  }
  if (c.items != nullptr && value.is_array()) {
    Json item_loc = loc;
    item_loc.push_back(0);
    for (size_t i = 0; i < value.size(); ++i) {
      item_loc.back() = i;
      ok = CheckValue(*c.items, value[i], item_loc, errors) && ok;
    }
  }
  return ok;
}

absl::StatusOr<InputSchema::Validated> InputSchema::Validate(Json input) const {
  Validated result;
  result.input = Json::object();
  Json errors = Json::array();
  if (!input.is_object()) input = Json::object();
  Json& given = input;
  // Values are moved out of `given` as they are checked (a large string is
  // not copied); a `missing` error echoes the input as it was sent, so when
  // one will be needed the input is kept as sent first (a rare, small case).
  Json as_sent;
  for (const Field& field : fields_) {
    if (field.required && !given.contains(field.name)) {
      as_sent = given;
      break;
    }
  }
  for (const Field& field : fields_) {
    const Json loc = Json::array({"body", "input", field.name});
    auto it = given.find(field.name);
    if (it == given.end()) {
      if (field.required) {
        AddError(errors, "missing", loc, "Field required", as_sent);
      } else {
        result.input[field.name] = field.default_value.value_or(Json());
      }
      continue;
    }
    if (it->is_null() && field.nullable) {
      result.input[field.name] = nullptr;
      continue;
    }
    Json value = std::move(*it);  // what the predictor gets
    const size_t errors_before = errors.size();
    const bool ok = CheckValue(field.value, value, loc, errors);
    if (ok && field.node != nullptr) {
      CollectUris(*field.node, value, "/" + EscapePointerToken(field.name), loc,
                  result.file_inputs, errors);
    }
    // Anywhere else (Any, dicts, lists of lists), once nothing else is wrong.
    if (errors.size() == errors_before) AddNonFiniteErrors(value, loc, errors);
    result.input[field.name] = std::move(value);
  }
  for (const auto& [key, value] : given.items()) {
    bool known = false;
    for (const Field& field : fields_) known = known || field.name == key;
    if (!known) result.unknown_keys.push_back(key);
  }
  if (!errors.empty()) {
    HideSecretsInErrors(errors);
    return InvalidInputError(std::move(errors));
  }
  // What responses and webhooks show: a Secret is never echoed back.
  if (root_ != nullptr && root_->has_secret) {
    result.shown = result.input;
    HideSecrets(*root_, *result.shown);
  }
  return result;
}

}  // namespace cog
