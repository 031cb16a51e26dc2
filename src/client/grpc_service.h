#pragma once
// GrpcService: the gRPC RemoteService (MakeGrpcService in remote_service.h; contract,
// error and shared-memory policy there). Its transport speaks
// inference.GRPCInferenceService (Triton-compatible).
//
// Thread model: Infer encodes on the caller's thread and starts an asynchronous call
// (gRPC callback API, any number in flight); `done` runs on a gRPC thread, or inline in
// Infer when gRPC completes the call at once (e.g. a deadline already past), never with
// a lock of this class held. Calls go round-robin over `connections` channels, each its
// own HTTP/2 connection. Sync methods block the caller on the blocking stub. Every
// method is thread-safe.
//
// Ownership: Infer takes the request; input bytes that travel in the message are sent
// from the request's Buffers without a copy (kept alive until gRPC has sent them: do not
// write to them before `done`). Response outputs borrow the received message (zero-copy).
// Destroying the service cancels calls in flight and returns once every `done` has run.
// Destroyed from inside one of its own `done`s (on a gRPC thread, which must not wait for
// the others: they may need that very thread), it cancels the rest and returns at once;
// they finish shortly after with CANCELLED, touching nothing of the destroyed object.

#include "client/remote_service.h"

namespace quiver::client {

class GrpcService final : public RemoteService {
 public:
  // Does not connect; see MakeGrpcService.
  explicit GrpcService(const RemoteOptions& options);
};

}  // namespace quiver::client
