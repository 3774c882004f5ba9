#include "server/outbound_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cog {
namespace {

// ::ffff:a.b.c.d, an IPv4 address written as IPv6 (what a dual-stack socket
// shows for an IPv4 peer, and a way to spell one in a URL).
bool IsV4Mapped(const uint8_t* bytes) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes, kPrefix, sizeof(kPrefix)) == 0;
}

}  // namespace

// The constant parses (outbound_policy_test checks it).
OutboundPolicy::OutboundPolicy() : OutboundPolicy(*Parse(kDefaultDenyCidrs)) {}

absl::StatusOr<OutboundPolicy> OutboundPolicy::Parse(absl::string_view cidrs) {
  std::vector<Range> deny;
  for (absl::string_view entry : absl::StrSplit(cidrs, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) continue;
    std::string error;
    std::optional<Range> range = ParseRange(entry, &error);
    if (!range.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--outbound-deny-cidrs: '", absl::CHexEscape(entry), "' ", error));
    }
    deny.push_back(*range);
  }
  return OutboundPolicy(std::move(deny));
}

std::optional<OutboundPolicy::Range> OutboundPolicy::ParseRange(absl::string_view text,
                                                                std::string* error) {
  Range range;
  const size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  if (inet_pton(AF_INET, address.c_str(), range.bytes.data()) == 1) {
    range.v6 = false;
    range.prefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), range.bytes.data()) == 1) {
    range.v6 = true;
    range.prefix = 128;
  } else {
    *error = "is not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  if (slash != absl::string_view::npos) {
    int prefix = -1;
    if (!absl::SimpleAtoi(text.substr(slash + 1), &prefix) || prefix < 0 || prefix > range.prefix) {
      *error = absl::StrCat("has no prefix length between 0 and ", range.prefix);
      return std::nullopt;
    }
    range.prefix = prefix;
  }
  for (int bit = range.prefix; bit < (range.v6 ? 128 : 32); ++bit) {
    if (range.bytes[bit / 8] & (0x80 >> (bit % 8))) {
      *error = "has bits set after its prefix length";
      return std::nullopt;
    }
  }
  // A range of IPv4-mapped addresses is the IPv4 range: addresses are
  // compared as IPv4 once mapped (Allows), so the rule must be too.
  if (range.v6 && range.prefix >= 96 && IsV4Mapped(range.bytes.data())) {
    std::array<uint8_t, 16> v4{};
    std::memcpy(v4.data(), range.bytes.data() + 12, 4);
    range.bytes = v4;
    range.v6 = false;
    range.prefix -= 96;
  }
  return range;
}

bool OutboundPolicy::Contains(const Range& range, bool v6, const uint8_t* bytes) {
  if (range.v6 != v6) return false;
  const int whole = range.prefix / 8;
  if (std::memcmp(range.bytes.data(), bytes, whole) != 0) return false;
  const int rest = range.prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (range.bytes[whole] & mask) == (bytes[whole] & mask);
}

bool OutboundPolicy::Allows(const sockaddr* address) const {
  uint8_t bytes[16] = {};
  bool v6 = false;
  if (address->sa_family == AF_INET) {
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, 4);
  } else if (address->sa_family == AF_INET6) {
    const uint8_t* raw = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
    if (IsV4Mapped(raw)) {
      std::memcpy(bytes, raw + 12, 4);
    } else {
      std::memcpy(bytes, raw, 16);
      v6 = true;
    }
  } else {
    return true;
  }
  for (const Range& range : deny_) {
    if (Contains(range, v6, bytes)) return false;
  }
  return true;
}

std::string OutboundPolicy::AddressText(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof(text));
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof(text));
  } else {
    return absl::StrCat("an address of family ", address->sa_family);
  }
  return text;
}

void OutboundGuard::ApplyTo(CURL* curl) {
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, &OutboundGuard::OpenSocket);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
}

