#include "server/json.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define COG_JSON_AVX2 1
#endif

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "simdjson.h"

namespace cog {
namespace {

// Parsers keep their buffers between documents; one per thread, reused for
// ordinary bodies. A body larger than this gets a parser of its own, freed
// after, so that one huge request does not pin its memory in a thread for ever.
constexpr size_t kReusedParserCapacity = 4 << 20;

std::string ParseErrorMessage(simdjson::error_code code, int max_depth) {
  switch (code) {
    case simdjson::DEPTH_ERROR:
      return absl::StrCat("JSON nested deeper than ", max_depth,
                          " levels of arrays and objects: flatten it (the server's limit is "
                          "--max-json-depth)");
    case simdjson::UTF8_ERROR:
      return "JSON text is not valid UTF-8";
    case simdjson::NUMBER_OUT_OF_RANGE:
      return "JSON number out of range: integers must fit in 64 bits and numbers in a double";
    case simdjson::NUMBER_ERROR:
      return "JSON number is malformed or out of range (e.g. 1e400)";
    case simdjson::STRING_ERROR:
    case simdjson::UNCLOSED_STRING:
    case simdjson::UNESCAPED_CHARS:
      return "JSON string is malformed (an unclosed string, a bad escape or a raw control "
             "character)";
    case simdjson::EMPTY:
      return "Expecting value: the body is empty";
    case simdjson::CAPACITY:
      return "JSON document is too large to parse";
    default:
      return absl::StrCat("JSON decode error: ", simdjson::error_message(code));
  }
}

class Converter {
 public:
  // 0: no limit.
  explicit Converter(uint64_t max_values) : left_(max_values == 0 ? UINT64_MAX : max_values) {}

  // Whether the text had more values than allowed (`out` is then partial).
  bool over() const { return over_; }

  // Bounded recursion: the parser has already refused anything deeper than
  // the depth limit.
  void Convert(simdjson::dom::element element, Json* out) {
    if (over_) return;
    switch (element.type()) {
      case simdjson::dom::element_type::ARRAY: {
        *out = Json::array();
        auto& array = out->get_ref<Json::array_t&>();
        simdjson::dom::array items = element.get_array().value_unsafe();
        const size_t size = Count(items);
        if (!Take(size)) return;
        array.reserve(size);
        for (simdjson::dom::element item : items) {
          array.emplace_back();
          Convert(item, &array.back());
          if (over_) return;
        }
        return;
      }
      case simdjson::dom::element_type::OBJECT: {
        *out = Json::object();
        // ordered_json's operator[] searches linearly: building a large object
        // key by key would cost the square of its size. Append instead, and
        // find duplicate keys (the last one wins, as in Python) with a hash.
        auto& object = out->get_ref<Json::object_t&>();
        auto& entries = static_cast<std::vector<std::pair<const std::string, Json>>&>(object);
        simdjson::dom::object fields = element.get_object().value_unsafe();
        std::unique_ptr<absl::flat_hash_map<std::string_view, size_t>> seen;
        const size_t count = Count(fields);
        if (!Take(count)) return;
        if (count > 8) seen = std::make_unique<absl::flat_hash_map<std::string_view, size_t>>();
        entries.reserve(count);
        for (simdjson::dom::key_value_pair field : fields) {
          std::optional<size_t> duplicate;
          if (seen != nullptr) {
            auto [it, inserted] = seen->try_emplace(field.key, entries.size());
            if (!inserted) duplicate = it->second;
          } else {
            for (size_t i = 0; i < entries.size(); ++i) {
              if (entries[i].first == field.key) duplicate = i;
            }
          }
          if (duplicate.has_value()) {
            Convert(field.value, &entries[*duplicate].second);
            if (over_) return;
            continue;
          }
          entries.emplace_back(std::string(field.key), Json());
          Convert(field.value, &entries.back().second);
          if (over_) return;
        }
        return;
      }
      case simdjson::dom::element_type::INT64:
        *out = element.get_int64().value_unsafe();
        return;
      case simdjson::dom::element_type::UINT64:
        *out = element.get_uint64().value_unsafe();
        return;
      case simdjson::dom::element_type::DOUBLE:
        *out = element.get_double().value_unsafe();
        return;
      case simdjson::dom::element_type::STRING: {
        std::string_view text = element.get_string().value_unsafe();
        *out = std::string(text);
        return;
      }
      case simdjson::dom::element_type::BOOL:
        *out = element.get_bool().value_unsafe();
        return;
      case simdjson::dom::element_type::NULL_VALUE:
        *out = nullptr;
        return;
    }
  }

