// Requests that wait for a model: loaded on demand (in some upstream's repository but
// READY nowhere) or autoscaled (wait_for_models, possibly at zero replicas).

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gateway/placement/on_demand.h"
#include "gateway/router.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {

bool Router::WaitForModel(const std::shared_ptr<Call>& call) {
  if (call->waited) return false;  // waited once already: the load did not help
  const std::string& model = call->request.model;
  const bool in_repository = !placement_.UpstreamsWithModelInRepository(model).empty();
  if (!in_repository && !options_.wait_for_models.contains(model)) return false;
  call->waited = true;
  bool start_load = false;
  {
    std::lock_guard lock(wait_mutex_);
    if (stopping_) return false;
    waiters_.push_back({call, clock_->Now() + options_.load_wait});
    if (in_repository && !loading_.contains(model)) {
      loading_.insert(model);
      start_load = true;
      loaders_.emplace_back([this, model] { LoadOnDemand(model); });
    }
  }
  if (start_load) spdlog::info("gateway: model '{}' is loaded nowhere: loading it", model);
  return true;
}

// Sends the waiters whose model is now READY; fails those past their deadline, all of
// them when `expire_all` (with `status`), and those of `loaded_model` when its load just
// ended without making their version READY (with `status` when the load failed).
void Router::ResumeWaiters(bool expire_all, const Status& status, std::string_view loaded_model) {
  std::vector<std::shared_ptr<Call>> ready;
  std::vector<std::pair<std::shared_ptr<Call>, Status>> failed;
  {
    std::lock_guard lock(wait_mutex_);
    if (waiters_.empty()) return;
    const Clock::TimePoint now = clock_->Now();
    std::vector<Waiter> keep;
    for (auto& waiter : waiters_) {
      const InferRequest& request = waiter.call->request;
      auto where = placement_.ReadyUpstreams(request.model, request.version);
      if (expire_all) {
        failed.emplace_back(std::move(waiter.call), status);
      } else if (where.ok()) {
        ready.push_back(std::move(waiter.call));
      } else if (!loaded_model.empty() && request.model == loaded_model &&
                 !options_.wait_for_models.contains(request.model)) {
        failed.emplace_back(std::move(waiter.call), status.ok() ? where.status() : status);
      } else if (now >= waiter.deadline) {
        failed.emplace_back(
            std::move(waiter.call),
            Status::Unavailable(
                "model '" + request.model + "' is not ready on any upstream after waiting " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   options_.load_wait)
                                   .count()) +
                " ms for it to be loaded or scaled up"));
      } else {
        keep.push_back(std::move(waiter));
      }
    }
    waiters_.swap(keep);
  }
  for (auto& [call, why] : failed) Finish(call, why);
  for (auto& call : ready) Attempt(call);
}

Result<PlacementDecision> Router::DecideOnDemand(const std::string& model) const {
  std::vector<PlacementCandidate> candidates;
  for (const auto& url : placement_.UpstreamsWithModelInRepository(model)) {
    auto upstream = Find(url);
    if (!upstream || upstream->draining || !health_.Available(url)) continue;
    PlacementCandidate candidate{url, {}};
    for (auto& loaded : placement_.ReadyModels(url)) {
      LoadedModel m;
      m.in_flight = balancer_->InFlight(url, loaded);
      {
        std::lock_guard lock(counters_mutex_);
        auto it = counters_.find(loaded);
        if (it != counters_.end()) {
          m.last_used = Clock::TimePoint(std::chrono::duration_cast<Clock::Duration>(
              std::chrono::nanoseconds(it->second->last_used_ns.load())));
        }
      }
      m.model = std::move(loaded);
      candidate.loaded.push_back(std::move(m));
    }
    candidates.push_back(std::move(candidate));
  }
  return DecidePlacement(model, candidates, options_.max_loaded_models_per_upstream);
}

void Router::LoadOnDemand(const std::string& model) {
  Status result;
  auto decision = DecideOnDemand(model);
  if (!decision.ok()) {
    result = decision.status();
  } else if (auto upstream = Find(decision->upstream); !upstream) {
    result = Status::Unavailable("upstream '" + decision->upstream + "' was removed");
  } else {
    for (const auto& victim : decision->unload_first) {
      placement_.NoteUnloaded(upstream->url, victim);
      spdlog::info("gateway: unloading idle model '{}' from {} to make room for '{}'", victim,
                   upstream->url, model);
      if (Status s = upstream->service->Unload(victim); !s.ok()) {
        spdlog::warn("gateway: unloading '{}' from {}: {}", victim, upstream->url, s.ToString());
      }
    }
    result = upstream->service->Load(model);
    PollUpstream(*upstream);  // placement learns the new version(s) now, not next poll
    spdlog::info("gateway: loading '{}' on {}: {}", model, upstream->url, result.ToString());
  }
  {
    std::lock_guard lock(wait_mutex_);
    loading_.erase(model);
  }
  ResumeWaiters(false,
                result.ok() ? Status::Ok() : result.WithContext("loading model '" + model + "'"),
                model);
}

}  // namespace quiver::gateway
