// The one conversion from the core's absl::Status to an HTTP status and a Cog
// error body ({"detail": "..."} or, for invalid input, the 422 list).
#ifndef COG_GATEWAY_HTTP_STATUS_H_
#define COG_GATEWAY_HTTP_STATUS_H_

#include "absl/status/status.h"
#include "server/json.h"

namespace cog {

int HttpStatusFor(const absl::Status& status);
Json ErrorBody(const absl::Status& status);

}  // namespace cog

#endif  // COG_GATEWAY_HTTP_STATUS_H_
