#pragma once
// HttpService: the HTTP/REST RemoteService (what MakeHttpService returns; contract and
// error policy in remote_service.h). Forwards every InferenceService call to one KServe
// v2 server over HTTP/1.1 keep-alive connections, with the binary tensor extension
// (inputs binary, outputs requested binary) and, for a server on this host, system
// shared memory for large inputs.
//
// Threading: one I/O thread, owned by the service, runs every connection; Infer's
// callbacks run on it (keep them short, or hand the work off). Requests are encoded on
// the calling thread (and large inputs copied into shared memory there), then queued
// FIFO for the first free one of `options.connections` connections (one request per
// connection at a time; opened lazily, reopened after the server closed them).
// Sync methods block the caller on a one-off connection of their own (never queued behind
// Infer requests, and safe from an Infer callback); all but Load/Unload give up after
// options.connect_timeout with DEADLINE_EXCEEDED when the server does not answer.
//
// Ownership: the request's tensor Buffers are kept (not copied) until the request has
// been written; response outputs borrow the received body, which they keep alive.
// Destroying the service fails queued and in-flight calls with CANCELLED (each callback
// still runs exactly once, on the I/O thread), joins the thread and unregisters and
// unlinks the shared-memory regions. Destroying it from one of its own callbacks is
// allowed (the thread then finishes on its own).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/remote_service.h"
#include "service/inference_service.h"

namespace quiver::client {

class HttpService final : public InferenceService {
 public:
  // Does not connect; see MakeHttpService.
  explicit HttpService(const RemoteOptions& options);
  ~HttpService() override;
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  bool Live() const override;
  bool Ready() const override;
  Result<ServerMetadata> GetServerMetadata() const override;
  Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                         std::string_view version) const override;
  Result<ModelConfig> GetModelConfig(std::string_view model,
                                     std::string_view version) const override;
  bool ModelReady(std::string_view model, std::string_view version) const override;
  void Infer(InferRequest request, InferCallback done) override;
  Result<RepositoryIndex> Index() override;
  Status Load(std::string_view model) override;
  Status Unload(std::string_view model) override;
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override;

  // "http://host:port".
  const std::string& endpoint() const;
  // Whether large inputs still go through shared memory: options.shared_memory, a
  // loopback host, and no registration refused by the server so far.
  bool SharedMemoryActive() const;
  // Shared-memory regions created so far (reuse keeps this small); 0 without shm.
  size_t SharedMemoryRegionCount() const;

 private:
  class Core;
  std::shared_ptr<Core> core_;
};

}  // namespace quiver::client
