// The JSON value type of the core: nlohmann::ordered_json, so that objects keep
// the order a client or the predictor gave them (Cog's responses do too).
#ifndef COG_SERVER_JSON_H_
#define COG_SERVER_JSON_H_

#include "nlohmann/json.hpp"

namespace cog {

using Json = nlohmann::ordered_json;

}  // namespace cog

#endif  // COG_SERVER_JSON_H_
