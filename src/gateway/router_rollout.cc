// Version rollout across upstreams, one at a time, without failing a request.

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gateway/router.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {

std::vector<std::string> Router::Cordoned(std::string_view model) const {
  std::lock_guard lock(cordon_mutex_);
  auto it = cordons_.find(model);
  if (it == cordons_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

Result<std::vector<std::string>> Router::Rollout(std::string_view model) {
  std::lock_guard rollout(rollout_mutex_);
  const std::string name(model);
  auto targets = placement_.UpstreamsWithModelInRepository(model);
  if (targets.empty()) {
    return Status::NotFound("model '" + name + "' is in no upstream's model repository");
  }
  std::vector<std::string> report;
  for (const auto& url : targets) {
    auto upstream = Find(url);
    if (!upstream || upstream->draining) continue;
    {
      std::lock_guard lock(cordon_mutex_);
      cordons_[name].insert(url);
      cordon_count_.fetch_add(1, std::memory_order_release);
    }
    {  // its requests of this model finish first
      std::unique_lock lock(upstreams_mutex_);
      draining_count_.fetch_add(1);
      WaitForDrain(lock, url, model);
      draining_count_.fetch_sub(1);
    }
    Status loaded = upstream->service->Load(model);
    PollUpstream(*upstream);
    {
      std::lock_guard lock(cordon_mutex_);
      auto it = cordons_.find(name);
      it->second.erase(url);
      if (it->second.empty()) cordons_.erase(it);
      cordon_count_.fetch_sub(1, std::memory_order_release);
    }
    ResumeWaiters(false, Status::Ok());
    std::string versions;
    for (const auto& v : placement_.ReadyVersions(model)) {
      auto where = placement_.ReadyUpstreams(model, v);
      if (where.ok() && std::find(where->begin(), where->end(), url) != where->end()) {
        versions += (versions.empty() ? "" : ",") + v;
      }
    }
    if (!loaded.ok()) {
      spdlog::error("gateway: rollout of '{}' stopped at {}: {}", name, url, loaded.ToString());
      return loaded.WithContext("rollout of model '" + name + "' at " + url);
    }
    report.push_back(url + ": version(s) " + (versions.empty() ? "none" : versions) + " ready");
    spdlog::info("gateway: rollout of '{}': {}", name, report.back());
  }
  return report;
}

}  // namespace quiver::gateway
