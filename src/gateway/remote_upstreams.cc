#include "gateway/remote_upstreams.h"

#include "client/remote_service.h"
#include "client/url.h"

namespace quiver::gateway {
namespace {

Result<std::shared_ptr<InferenceService>> OpenRemote(size_t connections,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& url) {
  auto parsed = client::ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  client::RemoteOptions remote;
  remote.host = parsed->host;
  remote.port = parsed->port;
  remote.connections = connections;
  remote.connect_timeout = timeout;
  switch (parsed->scheme) {
    case client::Scheme::kGrpc:
      return std::shared_ptr<InferenceService>(client::MakeGrpcService(remote));
    case client::Scheme::kHttp:
      return std::shared_ptr<InferenceService>(client::MakeHttpService(remote));
    case client::Scheme::kLocal:
      break;
  }
  return Status::InvalidArgument("upstream '" + url +
                                 "': the gateway forwards to grpc:// or http:// servers only");
}

}  // namespace

UpstreamFactory RemoteUpstreamFactory(const RouterOptions& options) {
  return [connections = options.upstream_connections, timeout = options.upstream_timeout](
             const std::string& url) { return OpenRemote(connections, timeout, url); };
}

}  // namespace quiver::gateway
