// The one conversion from the core's absl::Status to grpc::Status.
#ifndef COG_SERVER_GRPC_STATUS_H_
#define COG_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cog {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace cog

#endif  // COG_SERVER_GRPC_STATUS_H_
