#include "gateway/upstream_selector.h"

#include <algorithm>
#include <vector>

namespace quiver::gateway {

Result<std::string> UpstreamSelector::Choose(std::string_view model, std::string_view version,
                                             std::span<const std::string> tried) {
  Result<std::vector<std::string>> ready = placement_.ReadyUpstreams(model, version);
  if (!ready.ok()) return ready.status();
  std::vector<std::string> candidates;
  candidates.reserve(ready->size());
  for (std::string& u : *ready) {
    if (std::find(tried.begin(), tried.end(), u) != tried.end()) continue;
    if (!health_.Available(u)) continue;
    candidates.push_back(std::move(u));
  }
  if (candidates.empty()) {
    std::string m = "model '" + std::string(model) + "'";
    if (!version.empty()) m += " version '" + std::string(version) + "'";
    return Status::Unavailable(m + " is ready on " + std::to_string(ready->size()) +
                               " upstream(s), none available now (ejected or already tried)");
  }
  return balancer_.Choose(model, candidates);
}

}  // namespace quiver::gateway