 private:
  // The members of an array or object: simdjson's size() stops at 2^24 - 1
  // (a 50-million-item list said 16,777,215), so past that they are counted.
  template <typename Container>
  static size_t Count(Container container) {
    size_t n = container.size();
    if (n < simdjson::internal::JSON_COUNT_MASK) return n;
    n = 0;
    for ([[maybe_unused]] auto member : container) ++n;
    return n;
  }

  // Counts `n` more values, before they are built.
  bool Take(size_t n) {
    if (n > left_) {
      over_ = true;
      return false;
    }
    left_ -= n;
    return true;
  }

  uint64_t left_;
  bool over_ = false;
};

// ---- writing ----

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at `p` (at most `n` bytes), 0 if invalid.
size_t Utf8Sequence(const unsigned char* p, size_t n) {
  const unsigned char c = p[0];
  if (c < 0xC2) return 0;
  if (c < 0xE0) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c < 0xF5) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// Gathers what AppendString writes in a buffer on the stack and appends it to
// the string a block at a time: text with an escape every few dozen bytes
// (prose with quotes and line breaks) would otherwise cost two appends per
// escape. Runs longer than the buffer go straight to the string.
class BlockWriter {
 public:
  explicit BlockWriter(std::string* out) : out_(out) {}
  ~BlockWriter() { Flush(); }
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  void Write(const void* data, size_t size) {
    if (size > sizeof(buffer_) - used_) {
      Flush();
      if (size >= sizeof(buffer_)) {
        out_->append(static_cast<const char*>(data), size);
        return;
      }
    }
    std::memcpy(buffer_ + used_, data, size);
    used_ += size;
  }

 private:
  void Flush() {
    out_->append(buffer_, used_);
    used_ = 0;
  }

  std::string* out_;
  char buffer_[8192];
  size_t used_ = 0;
};

#ifdef COG_JSON_AVX2
// PlainRunEnd 64 bytes at a time (a quarter of the SSE2 loop's instructions),
// for CPUs that have AVX2 (checked once at run time).
__attribute__((target("avx2"))) size_t PlainRunEndAvx2(const unsigned char* p, size_t j,
                                                        size_t n, bool utf8) {
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i backslash = _mm256_set1_epi8('\\');
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i control_limit = _mm256_set1_epi8(static_cast<char>(0x20 ^ 0x80));
  const __m256i zero = _mm256_setzero_si256();
  // A byte >= 0x80 is special only when the text is not known to be UTF-8.
  const __m256i high_bit = utf8 ? zero : flip;
  while (j + 64 <= n) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j + 32));
    const __m256i low = _mm256_or_si256(
        _mm256_or_si256(_mm256_cmpeq_epi8(a, quote), _mm256_cmpeq_epi8(a, backslash)),
        _mm256_or_si256(_mm256_cmpgt_epi8(control_limit, _mm256_xor_si256(a, flip)),
                        _mm256_cmpgt_epi8(zero, _mm256_and_si256(a, high_bit))));
    const __m256i high = _mm256_or_si256(
        _mm256_or_si256(_mm256_cmpeq_epi8(b, quote), _mm256_cmpeq_epi8(b, backslash)),
        _mm256_or_si256(_mm256_cmpgt_epi8(control_limit, _mm256_xor_si256(b, flip)),
                        _mm256_cmpgt_epi8(zero, _mm256_and_si256(b, high_bit))));
    if (!_mm256_testz_si256(_mm256_or_si256(low, high), _mm256_or_si256(low, high))) {
      const uint64_t mask = static_cast<uint32_t>(_mm256_movemask_epi8(low)) |
                            (uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(high))} << 32);
      return j + static_cast<size_t>(__builtin_ctzll(mask));
    }
    j += 64;
  }
  return j;
}