curl_socket_t OutboundGuard::OpenSocket(void* guard_pointer, curlsocktype,
                                        curl_sockaddr* address) {
  auto* guard = static_cast<OutboundGuard*>(guard_pointer);
  if (guard->policy_ != nullptr && !guard->policy_->Allows(&address->addr)) {
    // curl then tries the host's next address, if it has one; the transfer
    // fails with CURLE_COULDNT_CONNECT only when none is left.
    guard->refusal_ = absl::StrCat("refused to connect to ", OutboundPolicy::AddressText(&address->addr),
                                   ": blocked by --outbound-deny-cidrs");
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

namespace {

// Where a URL's user information ("user:password") is: [begin, at) with the
// '@' at `at`; nullopt if it has none.
struct Userinfo {
  size_t begin;
  size_t at;
};
std::optional<Userinfo> FindUserinfo(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return std::nullopt;
  const size_t authority = scheme + 3;
  const size_t end = std::min(url.find_first_of("/?#", authority), url.size());
  const size_t at = url.substr(0, end).rfind('@');
  if (at == absl::string_view::npos || at < authority) return std::nullopt;
  return Userinfo{authority, at};
}

}  // namespace

std::string RedactUrl(absl::string_view url) {
  const std::optional<Userinfo> userinfo = FindUserinfo(url);
  if (!userinfo.has_value()) return std::string(url);
  const size_t colon = url.substr(0, userinfo->at).find(':', userinfo->begin);
  if (colon == absl::string_view::npos) return std::string(url);  // a user name alone
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(userinfo->at));
}

std::string WithoutUserinfo(absl::string_view url) {
  const std::optional<Userinfo> userinfo = FindUserinfo(url);
  if (!userinfo.has_value()) return std::string(url);
  return absl::StrCat(url.substr(0, userinfo->begin), url.substr(userinfo->at + 1));
}

std::optional<UrlProblem> CheckHttpUrl(absl::string_view url) {
  auto parsing = [](absl::string_view why) {
    return UrlProblem{"url_parsing", absl::StrCat("Input should be a valid URL, ", why)};
  };
  if (url.empty()) return parsing("input is empty");
  if (url.find('\0') != absl::string_view::npos) return parsing("invalid character");
  struct UrlDeleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
  };
  struct PartDeleter {
    void operator()(char* part) const { curl_free(part); }
  };
  std::unique_ptr<CURLU, UrlDeleter> parsed(curl_url());
  if (parsed == nullptr) return parsing("out of memory");
  // CURLU_NON_SUPPORT_SCHEME: a gopher:// URL is a URL, with the wrong scheme.
  const std::string text(url);
  if (curl_url_set(parsed.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    // curl parses only scheme://... URLs; "data:..." and "mailto:..." are
    // URLs too, of schemes we do not speak (RFC 3986: a letter, then letters,
    // digits, "+", "-" or ".", then ":").
    const size_t colon = text.find(':');
    const bool has_scheme =
        colon != std::string::npos && colon > 0 && absl::ascii_isalpha(text[0]) &&
        std::all_of(text.begin(), text.begin() + colon, [](char c) {
          return absl::ascii_isalnum(c) || c == '+' || c == '-' || c == '.';
        });
    if (has_scheme && !absl::StartsWithIgnoreCase(text, "http:") &&
        !absl::StartsWithIgnoreCase(text, "https:")) {
      return UrlProblem{"url_scheme", "URL scheme should be 'http' or 'https'"};
    }
    return parsing(has_scheme ? "invalid syntax" : "relative URL without a base");
  }
  char* raw = nullptr;
  curl_url_get(parsed.get(), CURLUPART_SCHEME, &raw, 0);
  std::unique_ptr<char, PartDeleter> scheme(raw);
  if (scheme == nullptr || (absl::AsciiStrToLower(scheme.get()) != "http" &&
                            absl::AsciiStrToLower(scheme.get()) != "https")) {
    return UrlProblem{"url_scheme", "URL scheme should be 'http' or 'https'"};
  }
  raw = nullptr;
  curl_url_get(parsed.get(), CURLUPART_HOST, &raw, 0);
  std::unique_ptr<char, PartDeleter> host(raw);
  if (host == nullptr || *host == '\0') return parsing("empty host");
  return std::nullopt;
}

absl::Status CheckHeaderLine(absl::string_view line) {
  if (line.find_first_of(absl::string_view("\r\n\0", 3)) == absl::string_view::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "refusing to send the header '", absl::CHexEscape(line), "': it contains CR, LF or NUL"));
}

}  // namespace cog
