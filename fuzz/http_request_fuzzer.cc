// Bytes a client sends on an HTTP connection, as the front door reads them:
// RequestHeadScanner (given the bytes in two pieces, as they may arrive),
// ParseRequestHead on a head it accepts, and ChunkedBodyDecoder on what
// follows. Nothing may crash, and what a piece-by-piece scan decides must be
// what a whole scan decides.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/http_framing.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

cog::RequestLimits Limits() {
  cog::RequestLimits limits;
  limits.max_header_bytes = 4096;
  limits.max_headers = 20;
  limits.max_body_bytes = 1 << 20;
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte says where the bytes are split in two arrivals.
  const size_t split = data[0] % size;
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  cog::RequestHeadScanner whole(Limits());
  const cog::RequestHeadScanner::Result at_once = whole.Scan(bytes);
  cog::RequestHeadScanner pieces(Limits());
  cog::RequestHeadScanner::Result in_pieces = pieces.Scan(bytes.substr(0, split));
  if (in_pieces == cog::RequestHeadScanner::Result::kIncomplete) in_pieces = pieces.Scan(bytes);
  Check(in_pieces == at_once);
  if (at_once == cog::RequestHeadScanner::Result::kRefused) {
    Check(whole.refusal().status >= 400 && !whole.refusal().detail.empty());
    Check(pieces.refusal().status == whole.refusal().status);
    return 0;
  }
  if (at_once != cog::RequestHeadScanner::Result::kComplete) return 0;
  Check(pieces.head_size() == whole.head_size());
  Check(whole.head_size() <= bytes.size() && whole.head_size() <= Limits().max_header_bytes);
  Check(whole.body().kind != cog::BodyFraming::Kind::kLength ||
        whole.body().length <= Limits().max_body_bytes);

  cog::HttpRequest request;
  cog::ParsedHead parsed;
  const std::optional<cog::Refusal> refusal =
      cog::ParseRequestHead(bytes.substr(0, whole.head_size()), &request, &parsed);
  if (refusal.has_value()) {
    Check(refusal->status >= 400 && !refusal->detail.empty());
  } else {
    Check(!request.method.empty() && !request.path.empty());
    Check(request.headers.size() <= Limits().max_headers);
    Check(request.path.size() <= request.target.size());
    Check(parsed.http_minor == 0 || parsed.http_minor == 1);
  }

  if (whole.body().kind == cog::BodyFraming::Kind::kChunked) {
    const absl::string_view body = bytes.substr(whole.head_size());
    cog::ChunkedBodyDecoder decoder;
    size_t consumed = 0;
    uint64_t data_bytes = 0;
    for (int steps = 0; steps < 100000; ++steps) {
      const cog::ChunkedBodyDecoder::State state = decoder.Advance(body, &consumed);
      Check(consumed <= body.size());
      if (state != cog::ChunkedBodyDecoder::State::kData) break;
      const size_t n = static_cast<size_t>(
          std::min<uint64_t>(decoder.data_remaining(), body.size() - consumed));
      if (n == 0) break;  // the data has not arrived
      decoder.TakeData(n);
      consumed += n;
      data_bytes += n;
    }
    Check(data_bytes <= decoder.announced());
  }
  return 0;
}