// Bit k set where p[k] (k < 64) is a quote, a backslash or a control: the
// bytes of valid UTF-8 text that JSON escapes.
__attribute__((target("avx2"))) uint64_t EscapeMaskAvx2(const unsigned char* p) {
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i backslash = _mm256_set1_epi8('\\');
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i control_limit = _mm256_set1_epi8(static_cast<char>(0x20 ^ 0x80));
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
  const __m256i low =
      _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(a, quote), _mm256_cmpeq_epi8(a, backslash)),
                      _mm256_cmpgt_epi8(control_limit, _mm256_xor_si256(a, flip)));
  const __m256i high =
      _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(b, quote), _mm256_cmpeq_epi8(b, backslash)),
                      _mm256_cmpgt_epi8(control_limit, _mm256_xor_si256(b, flip)));
  return static_cast<uint32_t>(_mm256_movemask_epi8(low)) |
         (uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(high))} << 32);
}

// __builtin_cpu_init first: this runs as a static initializer, maybe before
// the compiler's own CPU detection has.
const bool kHasAvx2 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}();
#endif

// Where the run of bytes that AppendString copies as they are, starting at
// p[j], ends: at a quote, a backslash, a control (below 0x20) or, when the text
// is not known to be UTF-8, any byte >= 0x80. Vector loops find most of it;
// the caller finishes the last few bytes one at a time.
size_t PlainRunEnd(const unsigned char* p, size_t j, size_t n, bool utf8) {
#ifdef COG_JSON_AVX2
  if (kHasAvx2 && n - j >= 64) {
    j = PlainRunEndAvx2(p, j, n, utf8);
    // Stopped at a special byte; otherwise fewer than 64 are left (or the
    // special byte is among them: the loop below stops at it at once).
    if (j + 64 <= n) return j;
  }
#endif
#ifdef __SSE2__
  // Sixteen bytes at a time (in every x86-64): a control is below 0x20
  // unsigned, i.e. below -96 once 0x80 is flipped, signed.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i control_limit = _mm_set1_epi8(static_cast<char>(0x20 ^ 0x80));
  while (j + 16 <= n) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j));
    const __m128i special = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)),
        _mm_cmplt_epi8(_mm_xor_si128(bytes, flip), control_limit));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(special));
    if (!utf8) mask |= static_cast<unsigned>(_mm_movemask_epi8(bytes));
    if (mask != 0) return j + static_cast<size_t>(__builtin_ctz(mask));
    j += 16;
  }
#endif  // elsewhere the caller finds it a byte at a time
  return j;
}

// Writes the escape of a quote, backslash or control byte `c`.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void WriteEscape(unsigned char c, BlockWriter& writer) {
  switch (c) {
    case '"':
      writer.Write("\\\"", 2);
      break;
    case '\\':
      writer.Write("\\\\", 2);
      break;
    case '\n':
      writer.Write("\\n", 2);
      break;
    case '\r':
      writer.Write("\\r", 2);
      break;
    case '\t':
      writer.Write("\\t", 2);
      break;
    case '\b':
      writer.Write("\\b", 2);
      break;
    case '\f':
      writer.Write("\\f", 2);
      break;
    default: {
      const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      writer.Write(escape, 6);
    }
  }
}

