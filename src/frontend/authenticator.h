#pragma once
// Authenticator: how a frontend learns which tenant is calling (the gateway's tenants,
// docs/tenants.md). An empty Authenticator means auth is off: no header is read and every
// caller is tenant "". The gateway makes one with gateway::MakeAuthenticator.

#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quiver::frontend {

// The tenant name for a bearer token ("" when none was sent), or UNAUTHENTICATED with a
// message that does not contain the token. Called on every authenticated request, from
// any thread: must be thread-safe and fast.
using Authenticator = std::function<Result<std::string>(std::string_view token)>;

// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 6750);
// "" when the value is empty or names another scheme.
std::string_view BearerToken(std::string_view authorization);

}  // namespace quiver::frontend
