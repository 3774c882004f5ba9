#include "server/outbound_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cog {
namespace {

using ::testing::HasSubstr;

// A socket address for `text` (IPv4 or IPv6), as curl hands one to the
// open-socket callback.
sockaddr_storage Address(const std::string& text) {
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    ADD_FAILURE() << "not an address: " << text;
  }
  return storage;
}

bool Allows(const OutboundPolicy& policy, const std::string& address) {
  const sockaddr_storage storage = Address(address);
  return policy.Allows(reinterpret_cast<const sockaddr*>(&storage));
}

TEST(OutboundPolicyTest, TheDefaultBlocksLinkLocalAndMetadataAddresses) {
  const OutboundPolicy policy;
  EXPECT_FALSE(Allows(policy, "169.254.169.254"));
  EXPECT_FALSE(Allows(policy, "169.254.0.0"));
  EXPECT_FALSE(Allows(policy, "169.254.255.255"));
  EXPECT_FALSE(Allows(policy, "fe80::1"));
  EXPECT_FALSE(Allows(policy, "febf:ffff::1"));
  EXPECT_FALSE(Allows(policy, "fd00:ec2::254"));
  // The same metadata address, written as IPv6.
  EXPECT_FALSE(Allows(policy, "::ffff:169.254.169.254"));

  EXPECT_TRUE(Allows(policy, "169.253.255.255"));
  EXPECT_TRUE(Allows(policy, "169.255.0.0"));
  EXPECT_TRUE(Allows(policy, "127.0.0.1"));
  EXPECT_TRUE(Allows(policy, "8.8.8.8"));
  EXPECT_TRUE(Allows(policy, "fec0::1"));
  EXPECT_TRUE(Allows(policy, "fd00:ec2::253"));
  EXPECT_TRUE(Allows(policy, "::1"));
  EXPECT_TRUE(Allows(policy, "::ffff:127.0.0.1"));
}

