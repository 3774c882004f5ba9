// data: URI decoding (DecodeDataUri): any text either decodes or is refused,
// the server's base64 encoder (AppendBase64) writes what absl writes,
// and what PredictionFiles would be given by an honest client round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "server/prediction_files.h"

namespace {

std::string PercentEncodeAll(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back('%');
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  // Anything, with and without the scheme.
  (void)cog::DecodeDataUri(bytes);
  const std::string uri = "data:" + std::string(bytes);
  absl::StatusOr<std::string> decoded = cog::DecodeDataUri(uri);
  if (decoded.ok()) {
    // Decoding never makes data longer than the text it came from.
    Check(decoded->size() <= uri.size());
  }

  // What a client would send for these bytes decodes back to them.
  Check(*cog::DecodeDataUri("data:application/octet-stream;base64," +
                            absl::Base64Escape(bytes)) == bytes);
  // The server's own encoder (output files as data: URIs) writes what absl
  // writes, after whatever the string already held.
  std::string ours = "data:;base64,";
  cog::AppendBase64(bytes, &ours);
  Check(ours == "data:;base64," + absl::Base64Escape(bytes));
  Check(*cog::DecodeDataUri("data:," + PercentEncodeAll(bytes)) == bytes);
  // Text without '%' is its own encoding.
  if (bytes.find('%') == absl::string_view::npos) {
    Check(*cog::DecodeDataUri("data:text/plain," + std::string(bytes)) == bytes);
  }
  return 0;
}
