// POST v2/models/{m}[/versions/{v}]/infer: parse (zero copy), hand to the service,
// and encode the response on the connection's executor when the service calls back.

#include <charconv>
#include <utility>

#include "frontend/http_router.h"
#include "protocol/http_compression.h"

namespace quiver::frontend {
namespace {

using protocol::ContentEncoding;

// Builds the reply for a successful inference (runs on the connection's executor).
void EncodeReply(const InferResponse& response, const protocol::ResponsePlan& plan,
                 const protocol::SharedMemoryResolver* resolver, ContentEncoding encoding,
                 HttpReply& reply) {
  auto encoded = protocol::EncodeInferResponse(response, plan, resolver);
  if (!encoded.ok()) {
    reply = HttpReply::Error(encoded.status());
    return;
  }
  reply.status = 200;
  reply.header_length = encoded->header_length();
  reply.content_type = reply.header_length ? "application/octet-stream" : "application/json";
  if (encoding == ContentEncoding::kGzip || encoding == ContentEncoding::kDeflate) {
    std::vector<std::span<const std::byte>> pieces;
    pieces.reserve(1 + encoded->binary.size());
    pieces.emplace_back(reinterpret_cast<const std::byte*>(encoded->json.data()),
                        encoded->json.size());
    for (const Buffer& b : encoded->binary) pieces.emplace_back(b.bytes());
    auto compressed = protocol::Compress(encoding, pieces);
    if (compressed.ok()) {
      // Inference-Header-Content-Length keeps counting the uncompressed JSON (Triton).
      reply.body = std::move(compressed).value();
      reply.headers.emplace_back("Content-Encoding",
                                 std::string(protocol::ContentEncodingName(encoding)));
      return;
    }
    // Compression is best effort: fall back to an uncompressed reply.
  }
  reply.body = std::move(encoded->json);
  reply.chunks = std::move(encoded->binary);
}

}  // namespace

void HttpRouter::HandleInfer(const HttpRequest& request, const HttpRoute& route, std::string tenant,
                             HttpResponder& respond) {
  protocol::InferBody body;
  body.bytes = request.body;
  body.padding = request.body_padding;
  body.keepalive = request.keepalive;

  const ContentEncoding request_encoding = protocol::ParseContentEncoding(request.content_encoding);
  if (request_encoding == ContentEncoding::kUnknown) {
    HttpReply reply = HttpReply::Error(Status::Unsupported(
        "Unsupported compression type '" + std::string(request.content_encoding) +
        "'; supported: gzip, deflate"));
    reply.headers.emplace_back("Accept-Encoding", "gzip, deflate");
    respond(std::move(reply));
    return;
  }
  if (request_encoding != ContentEncoding::kIdentity) {
    auto inflated = protocol::Decompress(request_encoding, request.body, max_body_bytes_,
                                         protocol::kJsonPadding);
    if (!inflated.ok()) {
      respond(HttpReply::Error(inflated.status()));
      return;
    }
    auto holder = std::make_shared<Buffer>(std::move(inflated).value());
    body.bytes = holder->bytes();
    body.padding = protocol::kJsonPadding;
    body.keepalive = holder;
  }

  if (request.header_length.has_value()) {
    const std::string_view text = *request.header_length;
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
      respond(HttpReply::Error(Status::InvalidArgument(
          "Unable to parse " + std::string(protocol::kInferHeaderContentLength) +
          ", got: " + std::string(text))));
      return;
    }
    body.header_length = value;
  }

  auto parsed = protocol::ParseInferRequest(body, route.model, route.version, &shm_);
  if (!parsed.ok()) {
    respond(HttpReply::Error(parsed.status()));
    return;
  }
  parsed->request.tenant = std::move(tenant);
  parsed->request.caller_serves_io = true;
  const protocol::SharedMemoryResolver* resolver = &shm_;
  const ContentEncoding response_encoding =
      request.accept_encoding.empty() ? ContentEncoding::kIdentity
                                      : protocol::NegotiateResponseEncoding(request.accept_encoding);
  service_.Infer(
      std::move(parsed->request),
      [plan = std::move(parsed->plan), resolver, response_encoding,
       respond = std::move(respond)](Result<InferResponse> result) mutable {
        if (!result.ok()) {
          respond(HttpReply::Error(result.status()));
          return;
        }
        // Encoding (JSON data, copies into shared memory, compression) is deferred to the
        // connection's executor so that the backend's thread returns to inference at once.
        HttpReply reply;
        reply.delivery_batch = std::exchange(result->delivery_batch, nullptr);
        reply.prepare = [plan = std::move(plan), resolver, response_encoding,
                         response = std::move(result).value()](HttpReply& r) {
          EncodeReply(response, plan, resolver, response_encoding, r);
        };
        respond(std::move(reply));
      });
}

}  // namespace quiver::frontend
