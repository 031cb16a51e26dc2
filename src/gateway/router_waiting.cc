// Requests that wait for a model: loaded on demand (in some upstream's repository but
// READY nowhere) or autoscaled (wait_for_models, possibly at zero replicas).

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "gateway/placement/on_demand.h"
#include "gateway/router.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {

bool Router::WaitForModel(const std::shared_ptr<Call>& call) {
  if (call->waited) return false;  // waited once already: the load did not help
  call->waited = true;
  return WaitFor(call->request.model, call->request.version, [this, call](Status status) {
    if (status.ok()) {
      Attempt(call);
    } else {
      Finish(call, std::move(status));
    }
  });
}

bool Router::WaitFor(const std::string& model, const std::string& version,
                     std::function<void(Status)> resume) const {
  // A load helps only a model loaded nowhere: when some version is READY, a request for
  // another version is NOT_FOUND at once (reloading would not bring it).
  const bool in_repository = !placement_.UpstreamsWithModelInRepository(model).empty() &&
                             placement_.ReadyVersions(model).empty();
  if (!in_repository && !options_.wait_for_models.contains(model)) return false;
  bool start_load = false;
  {
    std::lock_guard lock(wait_mutex_);
    if (stopping_) return false;
    const Clock::TimePoint now = clock_->Now();
    if (in_repository && !loading_.contains(model)) {
      auto failed = failed_loads_.find(model);
      if (failed != failed_loads_.end() && now < failed->second + kLoadBackoff) return false;
      loading_.insert(model);
      load_queue_.push_back(model);
      load_cv_.notify_all();
      start_load = true;
    }
    waiters_.push_back({model, version, now + options_.load_wait, std::move(resume)});
  }
  if (start_load) spdlog::info("gateway: model '{}' is loaded nowhere: loading it", model);
  return true;
}

void Router::LoaderLoop() {
  std::unique_lock lock(wait_mutex_);
  while (true) {
    load_cv_.wait(lock, [this] { return stopping_ || !load_queue_.empty(); });
    if (stopping_) return;
    const std::string model = std::move(load_queue_.front());
    load_queue_.erase(load_queue_.begin());
    lock.unlock();
    LoadOnDemand(model);
    lock.lock();
  }
}

Status Router::AwaitModel(std::string_view model, std::string_view version) const {
  auto where = placement_.ReadyUpstreams(model, version);
  if (where.ok()) return Status::Ok();
  auto done = std::make_shared<std::promise<Status>>();
  auto result = done->get_future();
  if (!WaitFor(std::string(model), std::string(version),
               [done](Status s) { done->set_value(std::move(s)); })) {
    return where.status();
  }
  return result.get();
}

// Resumes the waiters whose model is now READY; fails those past their deadline, all of
// them when `expire_all` (with `status`), and those of `loaded_model` when its load just
// ended without making their version READY (with `status` when the load failed).
void Router::ResumeWaiters(bool expire_all, const Status& status,
                           std::string_view loaded_model) const {
  std::vector<std::pair<std::function<void(Status)>, Status>> resume;
  {
    std::lock_guard lock(wait_mutex_);
    if (waiters_.empty()) return;
    const Clock::TimePoint now = clock_->Now();
    std::vector<Waiter> keep;
    for (auto& waiter : waiters_) {
      auto where = placement_.ReadyUpstreams(waiter.model, waiter.version);
      if (expire_all) {
        resume.emplace_back(std::move(waiter.resume), status);
      } else if (where.ok()) {
        resume.emplace_back(std::move(waiter.resume), Status::Ok());
      } else if (!loaded_model.empty() && waiter.model == loaded_model &&
                 !options_.wait_for_models.contains(waiter.model)) {
        resume.emplace_back(std::move(waiter.resume), status.ok() ? where.status() : status);
      } else if (now >= waiter.deadline) {
        resume.emplace_back(
            std::move(waiter.resume),
            Status::Unavailable(
                "model '" + waiter.model + "' is not ready on any upstream after waiting " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(options_.load_wait)
                        .count()) +
                " ms for it to be loaded or scaled up"));
      } else {
        keep.push_back(std::move(waiter));
      }
    }
    waiters_.swap(keep);
  }
  for (auto& [fn, why] : resume) fn(why);
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

void Router::LoadOnDemand(const std::string& model) const {
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
    if (result.ok()) {
      failed_loads_.erase(model);
    } else {
      failed_loads_[model] = clock_->Now();
    }
  }
  ResumeWaiters(false,
                result.ok() ? Status::Ok() : result.WithContext("loading model '" + model + "'"),
                model);
}

}  // namespace quiver::gateway