void AppendString(absl::string_view text, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  // Room for the quotes and some escapes: growing past it copies the text.
  out->reserve(out->size() + n + n / 8 + 2);
  BlockWriter writer(out);
  writer.Write("\"", 1);
  // Valid UTF-8 as a whole (all that ParseJson makes is; checking it costs a
  // fraction of the copy): its bytes >= 0x80 are copied as they are, and only
  // quotes, backslashes and controls stop a run. Otherwise every sequence is
  // checked, and what is not UTF-8 becomes U+FFFD.
  // Short strings (most keys and values) are checked sequence by sequence:
  // the call costs more than it saves there.
  const bool utf8 = n >= 64 && simdjson::validate_utf8(text.data(), n);
  auto plain = [utf8](unsigned char c) {
    return c >= 0x20 && c != '"' && c != '\\' && (utf8 || c < 0x80);
  };
  size_t i = 0;
#ifdef COG_JSON_AVX2
  if (utf8 && kHasAvx2) {
    // 64 bytes at a time, every byte to escape in a block found from one
    // mask: text with an escape every few dozen bytes (prose with newlines
    // and quotes) is not scanned again from each escape.
    size_t block = 0;
    for (; block + 64 <= n; block += 64) {
      for (uint64_t mask = EscapeMaskAvx2(p + block); mask != 0; mask &= mask - 1) {
        const size_t k = block + static_cast<size_t>(__builtin_ctzll(mask));
        writer.Write(p + i, k - i);
        WriteEscape(p[k], writer);
        i = k + 1;
      }
    }
    writer.Write(p + i, block - i);  // plain up to here; the loop below does the rest
    i = block;
  }
#endif
  while (i < n) {
    // Copy the longest plain run in one go.
    size_t j = PlainRunEnd(p, i, n, utf8);
    while (j < n && plain(p[j])) ++j;
    writer.Write(p + i, j - i);
    i = j;
    if (i >= n) break;
    const unsigned char c = p[i];
    if (c >= 0x80) {  // only when the text is not all valid UTF-8
      const size_t length = Utf8Sequence(p + i, n - i);
      if (length == 0) {
        writer.Write("\xEF\xBF\xBD", 3);  // U+FFFD for a byte that is not UTF-8
        ++i;
      } else {
        writer.Write(p + i, length);
        i += length;
      }
      continue;
    }
    WriteEscape(c, writer);
    ++i;
  }
  writer.Write("\"", 1);
}

void AppendDouble(double value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  // nlohmann's shortest round-trip digits, formatted as Python's repr
  // (1.0, 1e+16, 1.5e-07), which is what Cog's responses carry.
  char buffer[64];
  char* end = nlohmann::detail::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, end);
}

template <typename Integer>
void AppendInteger(Integer value, std::string* out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, end);
}

void Append(const Json& value, std::string* out) {
  switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      out->append("null");
      return;
    case Json::value_t::boolean:
      out->append(value.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      AppendInteger(value.get<int64_t>(), out);
      return;
    case Json::value_t::number_unsigned:
      AppendInteger(value.get<uint64_t>(), out);
      return;
    case Json::value_t::number_float:
      AppendDouble(value.get<double>(), out);
      return;
    case Json::value_t::string:
      AppendString(value.get_ref<const std::string&>(), out);
      return;
    case Json::value_t::binary:
      out->append("null");
      return;
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const Json& item : value.get_ref<const Json::array_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        Append(item, out);
      }
      out->push_back(']');
      return;
    }
    case Json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.get_ref<const Json::object_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        AppendString(key, out);
        out->push_back(':');
        Append(item, out);
      }
      out->push_back('}');
      return;
    }
  }
}

bool FindNonFiniteAt(const Json& value, std::string* pointer) {
  switch (value.type()) {
    case Json::value_t::number_float:
      return !std::isfinite(value.get<double>());
    case Json::value_t::array: {
      const auto& items = value.get_ref<const Json::array_t&>();
      for (size_t i = 0; i < items.size(); ++i) {
        if (FindNonFiniteAt(items[i], pointer)) {
          *pointer = absl::StrCat("/", i, *pointer);
          return true;
        }
      }
      return false;
    }
    case Json::value_t::object:
      for (const auto& [key, item] : value.get_ref<const Json::object_t&>()) {
        if (FindNonFiniteAt(item, pointer)) {
          *pointer = absl::StrCat("/", key, *pointer);
          return true;
        }
      }
      return false;
    default:
      return false;
  }
}

