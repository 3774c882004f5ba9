// Outbound requests: what the server's own HTTP clients (webhooks, Path
// downloads, Path uploads) may do when a caller chooses where they go.
//
// * OutboundPolicy: a CIDR deny list (--outbound-deny-cidrs), checked against
//   the address libcurl is about to connect to, for every connection of every
//   handle (also after redirects and DNS answers that change), so that a
//   caller cannot make the server reach its cloud's metadata service or other
//   link-local neighbours. It sees the address the socket goes to: behind an
//   HTTP proxy (http_proxy, https_proxy) that is the proxy's.
// * OutboundGuard: applies the policy and the protocol restriction (http and
//   https only, also after redirects) to one curl handle. Every handle the
//   server makes goes through it, so they are all configured alike.
// * CheckHttpUrl / CheckHeaderLine: what a caller's URL or header value must be
//   before anything is sent.
//
// OutboundPolicy is immutable once made and safe to share between threads.
// An OutboundGuard belongs to one transfer (see its comment).
#ifndef COG_SERVER_OUTBOUND_POLICY_H_
#define COG_SERVER_OUTBOUND_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cog {

class OutboundPolicy {
 public:
  // Link-local addresses, where clouds serve instance metadata and credentials
  // (169.254.169.254, AWS's fd00:ec2::254).
  static constexpr char kDefaultDenyCidrs[] = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128";

  // The default deny list.
  OutboundPolicy();

  // Parses a comma-separated list of IPv4 and IPv6 CIDRs ("10.0.0.0/8,
  // fc00::/7"); an address without a prefix length is one host. An IPv6 range
  // inside ::ffff:0:0/96 means the IPv4 addresses it maps. An empty list
  // allows everything. InvalidArgument, naming the entry, for anything else
  // (also host bits set beyond the prefix, a likely typo).
  static absl::StatusOr<OutboundPolicy> Parse(absl::string_view cidrs);

  // Whether a connection to `address` (AF_INET or AF_INET6; an IPv4-mapped
  // IPv6 address counts as the IPv4 one) is allowed. Other families (a Unix
  // socket the server chose itself) are.
  bool Allows(const sockaddr* address) const;

  // The address of `address` as text ("169.254.169.254", "fe80::1").
  static std::string AddressText(const sockaddr* address);

 private:
  struct Range {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4
    int prefix = 0;
  };
  explicit OutboundPolicy(std::vector<Range> deny) : deny_(std::move(deny)) {}
  static std::optional<Range> ParseRange(absl::string_view text, std::string* error);
  static bool Contains(const Range& range, bool v6, const uint8_t* bytes);

  std::vector<Range> deny_;
};

// Makes one curl handle safe to point at a caller's URL: http and https only,
// also after redirects (CURLOPT_PROTOCOLS_STR, CURLOPT_REDIR_PROTOCOLS_STR);
// every socket it opens is checked against the policy first
// (CURLOPT_OPENSOCKETFUNCTION), and opened close-on-exec so that the runner
// child does not inherit it; no signals (CURLOPT_NOSIGNAL).
//
// The handle keeps pointers to the guard and the policy: both must outlive
// the handle's transfers, and the guard must not move (hence no copies). Used
// by the one thread that drives the handle.
class OutboundGuard {
 public:
  explicit OutboundGuard(const OutboundPolicy* policy) : policy_(policy) {}
  OutboundGuard(const OutboundGuard&) = delete;
  OutboundGuard& operator=(const OutboundGuard&) = delete;

  void ApplyTo(CURL* curl);

  // Once the policy refused a connection: "refused to connect to
  // 169.254.169.254: blocked by --outbound-deny-cidrs". Else empty. A
  // transfer that failed with CURLE_COULDNT_CONNECT and has this set failed
  // because of the policy; the message says so better than curl's own.
  const std::string& refusal() const { return refusal_; }

 private:
  static curl_socket_t OpenSocket(void* guard, curlsocktype purpose, curl_sockaddr* address);

  const OutboundPolicy* const policy_;
  std::string refusal_;
};

// Why a URL cannot be a destination of the server's requests (a webhook, an
// output_file_prefix), in pydantic's words: the `type` and `msg` of a 422
// detail entry.
struct UrlProblem {
  std::string type;  // "url_parsing" or "url_scheme"
  std::string msg;   // "Input should be a valid URL, ...", "URL scheme should be 'http' or 'https'"
};

// Empty when `url` is an absolute http:// or https:// URL with a host, as
// libcurl parses it (no spaces, control characters or NUL bytes).
std::optional<UrlProblem> CheckHttpUrl(absl::string_view url);

// `url` as it may be logged or shown: a password in it ("user:secret@host")
// becomes "***" ("user:***@host"). A webhook's or upload's URL may carry one.
std::string RedactUrl(absl::string_view url);

// `url` without its user name and password ("http://u:p@host/x" →
// "http://host/x"): what an uploaded file's URL is given back as.
std::string WithoutUserinfo(absl::string_view url);

// OK unless a "Name: value" header line carries CR, LF or NUL, which would
// end the header early and let the rest become headers or a body of its own
// (header injection). The message shows the line escaped.
absl::Status CheckHeaderLine(absl::string_view line);

}  // namespace cog

#endif  // COG_SERVER_OUTBOUND_POLICY_H_
