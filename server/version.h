// The version cog-server reports (/health-check, User-Agent, the runner handshake).
#ifndef COG_SERVER_VERSION_H_
#define COG_SERVER_VERSION_H_

namespace cog {

inline constexpr char kServerVersion[] = "0.1.0";

// The Cog release whose HTTP API this server speaks, reported as `cog_version`
// by GET / so that clients that choose features by it (webhook filters,
// idempotent PUT, cancel) treat this server like that release.
inline constexpr char kCogApiVersion[] = "0.16.12";

}  // namespace cog

#endif  // COG_SERVER_VERSION_H_