// Finds where a text that failed to parse goes wrong, for the error's offset:
// nlohmann's SAX parser (iterative, so safe on any nesting), keeping nothing.
class ErrorOffsetFinder final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) override {
    offset = position > 0 ? position - 1 : 0;
    return false;
  }
  std::optional<size_t> offset;
};

// Whether the integer literal `digits` (no sign) is past what its sign fits:
// 64 bits unsigned for a positive one, signed for a negative one.
bool PastSixtyFourBits(absl::string_view digits, bool negative) {
  const absl::string_view limit = negative ? "9223372036854775808" : "18446744073709551615";
  return digits.size() > limit.size() || (digits.size() == limit.size() && digits > limit);
}

// simdjson 3.0 refuses an integer past 64 bits (NUMBER_ERROR), which is
// valid JSON, and which legacy Cog (Python's json) takes. The text is
// written again with ".0" after each such integer, in one pass outside its
// strings, so that it is read as a double (an int input then gets
// int_parsing_size, a float input its value); nothing when there is none.
std::optional<std::string> WidenIntegers(absl::string_view text) {
  std::string out;
  size_t copied = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {  // to the end of the string, past its escapes
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      continue;
    }
    if (c != '-' && !absl::ascii_isdigit(static_cast<unsigned char>(c))) continue;
    const bool negative = c == '-';
    if (negative) ++i;
    const size_t digits_start = i;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i;
    const absl::string_view digits = text.substr(digits_start, i - digits_start);
    const bool integer = i == text.size() || (text[i] != '.' && text[i] != 'e' && text[i] != 'E');
    // Past the number (its fraction and exponent too): none of it is a quote.
    while (i < text.size() && (absl::ascii_isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                               text[i] == 'e' || text[i] == 'E' || text[i] == '+' || text[i] == '-')) {
      ++i;
    }
    if (integer && PastSixtyFourBits(digits, negative)) {
      const size_t end = digits_start + digits.size();
      out.append(text.data() + copied, end - copied);
      out += ".0";
      copied = end;
    }
    --i;  // the loop's ++i lands on what follows the number
  }
  if (copied == 0) return std::nullopt;
  out.append(text.data() + copied, text.size() - copied);
  return out;
}

constexpr char kOffsetPayload[] = "type.cog/json_error_offset";
constexpr char kLoneSurrogatePayload[] = "type.cog/json_lone_surrogate";

// The first \uXXXX escape in JSON text that is a lone UTF-16 surrogate (as
// Python's json writes a str holding one), if any: what simdjson refuses as
// a malformed string, said more precisely.
std::optional<absl::string_view> FindLoneSurrogate(absl::string_view json) {
  auto unit_at = [json](size_t at) -> int {  // the escape's code unit at `at`, or -1
    if (at + 6 > json.size() || json[at] != '\\' || json[at + 1] != 'u') return -1;
    const absl::string_view digits = json.substr(at + 2, 4);
    int unit;
    if (!std::all_of(digits.begin(), digits.end(),
                     [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }) ||
        !absl::SimpleHexAtoi(digits, &unit)) {
      return -1;
    }
    return unit;
  };
  for (size_t i = 0; i + 1 < json.size(); ++i) {
    if (json[i] != '\\') continue;
    const int unit = unit_at(i);
    if (unit < 0xD800 || unit > 0xDFFF) {
      ++i;  // another escape, or a code unit that is not a surrogate: past its backslash's pair
      continue;
    }
    const int next = unit_at(i + 6);
    if (unit > 0xDBFF || next < 0xDC00 || next > 0xDFFF) return json.substr(i, 6);
    i += 11;  // a pair
  }
  return std::nullopt;
}

