#include "server/input_schema.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace cog {
namespace {

constexpr char kDetailPayload[] = "type.cog/validation_detail";

// A number as Python prints it in pydantic's messages: 10, 2, 0.5.
std::string NumberText(double value) {
  if (std::floor(value) == value && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return Json(value).dump();
}

Json NumberJson(double value, bool integer) {
  if (integer) return Json(static_cast<int64_t>(value));
  return Json(value);
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

std::string ChoiceText(const Json& choice) {
  if (choice.is_string()) return absl::StrCat("'", choice.get<std::string>(), "'");
  return choice.dump();
}

std::string ChoicesText(const std::vector<Json>& choices) {
  std::string text;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) text += i + 1 == choices.size() ? " or " : ", ";
    text += ChoiceText(choices[i]);
  }
  return text;
}

// Python's str length counts code points, not bytes.
int64_t CodePoints(const std::string& text) {
  int64_t count = 0;
  for (unsigned char c : text) count += (c & 0xc0) != 0x80;
  return count;
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

// The component a `$ref` (or `allOf: [{$ref}]`) names, else the node itself.
const Json& Dereference(const Json& document, const Json& node) {
  const Json* ref = nullptr;
  if (node.contains("$ref")) ref = &node["$ref"];
  if (ref == nullptr && node.contains("allOf") && node["allOf"].is_array() &&
      !node["allOf"].empty() && node["allOf"][0].contains("$ref")) {
    ref = &node["allOf"][0]["$ref"];
  }
  if (ref == nullptr || !ref->is_string()) return node;
  absl::string_view name = ref->get_ref<const std::string&>();
  if (!absl::ConsumePrefix(&name, "#/components/schemas/")) return node;
  const Json::json_pointer pointer("/components/schemas/" + std::string(name));
  return document.contains(pointer) ? document[pointer] : node;
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
  absl::Status status = absl::InvalidArgumentError(
      detail.is_array() && !detail.empty() && detail[0].contains("msg")
          ? absl::StrCat("invalid input: ", detail.dump())
          : "invalid input");
  status.SetPayload(kDetailPayload, absl::Cord(detail.dump()));
  return status;
}

std::optional<Json> ValidationDetail(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kDetailPayload);
  if (!payload.has_value()) return std::nullopt;
  return Json::parse(std::string(*payload), nullptr, /*allow_exceptions=*/false);
}

InputSchema::Constraints InputSchema::ReadConstraints(const Json& document, const Json& property) {
  Constraints c;
  const Json& source = Dereference(document, property);
  const std::string type = source.value("type", "");
  if (type == "string") c.type = Type::kString;
  if (type == "integer") c.type = Type::kInteger;
  if (type == "number") c.type = Type::kNumber;
  if (type == "boolean") c.type = Type::kBoolean;
  if (type == "array") c.type = Type::kArray;
  if (type == "object") c.type = Type::kObject;
  c.format = source.value("format", "");
  c.secret = c.format == "password";
  if (source.contains("enum") && source["enum"].is_array()) {
    for (const Json& choice : source["enum"]) c.choices.push_back(choice);
  }
  if (property.contains("minimum") && property["minimum"].is_number()) {
    c.minimum = property["minimum"].get<double>();
  }
  if (property.contains("maximum") && property["maximum"].is_number()) {
    c.maximum = property["maximum"].get<double>();
  }
  if (property.contains("minLength") && property["minLength"].is_number_integer()) {
    c.min_length = property["minLength"].get<int64_t>();
  }
  if (property.contains("maxLength") && property["maxLength"].is_number_integer()) {
    c.max_length = property["maxLength"].get<int64_t>();
  }
  if (property.contains("pattern") && property["pattern"].is_string()) {
    c.pattern = property["pattern"].get<std::string>();
    try {
      c.compiled_pattern = std::make_shared<const std::regex>(*c.pattern);
    } catch (const std::regex_error&) {
      c.compiled_pattern = nullptr;
    }
  }
  return c;
}

std::shared_ptr<const InputSchema::UriNode> InputSchema::ReadUris(const Json& document,
                                                                  const Json& property,
                                                                  int depth) {
  if (depth > 16 || !property.is_object()) return nullptr;  // recursive types end here
  const Json& node = Dereference(document, property);
  auto uris = std::make_shared<UriNode>();
  uris->uri = node.value("type", "") == "string" && node.value("format", "") == "uri";
  if (node.contains("items")) uris->items = ReadUris(document, node["items"], depth + 1);
  if (node.contains("additionalProperties")) {
    uris->additional = ReadUris(document, node["additionalProperties"], depth + 1);
  }
  if (node.contains("properties") && node["properties"].is_object()) {
    for (const auto& [name, child] : node["properties"].items()) {
      if (auto found = ReadUris(document, child, depth + 1)) {
        uris->properties.emplace_back(name, std::move(found));
      }
    }
  }
  if (!uris->uri && !uris->items && !uris->additional && uris->properties.empty()) return nullptr;
  return uris;
}

void InputSchema::CollectUris(const UriNode& node, const Json& value, const std::string& pointer,
                              const Json& loc, std::vector<std::string>& out, Json& errors) {
  if (node.uri && value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (absl::StartsWith(text, "http://") || absl::StartsWith(text, "https://") ||
        absl::StartsWith(text, "data:")) {
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
    for (size_t i = 0; i < value.size(); ++i) {
      Json item_loc = loc;
      item_loc.push_back(i);
      CollectUris(*node.items, value[i], absl::StrCat(pointer, "/", i), item_loc, out, errors);
    }
  }
  if (!value.is_object()) return;
  for (const auto& [name, child] : node.properties) {
    auto it = value.find(name);
    if (it == value.end()) continue;
    Json child_loc = loc;
    child_loc.push_back(name);
    CollectUris(*child, *it, absl::StrCat(pointer, "/", EscapePointerToken(name)), child_loc, out,
                errors);
  }
  if (node.additional != nullptr) {
    for (const auto& [name, member] : value.items()) {
      Json child_loc = loc;
      child_loc.push_back(name);
      CollectUris(*node.additional, member, absl::StrCat(pointer, "/", EscapePointerToken(name)),
                  child_loc, out, errors);
    }
  }
}

absl::StatusOr<InputSchema> InputSchema::FromOpenApi(const Json& document,
                                                     absl::string_view component) {
  const Json::json_pointer pointer("/components/schemas/" + std::string(component));
  if (!document.is_object() || !document.contains(pointer)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the OpenAPI document has no components.schemas.", component));
  }
  const Json& input = document[pointer];
  InputSchema schema;
  if (!input.contains("properties") || !input["properties"].is_object()) return schema;
  std::vector<std::pair<int64_t, Field>> ordered;
  for (const auto& [name, property] : input["properties"].items()) {
    Field field;
    field.name = name;
    field.value = ReadConstraints(document, property);
    field.uris = ReadUris(document, property, 0);
    if (field.value.type == Type::kArray && property.contains("items")) {
      field.items = ReadConstraints(document, property["items"]);
    }
    field.nullable = property.value("nullable", false);
    if (property.contains("default")) field.default_value = property["default"];
    ordered.emplace_back(property.value("x-order", int64_t{0}), std::move(field));
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (input.contains("required") && input["required"].is_array()) {
    for (const Json& name : input["required"]) {
      for (auto& [order, field] : ordered) {
        if (name == field.name) field.required = true;
      }
    }
  }
  for (auto& [order, field] : ordered) schema.fields_.push_back(std::move(field));
  return schema;
}

bool InputSchema::CheckValue(const Constraints& c, Json& value, const Json& loc, Json& errors) {
  const Json original = value;
  switch (c.type) {
    case Type::kAny:
    case Type::kObject:
      break;
    case Type::kString:
      if (!value.is_string()) {
        AddError(errors, "string_type", loc, "Input should be a valid string", original);
        return false;
      }
      break;
    case Type::kInteger: {
      if (value.is_number_integer()) break;
      if (value.is_boolean()) {
        value = value.get<bool>() ? 1 : 0;
      } else if (value.is_number_float()) {
        const double d = value.get<double>();
        if (!std::isfinite(d) || std::floor(d) != d) {
          AddError(errors, "int_from_float", loc,
                   "Input should be a valid integer, got a number with a fractional part",
                   original);
          return false;
        }
        value = static_cast<int64_t>(d);
      } else if (value.is_string()) {
        int64_t parsed;
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value.get<std::string>()), &parsed)) {
          AddError(errors, "int_parsing", loc,
                   "Input should be a valid integer, unable to parse string as an integer",
                   original);
          return false;
        }
        value = parsed;
      } else {
        AddError(errors, "int_type", loc, "Input should be a valid integer", original);
        return false;
      }
      break;
    }
    case Type::kNumber: {
      if (value.is_boolean()) {
        value = value.get<bool>() ? 1.0 : 0.0;
      } else if (value.is_number()) {
        value = value.get<double>();
      } else if (value.is_string()) {
        double parsed;
        if (!absl::SimpleAtod(absl::StripAsciiWhitespace(value.get<std::string>()), &parsed)) {
          AddError(errors, "float_parsing", loc,
                   "Input should be a valid number, unable to parse string as a number",
                   original);
          return false;
        }
        value = parsed;
      } else {
        AddError(errors, "float_type", loc, "Input should be a valid number", original);
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
        parsed = ParseBool(value.get<std::string>());
      } else {
        AddError(errors, "bool_type", loc, "Input should be a valid boolean", original);
        return false;
      }
      if (!parsed.has_value()) {
        AddError(errors, "bool_parsing", loc,
                 "Input should be a valid boolean, unable to interpret input", original);
        return false;
      }
      value = *parsed;
      break;
    }
    case Type::kArray:
      if (!value.is_array()) {
        AddError(errors, "list_type", loc, "Input should be a valid list", original);
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
      AddError(errors, "enum", loc, absl::StrCat("Input should be ", expected), original,
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
               original, Json{{"ge", NumberJson(*c.minimum, integer)}});
      ok = false;
    }
    if (c.maximum.has_value() && d > *c.maximum) {
      AddError(errors, "less_than_equal", loc,
               absl::StrCat("Input should be less than or equal to ", NumberText(*c.maximum)),
               original, Json{{"le", NumberJson(*c.maximum, integer)}});
      ok = false;
    }
  }
  if (value.is_string()) {
    const int64_t length = CodePoints(value.get<std::string>());
    if (c.min_length.has_value() && length < *c.min_length) {
      AddError(errors, "string_too_short", loc,
               absl::StrCat("String should have at least ", *c.min_length,
                            *c.min_length == 1 ? " character" : " characters"),
               original, Json{{"min_length", *c.min_length}});
      ok = false;
    }
    if (c.max_length.has_value() && length > *c.max_length) {
      AddError(errors, "string_too_long", loc,
               absl::StrCat("String should have at most ", *c.max_length,
                            *c.max_length == 1 ? " character" : " characters"),
               original, Json{{"max_length", *c.max_length}});
      ok = false;
    }
    if (c.compiled_pattern != nullptr) {
      if (!std::regex_search(value.get<std::string>(), *c.compiled_pattern)) {
        AddError(errors, "string_pattern_mismatch", loc,
                 absl::StrCat("String should match pattern '", *c.pattern, "'"), original,
                 Json{{"pattern", *c.pattern}});
        ok = false;
      }
    }
  }
  return ok;
}

