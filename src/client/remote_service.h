#pragma once
// RemoteService: an InferenceService that forwards every call to one KServe v2 server
// (quiver serve, NVIDIA Triton, or the gateway) over HTTP/REST or gRPC. The Client
// (client.h) adds retries, failover and the in-flight window on top; a RemoteService
// tries each call once.
//
// Error policy of both transports:
//   - the server's own errors keep their code and message (HTTP status / gRPC code
//     mapped back through StatusCodeFromHttp / StatusCodeFromGrpc);
//   - connection refused/reset/closed mid-response and DNS failures are UNAVAILABLE,
//     the message naming the endpoint ("http://127.0.0.1:8000: connection refused");
//   - request.deadline passing is DEADLINE_EXCEEDED (the call is cancelled);
//   - a malformed response is INTERNAL naming the endpoint.
// Infer calls `done` exactly once, on a transport thread (or inline, before Infer
// returns, when the transport fails the call at once), never while holding a transport
// lock. Sync methods (metadata, config, index, ...) block the caller.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::client {

struct RemoteOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // HTTP: keep-alive connections in the pool (requests queue when all are busy).
  // gRPC: channels (each one HTTP/2 connection) used round-robin.
  size_t connections = 4;
  // Connecting gives up after this; so does every sync call (health, metadata, config,
  // statistics, index) but model load/unload, when the server does not answer.
  std::chrono::milliseconds connect_timeout{3000};
  // Use POSIX system shared memory for input tensors when the server is on this host
  // (loopback address); outputs always come back in the response. Regions
  // are created once, registered with the server and reused across calls. A server
  // that refuses a registration (remote, or in a container without this /dev/shm)
  // turns shared memory off for the service, with one log line.
  bool shared_memory = true;
  // Inputs smaller than this travel in the message even when shared memory is on
  // (registration and the extra round trip do not pay for tiny tensors).
  size_t shared_memory_min_bytes = 64 * 1024;
  // gRPC: max send/receive message size.
  int max_message_bytes = std::numeric_limits<int>::max();
};

// "http://host:port" / "grpc://host:port", for messages.
std::string EndpointName(std::string_view scheme, const RemoteOptions& options);

// Both construct without connecting; the first call connects (lazily), so creating a
// service for a server that is down succeeds and its calls fail with UNAVAILABLE.
std::shared_ptr<InferenceService> MakeHttpService(const RemoteOptions& options);
std::shared_ptr<InferenceService> MakeGrpcService(const RemoteOptions& options);

}  // namespace quiver::client
