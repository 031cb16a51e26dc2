#pragma once
// KServe v2 REST inference bodies with Triton's binary tensor data and shared-memory
// extensions: the server side (parse a request, encode a response) and the client side
// (encode a request, parse a response). No sockets here; the HTTP frontend and the HTTP
// client transport both use it.
//
// Body layout (extension_binary_data.md): a JSON header, then the binary tensor bytes of
// every tensor whose parameters carry "binary_data_size", concatenated in the order the
// tensors appear in the JSON. The HTTP header Inference-Header-Content-Length gives the
// JSON length; without it the whole body is JSON.
//
// Zero copy: binary tensors are Buffers borrowing the received body (kept alive through
// InferBody::keepalive) or a registered shared-memory region; responses are a JSON string
// plus the output Buffers themselves as a scatter-gather list. Only JSON "data" arrays are
// converted (and so copied).
//
// Error policy: malformed input gives INVALID_ARGUMENT naming the tensor and what was
// expected; features Quiver does not implement (classification, sequences, raw binary
// requests) give UNSUPPORTED. All functions are stateless and thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "protocol/shared_memory_ref.h"
#include "service/types.h"

namespace quiver::protocol {

// HTTP header carrying the JSON header's length when binary tensor data follows it.
inline constexpr std::string_view kInferHeaderContentLength = "Inference-Header-Content-Length";

// Readable bytes the JSON parser wants after the JSON text to parse it in place; with
// fewer, the JSON header (never the tensor bytes) is copied once.
inline constexpr size_t kJsonPadding = 64;

// How a tensor travels: inside the JSON ("data"), after it ("binary_data_size"), or in
// a shared-memory region.
enum class Transport : uint8_t { kJson, kBinary, kSharedMemory };

// One entry of the request's "outputs".
struct OutputRequest {
  OutputRequest() = default;
  explicit OutputRequest(std::string output, Transport how = Transport::kJson,
                         SharedMemoryRef where = {})
      : name(std::move(output)), transport(how), shm(std::move(where)) {}

  std::string name;
  Transport transport = Transport::kJson;
  SharedMemoryRef shm;  // meaningful for kSharedMemory
  // The region slice, resolved (and so validated) when the server parses the request; it
  // keeps the mapping alive until the response is written.
  std::optional<Buffer> destination;
};

// How the response returns outputs: each requested output as asked, every other output
// with `default_transport` (kBinary when the request set "binary_data_output": true).
struct ResponsePlan {
  Transport default_transport = Transport::kJson;
  std::vector<OutputRequest> outputs;
  // The explicit request for `name`, or nullptr.
  const OutputRequest* Find(std::string_view name) const;
};

// A received HTTP body.
struct InferBody {
  std::span<const std::byte> bytes;
  // Readable bytes that follow `bytes` in memory (kJsonPadding or more avoids a copy).
  size_t padding = 0;
  // Owns `bytes`; binary tensors borrow it, so it lives as long as they do.
  std::shared_ptr<const void> keepalive;
  // Inference-Header-Content-Length when the request carried it.
  std::optional<uint64_t> header_length;
};

// A parsed inference request and how its response must be shaped.
struct ParsedInferRequest {
  InferRequest request;  // model and version as passed in; requested_outputs from "outputs"
  ResponsePlan plan;
};

// Server side: parses an infer request body for `model`/`version` (taken from the URL).
// Inputs and outputs in shared memory are resolved through `shm` (nullptr: they are
// UNSUPPORTED), so an unknown region or a slice out of bounds fails before inference. Checks: JSON well-formed; each input has name, datatype (a KServe name),
// shape (non-negative integers) and exactly one of data / binary_data_size /
// shared_memory_region; JSON data holds exactly as many elements as the shape and values
// of the declared type; fixed-size binary and shm tensors have shape x type-size bytes;
// binary sizes add up to the bytes after the header.
Result<ParsedInferRequest> ParseInferRequest(const InferBody& body, std::string_view model,
                                             std::string_view version,
                                             const SharedMemoryResolver* shm);

// An encoded body: `json` then each of `binary`, in order.
struct EncodedBody {
  std::string json;
  std::vector<Buffer> binary;
  // The Inference-Header-Content-Length value to send, when binary data follows.
  std::optional<size_t> header_length() const {
    return binary.empty() ? std::nullopt : std::optional<size_t>(json.size());
  }
  size_t size() const;
  // The body as one contiguous string (tests, small messages).
  std::string Flatten() const;
};

// Server side: encodes `response` following `plan`. Outputs planned for shared memory are
// first copied into their region (INVALID_ARGUMENT if the region slice is too small) and
// then reported with name, datatype and shape only, as Triton does. FP16/BF16 outputs
// cannot be returned as JSON (INVALID_ARGUMENT, as Triton).
Result<EncodedBody> EncodeInferResponse(const InferResponse& response, const ResponsePlan& plan,
                                        const SharedMemoryResolver* shm);

// Client side: how one input travels (kSharedMemory needs `shm`).
struct InputEncoding {
  Transport transport = Transport::kBinary;
  SharedMemoryRef shm;
};

// Client side: encodes `request` (id, timeout, priority, inputs, outputs). `inputs` is
// parallel to request.inputs (missing entries: binary). Outputs come from `plan`; when
// plan.outputs is empty, request.requested_outputs are asked for with
// plan.default_transport, and if both are empty "binary_data_output" carries it.
Result<EncodedBody> EncodeInferRequest(const InferRequest& request,
                                       std::span<const InputEncoding> inputs,
                                       const ResponsePlan& plan);

// Client side: parses a response body. Outputs returned in shared memory have an empty
// Buffer (their bytes are in the region); binary outputs borrow `body` and, for fixed-size
// types, must carry exactly shape x type size bytes (else INVALID_ARGUMENT).
Result<InferResponse> ParseInferResponse(const InferBody& body);

}  // namespace quiver::protocol
