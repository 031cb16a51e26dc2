#include "client/remote_service.h"

#include <string>

namespace quiver::client {

std::string EndpointName(std::string_view scheme, const RemoteOptions& options) {
  std::string name(scheme);
  name += "://";
  // An IPv6 literal needs brackets to be followed by a port.
  const bool ipv6 = options.host.find(':') != std::string::npos;
  if (ipv6) name += '[';
  name += options.host;
  if (ipv6) name += ']';
  name += ':';
  name += std::to_string(options.port);
  return name;
}

}  // namespace quiver::client
