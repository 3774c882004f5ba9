// The JSON of the core: the value type, and the only ways text becomes a
// value and a value becomes text.
//
// The value type is nlohmann::ordered_json, so that objects keep the order a
// client or the predictor gave them (Cog's responses do too). Text is never
// parsed or written with nlohmann's own parse()/dump(): those recurse as deep
// as the input nests and throw on invalid UTF-8. ParseJson refuses input
// nested deeper than a limit, numbers JSON cannot carry and invalid UTF-8 with
// a status a person can act on; DumpJson never throws.
//
// Thread-safe (no shared state).
#ifndef COG_SERVER_JSON_H_
#define COG_SERVER_JSON_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cog {

using Json = nlohmann::ordered_json;

// Deep enough for any real input or output, shallow enough that nothing that
// walks a value recursively comes near the end of a thread's stack.
inline constexpr int kDefaultMaxJsonDepth = 128;

// Bytes after a text's end that, when readable, let ParseJson parse it in
// place instead of copying it first (the parser reads in 64-byte blocks).
inline constexpr size_t kJsonPadding = 64;

// Parses `text` (one JSON value, surrounding whitespace allowed). Errors, all
// InvalidArgument, with the byte offset where it helps: not JSON, nested
// deeper than `max_depth` arrays and objects, an integer outside int64 /
// uint64 or a number outside double's range (1e400), invalid UTF-8.
// `readable_after`: how many bytes after text's end may be read (their
// values do not matter), e.g. a std::string's capacity() - size(); from
// kJsonPadding on, the text is not copied. `max_values` (0: no limit): the
// most members of arrays and objects, in all, the text may have; more is an
// error before they are built (a parsed value takes 16 to 64 bytes: a 100 MB
// list of zeros is 50 million of them).
absl::StatusOr<Json> ParseJson(absl::string_view text, int max_depth = kDefaultMaxJsonDepth,
                               size_t readable_after = 0, uint64_t max_values = 0);
// Where in the text a ParseJson error was found (a byte offset, as Python's
// json reports it), when it could be told.
std::optional<size_t> JsonErrorOffset(const absl::Status& status);

// The escape (e.g. "\ud800") of a ParseJson error that is a string holding a
// lone UTF-16 surrogate, which is not valid Unicode (Python's json writes one
// for a str that holds it).
std::optional<std::string> JsonLoneSurrogate(const absl::Status& status);

// The text of `value`, compact, as Python's json.dumps(separators=(",", ":"),
// ensure_ascii=False) would write it. Never throws: bytes that are not UTF-8 are
// written as U+FFFD, non-finite numbers (which JSON cannot carry) as null.
std::string DumpJson(const Json& value);
void AppendJson(const Json& value, std::string* out);
// Appends `text` as a JSON string (quoted, escaped as DumpJson does).
void AppendJsonString(absl::string_view text, std::string* out);

// Where in `value` the first non-finite number is, as a JSON pointer ("/0/x");
// empty if there is none.
std::string FindNonFinite(const Json& value);

// Whether `text` is valid UTF-8.
bool IsUtf8(absl::string_view text);

// `text` with each byte that is not part of valid UTF-8 written as U+FFFD, as
// DumpJson writes it (and Python's decode(errors="replace") reads it).
std::string ToUtf8(absl::string_view text);

}  // namespace cog

#endif  // COG_SERVER_JSON_H_