absl::StatusOr<InputSchema::Validated> InputSchema::Validate(const Json& input) const {
  Validated result;
  result.input = Json::object();
  Json errors = Json::array();
  const Json empty = Json::object();
  const Json& given = input.is_object() ? input : empty;
  for (const Field& field : fields_) {
    const Json loc = Json::array({"body", "input", field.name});
    auto it = given.find(field.name);
    if (it == given.end()) {
      if (field.required) {
        AddError(errors, "missing", loc, "Field required", given);
      } else {
        result.input[field.name] = field.default_value.value_or(Json());
      }
      continue;
    }
    Json value = *it;
    if (value.is_null() && field.nullable) {
      result.input[field.name] = nullptr;
      continue;
    }
    bool ok = CheckValue(field.value, value, loc, errors);
    if (ok && field.items.has_value() && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        Json item_loc = loc;
        item_loc.push_back(i);
        CheckValue(*field.items, value[i], item_loc, errors);
      }
    }
    if (ok && field.uris != nullptr) {
      CollectUris(*field.uris, value, "/" + EscapePointerToken(field.name), loc,
                  result.file_inputs, errors);
    }
    result.input[field.name] = std::move(value);
  }
  for (const auto& [key, value] : given.items()) {
    bool known = false;
    for (const Field& field : fields_) known = known || field.name == key;
    if (!known) result.unknown_keys.push_back(key);
  }
  if (!errors.empty()) return InvalidInputError(std::move(errors));
  // What responses and webhooks show: a Secret is never echoed back.
  result.shown = result.input;
  for (const Field& field : fields_) {
    Json& value = result.shown[field.name];
    if (field.value.secret && value.is_string()) value = "**********";
    if (field.items.has_value() && field.items->secret && value.is_array()) {
      for (Json& item : value) {
        if (item.is_string()) item = "**********";
      }
    }
  }
  return result;
}

}  // namespace cog
