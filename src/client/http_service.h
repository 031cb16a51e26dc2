#pragma once
// HttpService: the HTTP/REST RemoteService (what MakeHttpService returns; contract, error
// and shared-memory policy in remote_service.h). Its transport speaks KServe v2 over
// HTTP/1.1 keep-alive connections with the binary tensor extension (inputs binary, outputs
// requested binary).
//
// Threading: one I/O thread, owned by the transport, runs every connection; Infer's
// callbacks run on it (keep them short, or hand the work off). Requests are encoded on
// the calling thread (and large inputs copied into shared memory there), then queued
// FIFO for the first free one of `options.connections` connections (one request per
// connection at a time; opened lazily, reopened after the server closed them).
// Sync methods block the caller on a one-off connection of their own (never queued behind
// Infer requests, and safe from an Infer callback).
//
// Ownership: the request's tensor Buffers are kept (not copied) until the request has
// been written; response outputs borrow the received body, which they keep alive.
// Destroying the service fails queued and in-flight calls with CANCELLED (each callback
// still runs exactly once, on the I/O thread), joins the thread and unregisters and
// unlinks the shared-memory regions. Destroying it from one of its own callbacks is
// allowed (the thread then finishes on its own).

#include "client/remote_service.h"

namespace quiver::client {

class HttpService final : public RemoteService {
 public:
  // Does not connect; see MakeHttpService.
  explicit HttpService(const RemoteOptions& options);
};

}  // namespace quiver::client
