#pragma once
// TenantRegistry: bearer token -> tenant name, for the frontends' Authenticator.
//
// Lookup compares the presented token with every configured token, each comparison taking
// time that depends only on the presented token's length, and never stops early: how long
// a lookup takes says nothing about which configured token (or how much of one) matched.
// Tokens are never logged or put in a message.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gateway/tenants/tenant_options.h"

namespace quiver::gateway {

class TenantRegistry {
 public:
  explicit TenantRegistry(const std::vector<TenantOptions>& tenants);

  // The tenant whose token is `token`; UNAUTHENTICATED "missing bearer token" when it is
  // empty, "unknown token" when no tenant has it. Thread-safe.
  Result<std::string> Authenticate(std::string_view token) const;
  // Authenticate calls that failed so far (the `unauthenticated` metric outcome).
  uint64_t unauthenticated() const { return unauthenticated_.load(std::memory_order_relaxed); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string token;
    std::string name;
  };
  std::vector<Entry> entries_;  // immutable after construction
  mutable std::atomic<uint64_t> unauthenticated_{0};
};

// True when a == b, in time that depends only on a.size() (a: the untrusted input).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// A frontend::Authenticator (frontend/authenticator.h has the same signature) over the
// tenants' tokens. The registry is shared, so a caller may keep it for its counter.
std::function<Result<std::string>(std::string_view token)> MakeAuthenticator(
    std::shared_ptr<const TenantRegistry> registry);
std::function<Result<std::string>(std::string_view token)> MakeAuthenticator(
    const std::vector<TenantOptions>& tenants);

}  // namespace quiver::gateway