absl::Status ParseError(simdjson::error_code code, int max_depth, absl::string_view text) {
  std::optional<absl::string_view> surrogate;
  if (code == simdjson::STRING_ERROR) surrogate = FindLoneSurrogate(text);
  absl::Status status = absl::InvalidArgumentError(
      surrogate.has_value()
          ? absl::StrCat("JSON string holds a lone surrogate (", *surrogate,
                         "), which is not valid Unicode")
          : ParseErrorMessage(code, max_depth));
  if (surrogate.has_value()) status.SetPayload(kLoneSurrogatePayload, absl::Cord(*surrogate));
  if (code != simdjson::DEPTH_ERROR && code != simdjson::CAPACITY) {
    ErrorOffsetFinder finder;
    Json::sax_parse(text.begin(), text.end(), &finder, nlohmann::detail::input_format_t::json,
                    /*strict=*/true);
    if (finder.offset.has_value()) status.SetPayload(kOffsetPayload, absl::Cord(absl::StrCat(*finder.offset)));
  }
  return status;
}

}  // namespace

std::optional<size_t> JsonErrorOffset(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kOffsetPayload);
  size_t offset;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &offset)) return std::nullopt;
  return offset;
}

std::optional<std::string> JsonLoneSurrogate(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kLoneSurrogatePayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

absl::StatusOr<Json> ParseJson(absl::string_view text, int max_depth, size_t readable_after,
                               uint64_t max_values) {
  static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING);
  if (max_depth < 1) max_depth = 1;
  const size_t depth = static_cast<size_t>(max_depth);
  thread_local std::unique_ptr<simdjson::dom::parser> reused;
  std::unique_ptr<simdjson::dom::parser> own;
  simdjson::dom::parser* parser;
  if (text.size() <= kReusedParserCapacity) {
    if (reused == nullptr) reused = std::make_unique<simdjson::dom::parser>();
    parser = reused.get();
  } else {
    own = std::make_unique<simdjson::dom::parser>(text.size());
    parser = own.get();
  }
  if (parser->max_depth() != depth) {
    if (simdjson::error_code e = parser->allocate(std::max<size_t>(parser->capacity(), 1024), depth);
        e != simdjson::SUCCESS) {
      return absl::ResourceExhaustedError(ParseErrorMessage(e, max_depth));
    }
  }
  simdjson::dom::element root;
  const bool in_place = readable_after >= kJsonPadding;
  if (simdjson::error_code e =
          parser->parse(text.data(), text.size(), /*realloc_if_needed=*/!in_place).get(root);
      e != simdjson::SUCCESS) {
    if (e == simdjson::NUMBER_ERROR) {
      if (std::optional<std::string> widened = WidenIntegers(text)) {
        absl::StatusOr<Json> value = ParseJson(*widened, max_depth, 0, max_values);
        if (value.ok() || absl::StrContains(value.status().message(), "values (members of")) return value;
      }
    }
    return ParseError(e, max_depth, text);
  }
  Json value;
  Converter converter(max_values);
  converter.Convert(root, &value);
  if (converter.over()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the JSON holds more than ", max_values, " values (members of arrays and objects), more than "
        "the server reads in one request: it would take several times its size in memory"));
  }
  return value;
}

std::string DumpJson(const Json& value) {
  std::string out;
  Append(value, &out);
  return out;
}

void AppendJson(const Json& value, std::string* out) { Append(value, out); }

std::string FindNonFinite(const Json& value) {
  std::string pointer;
  if (!FindNonFiniteAt(value, &pointer)) return "";
  return pointer.empty() ? "/" : pointer;
}

void AppendJsonString(absl::string_view text, std::string* out) { AppendString(text, out); }

bool IsUtf8(absl::string_view text) { return simdjson::validate_utf8(text.data(), text.size()); }

std::string ToUtf8(absl::string_view text) {
  if (IsUtf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    const size_t length = p[i] < 0x80 ? 1 : Utf8Sequence(p + i, text.size() - i);
    if (length == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(text.data() + i, length);
      i += length;
    }
  }
  return out;
}

}  // namespace cog
