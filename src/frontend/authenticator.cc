#include "frontend/authenticator.h"

namespace quiver::frontend {

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i]) return {};
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ' && rest.front() != '\t') return {};  // e.g. "Bearerxyz"
  const auto first = rest.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  rest.remove_prefix(first);
  return rest.substr(0, rest.find_last_not_of(" \t") + 1);
}

}  // namespace quiver::frontend
