// The version cog-server reports (/health-check, User-Agent, the runner handshake).
#ifndef COG_SERVER_VERSION_H_
#define COG_SERVER_VERSION_H_

namespace cog {

inline constexpr char kServerVersion[] = "0.1.0";

}  // namespace cog

#endif  // COG_SERVER_VERSION_H_
