// The one conversion from the core's absl::Status to grpc::Status.
#ifndef COG_SERVER_GRPC_STATUS_H_
#define COG_SERVER_GRPC_STATUS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace cog {

// gRPC sends a status's message as a header (grpc-message, non-ASCII bytes
// percent-encoded, three bytes each). Past the client's metadata limit (8 KiB
// by default) the client reports RESOURCE_EXHAUSTED instead, which this API
// documents as "busy, retry": a 422-like error quoting a long input became
// one a client would retry for ever. So a message is cut to this many bytes.
inline constexpr size_t kMaxGrpcMessageBytes = 1536;

inline std::string GrpcMessage(absl::string_view message) {
  if (message.size() <= kMaxGrpcMessageBytes) return std::string(message);
  size_t cut = kMaxGrpcMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;  // a whole character
  return absl::StrCat(message.substr(0, cut), "... (", message.size() - cut,
                      " bytes more, cut to fit a gRPC status)");
}

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), GrpcMessage(status.message()));
}

}  // namespace cog

#endif  // COG_SERVER_GRPC_STATUS_H_
