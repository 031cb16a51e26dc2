#pragma once
// The REST routes of quiver_echo_server (KServe v2, binary tensor extension) for one
// EchoModel, apart from the Beast connection that carries them (echo_http.cc).

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "bench/echo_model.h"
#include "frontend/http_body.h"

namespace quiver::bench {

// A received request; `body` is followed in memory by `padding` readable bytes.
struct EchoHttpRequest {
  bool post = false;  // else GET (other methods get 405)
  bool get = false;
  std::string_view target;
  std::span<const std::byte> body;
  size_t padding = 0;
  std::shared_ptr<const void> keepalive;          // owns `body`; echoed tensors borrow it
  std::optional<std::string_view> header_length;  // Inference-Header-Content-Length
};

struct EchoHttpReply {
  unsigned status = 200;
  std::string_view content_type = "application/json";
  std::optional<size_t> header_length;  // Inference-Header-Content-Length of the reply
  frontend::GatherBody::value_type body;
};

// GET /v2, /v2/health/{live,ready}, /v2/models/M[/versions/V][/ready|/config|/stats];
// POST .../infer: binary tensors only (each input's "binary_data_size"), echoed as
// outputs (EchoModel::OutputName) whose bytes borrow the request body. Errors are
// {"error": ...} with 400 / 404 / 405.
EchoHttpReply RouteEchoHttp(EchoModel& model, const EchoHttpRequest& request);

}  // namespace quiver::bench
