#pragma once
// The Router's upstreams over the network: grpc:// and http:// URLs opened with the
// client's transports (client::RemoteService: shared memory with upstreams on this host,
// recovery, endpoint-named errors).

#include "gateway/router.h"

namespace quiver::gateway {

// Opens `url` with `options`' upstream_connections and upstream_timeout; INVALID_ARGUMENT
// for a bad URL or a local:// one.
UpstreamFactory RemoteUpstreamFactory(const RouterOptions& options);

}  // namespace quiver::gateway
