// Conversions between the core's Json and google.protobuf.Value / Struct, for
// the gRPC API. Integers that fit a double exactly stay exact; protobuf's Value
// has only doubles, so larger ones lose precision, as in any JSON client.
#ifndef COG_SERVER_JSON_PROTO_H_
#define COG_SERVER_JSON_PROTO_H_

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "absl/time/time.h"
#include "server/json.h"

namespace cog {

void JsonToValue(const Json& json, google::protobuf::Value* value);
// Fills `out` with the members of `json`, which should be an object.
void JsonToStruct(const Json& json, google::protobuf::Struct* out);
Json ValueToJson(const google::protobuf::Value& value);
Json StructToJson(const google::protobuf::Struct& value);

// The nesting of lists and objects in `value` as JSON (an empty Struct is 1),
// counted no further than `limit` + 1: a caller comparing with `limit` need
// not walk the whole of a deeper one.
int StructDepth(const google::protobuf::Struct& value, int limit);

void TimeToTimestamp(absl::Time time, google::protobuf::Timestamp* timestamp);
absl::Time TimestampToTime(const google::protobuf::Timestamp& timestamp);

}  // namespace cog

#endif  // COG_SERVER_JSON_PROTO_H_