TEST(OutboundPolicyTest, TheDefaultIsTheDocumentedList) {
  absl::StatusOr<OutboundPolicy> parsed = OutboundPolicy::Parse(OutboundPolicy::kDefaultDenyCidrs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (const char* address : {"169.254.1.2", "fe80::abcd", "fd00:ec2::254", "10.0.0.1", "::1"}) {
    EXPECT_EQ(Allows(*parsed, address), Allows(OutboundPolicy(), address)) << address;
  }
}

TEST(OutboundPolicyTest, AnEmptyListAllowsEverything) {
  for (const char* list : {"", " ", ",,"}) {
    absl::StatusOr<OutboundPolicy> policy = OutboundPolicy::Parse(list);
    ASSERT_TRUE(policy.ok()) << policy.status();
    EXPECT_TRUE(Allows(*policy, "169.254.169.254"));
    EXPECT_TRUE(Allows(*policy, "fe80::1"));
  }
}

TEST(OutboundPolicyTest, PrefixesMatchBitByBit) {
  absl::StatusOr<OutboundPolicy> policy = OutboundPolicy::Parse("10.0.0.0/8, 192.168.4.0/22,2001:db8:8000::/33");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(Allows(*policy, "10.1.2.3"));
  EXPECT_TRUE(Allows(*policy, "11.0.0.0"));
  EXPECT_FALSE(Allows(*policy, "192.168.4.0"));
  EXPECT_FALSE(Allows(*policy, "192.168.7.255"));
  EXPECT_TRUE(Allows(*policy, "192.168.8.0"));
  EXPECT_TRUE(Allows(*policy, "192.168.3.255"));
  EXPECT_FALSE(Allows(*policy, "2001:db8:8000::1"));
  EXPECT_FALSE(Allows(*policy, "2001:db8:ffff::1"));
  EXPECT_TRUE(Allows(*policy, "2001:db8:7fff::1"));
  // An IPv4 rule never matches an IPv6 address that is not IPv4-mapped.
  EXPECT_TRUE(Allows(*policy, "::a00:1"));
  EXPECT_FALSE(Allows(*policy, "::ffff:10.0.0.1"));
}

TEST(OutboundPolicyTest, ZeroPrefixesCoverTheirWholeFamily) {
  absl::StatusOr<OutboundPolicy> v4 = OutboundPolicy::Parse("0.0.0.0/0");
  ASSERT_TRUE(v4.ok());
  EXPECT_FALSE(Allows(*v4, "1.2.3.4"));
  EXPECT_FALSE(Allows(*v4, "::ffff:1.2.3.4"));
  EXPECT_TRUE(Allows(*v4, "2001:db8::1"));
  absl::StatusOr<OutboundPolicy> v6 = OutboundPolicy::Parse("::/0");
  ASSERT_TRUE(v6.ok());
  EXPECT_FALSE(Allows(*v6, "2001:db8::1"));
  EXPECT_TRUE(Allows(*v6, "1.2.3.4"));
}

TEST(OutboundPolicyTest, AnAddressWithoutPrefixIsOneHost) {
  absl::StatusOr<OutboundPolicy> policy = OutboundPolicy::Parse("127.0.0.1,::1");
  ASSERT_TRUE(policy.ok());
  EXPECT_FALSE(Allows(*policy, "127.0.0.1"));
  EXPECT_TRUE(Allows(*policy, "127.0.0.2"));
  EXPECT_FALSE(Allows(*policy, "::1"));
  EXPECT_TRUE(Allows(*policy, "::2"));
}

TEST(OutboundPolicyTest, AnIpv4MappedRangeIsTheIpv4Range) {
  absl::StatusOr<OutboundPolicy> policy = OutboundPolicy::Parse("::ffff:127.0.0.0/104");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(Allows(*policy, "127.1.2.3"));
  EXPECT_FALSE(Allows(*policy, "::ffff:127.1.2.3"));
  EXPECT_TRUE(Allows(*policy, "128.0.0.1"));
}

TEST(OutboundPolicyTest, MistakesNameTheEntry) {
  for (const char* bad : {"169.254.0.0/33", "fe80::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8x",
                          "example.com", "10.0.0.1/8", "1.2.3", "fe80::/10/2"}) {
    absl::StatusOr<OutboundPolicy> policy = OutboundPolicy::Parse(absl::StrCat("127.0.0.1,", bad));
    ASSERT_FALSE(policy.ok()) << bad;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(policy.status().message(), HasSubstr("--outbound-deny-cidrs"));
    EXPECT_THAT(policy.status().message(), HasSubstr(bad));
  }
}

TEST(OutboundPolicyTest, AddressTextIsThePlainAddress) {
  sockaddr_storage v4 = Address("169.254.169.254");
  EXPECT_EQ(OutboundPolicy::AddressText(reinterpret_cast<sockaddr*>(&v4)), "169.254.169.254");
  sockaddr_storage v6 = Address("fd00:ec2::254");
  EXPECT_EQ(OutboundPolicy::AddressText(reinterpret_cast<sockaddr*>(&v6)), "fd00:ec2::254");
}

TEST(CheckHttpUrlTest, AcceptsAbsoluteHttpAndHttpsUrlsWithAHost) {
  for (const char* url : {"http://example.com", "https://example.com/hook?x=1#y",
                          "http://127.0.0.1:8080/a", "http://[::1]:9/x", "HTTPS://Example.com/",
                          "http://user:pw@example.com/"}) {
    EXPECT_EQ(CheckHttpUrl(url), std::nullopt) << url;
  }
}

TEST(CheckHttpUrlTest, OtherSchemesAreUrlSchemeErrors) {
  for (const char* url : {"gopher://127.0.0.1:6379/_x", "file:///etc/passwd", "dict://127.0.0.1:11211/",
                          "telnet://127.0.0.1:23", "ftp://example.com/", "ldap://x/", "data:text/plain,hi",
                          "mailto:a@example.com", "javascript:alert(1)"}) {
    std::optional<UrlProblem> problem = CheckHttpUrl(url);
    ASSERT_TRUE(problem.has_value()) << url;
    EXPECT_EQ(problem->type, "url_scheme") << url;
    EXPECT_EQ(problem->msg, "URL scheme should be 'http' or 'https'");
  }
}

TEST(CheckHttpUrlTest, WhatIsNoUrlIsAParsingError) {
  for (std::string url : {std::string("not a url"), std::string(""), std::string("/relative/path"),
                          std::string("http://"), std::string("http://:80/no-host"),
                          std::string("http://exa mple.com/"), std::string("http://x/\r\nHost: y"),
                          std::string("http://x/\0y", 11)}) {
    std::optional<UrlProblem> problem = CheckHttpUrl(url);
    ASSERT_TRUE(problem.has_value()) << url;
    EXPECT_EQ(problem->type, "url_parsing") << url;
    EXPECT_THAT(problem->msg, HasSubstr("Input should be a valid URL")) << url;
  }
  EXPECT_EQ(CheckHttpUrl("not a url")->msg, "Input should be a valid URL, relative URL without a base");
}

TEST(CheckHeaderLineTest, RefusesLineBreaksAndNul) {
  EXPECT_TRUE(CheckHeaderLine("X-Prediction-ID: abc-123").ok());
  EXPECT_TRUE(CheckHeaderLine("tracestate: a=b,c=d\t").ok());
  for (std::string line : {std::string("X-Prediction-ID: a\r\nX-Evil: 1"), std::string("X: a\nb"),
                           std::string("X: a\rb"), std::string("X: a\0b", 7)}) {
    absl::Status status = CheckHeaderLine(line);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << line;
    // The message shows the line escaped, never the raw bytes.
    EXPECT_EQ(std::string(status.message()).find_first_of(std::string("\r\n\0", 3)), std::string::npos);
  }
}

TEST(RedactUrlTest, HidesAPasswordOnly) {
  EXPECT_EQ(RedactUrl("http://user:secret@host:8080/path?q=a@b"), "http://user:***@host:8080/path?q=a@b");
  EXPECT_EQ(RedactUrl("https://user@host/x"), "https://user@host/x");  // no password
  EXPECT_EQ(RedactUrl("https://host/x?to=a:b@c"), "https://host/x?to=a:b@c");  // not the authority
  EXPECT_EQ(RedactUrl("http://a:b:c@h"), "http://a:***@h");
  EXPECT_EQ(RedactUrl("no url"), "no url");
}

TEST(WithoutUserinfoTest, DropsUserAndPasswordFromTheAuthorityOnly) {
  EXPECT_EQ(WithoutUserinfo("http://user:secret@host:8080/path?q=a@b"), "http://host:8080/path?q=a@b");
  EXPECT_EQ(WithoutUserinfo("https://user@host/x"), "https://host/x");
  EXPECT_EQ(WithoutUserinfo("https://host/x?to=a:b@c"), "https://host/x?to=a:b@c");
}

}  // namespace
}  // namespace cog
