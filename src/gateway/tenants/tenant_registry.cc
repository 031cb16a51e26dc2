#include "gateway/tenants/tenant_registry.h"

namespace quiver::gateway {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Walk all of `a`, indexing `b` modulo its size, so neither the position of the first
  // difference nor b's length shows in the time taken; the length check is folded in.
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  if (b.empty()) return a.empty();
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i % b.size()]);
  }
  return diff == 0;
}

TenantRegistry::TenantRegistry(const std::vector<TenantOptions>& tenants) {
  entries_.reserve(tenants.size());
  for (const auto& t : tenants) entries_.push_back({t.token, t.name});
}

Result<std::string> TenantRegistry::Authenticate(std::string_view token) const {
  if (token.empty()) {
    unauthenticated_.fetch_add(1, std::memory_order_relaxed);
    return Status(StatusCode::kUnauthenticated, "missing bearer token");
  }
  const Entry* match = nullptr;
  for (const auto& e : entries_) {  // no early exit: every token is compared
    const bool equal = ConstantTimeEquals(token, e.token);
    match = equal ? &e : match;
  }
  if (match == nullptr) {
    unauthenticated_.fetch_add(1, std::memory_order_relaxed);
    return Status(StatusCode::kUnauthenticated, "unknown token");
  }
  return match->name;
}

std::function<Result<std::string>(std::string_view token)> MakeAuthenticator(
    std::shared_ptr<const TenantRegistry> registry) {
  return [registry = std::move(registry)](std::string_view token) {
    return registry->Authenticate(token);
  };
}

std::function<Result<std::string>(std::string_view token)> MakeAuthenticator(
    const std::vector<TenantOptions>& tenants) {
  return MakeAuthenticator(std::make_shared<const TenantRegistry>(tenants));
}

}  // namespace quiver::gateway
