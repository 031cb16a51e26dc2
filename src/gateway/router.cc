// The Router's construction, upstream set and poller. The request path is in
// router_infer.cc, waiting for models in router_waiting.cc, the repository and metadata
// calls in router_repository.cc.

#include "gateway/router.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gateway/balancer/make_balancer.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {
namespace {

UpstreamSnapshot ToSnapshot(Clock::TimePoint taken_at, const RepositoryIndex& index) {
  UpstreamSnapshot snapshot{taken_at, {}};
  snapshot.entries.reserve(index.size());
  for (const auto& entry : index) {
    snapshot.entries.push_back({entry.name, entry.version, entry.state == "READY"});
  }
  return snapshot;
}

}  // namespace

Result<std::unique_ptr<Router>> Router::Create(RouterOptions options, std::shared_ptr<Clock> clock,
                                               std::unique_ptr<RequestScheduler> scheduler) {
  auto balancer = MakeBalancer(options.balancer);
  if (!balancer.ok()) return balancer.status();
  if (!options.factory) {
    return Status::InvalidArgument(
        "gateway: RouterOptions.factory is not set (see "
        "gateway/remote_upstreams.h)");
  }
  if (options.poll_interval <= Clock::Duration::zero()) {
    return Status::InvalidArgument("gateway: poll_interval must be > 0");
  }
  if (!clock) clock = Clock::System();
  std::unique_ptr<Router> router(new Router(std::move(options), std::move(clock),
                                            std::move(scheduler), std::move(balancer).value()));
  router->loader_ = std::thread([r = router.get()] { r->LoaderLoop(); });
  if (router->options_.start_poller) {
    router->poller_ = std::thread([r = router.get()] { r->PollerLoop(); });
  }
  return router;
}

Router::Router(RouterOptions options, std::shared_ptr<Clock> clock,
               std::unique_ptr<RequestScheduler> scheduler, std::unique_ptr<Balancer> balancer)
    : options_(std::move(options)),
      clock_(std::move(clock)),
      scheduler_(std::move(scheduler)),
      balancer_(std::move(balancer)),
      placement_(clock_, options_.placement),
      health_(clock_, options_.outlier),
      budget_(options_.retry_budget),
      selector_(placement_, health_, *balancer_),
      unknown_models_(std::make_unique<ModelCounters>()) {
  UpdateCapacity();
}

Router::~Router() {
  stopping_ = true;
  {
    std::lock_guard lock(poller_mutex_);
    poller_cv_.notify_all();
  }
  if (poller_.joinable()) poller_.join();
  {
    std::lock_guard lock(wait_mutex_);
    load_cv_.notify_all();
  }
  if (loader_.joinable()) loader_.join();  // after the load under way, if any
  // Requests waiting for a model, a retry slot or admission end now.
  ResumeWaiters(true, Status::Unavailable("the gateway is shutting down"));
  auto fail_queued_retries = [this] {
    std::vector<std::shared_ptr<Call>> queued;
    {
      std::lock_guard lock(retry_mutex_);
      queued.swap(retry_queue_);
    }
    for (auto& call : queued) Finish(call, call->last_error);
  };
  fail_queued_retries();
  if (scheduler_) scheduler_->RejectAll(Status::Unavailable("the gateway is shutting down"));
  // Destroying the services cancels what is in flight; their callbacks see stopping_ and
  // finish their calls without retrying.
  std::map<std::string, std::shared_ptr<Upstream>, std::less<>> upstreams;
  {
    std::lock_guard lock(upstreams_mutex_);
    upstreams.swap(upstreams_);
  }
  upstreams.clear();
  fail_queued_retries();  // Retry checks stopping_ under retry_mutex_: nothing comes after
}

Status Router::AddUpstream(const std::string& url) {
  auto service = options_.factory(url);
  if (!service.ok()) return service.status();
  auto upstream = std::make_shared<Upstream>();
  upstream->url = url;
  upstream->service = std::move(service).value();
  {
    std::lock_guard lock(upstreams_mutex_);
    if (upstreams_.contains(url)) {
      return Status::AlreadyExists("upstream '" + url + "' is already in the gateway");
    }
    upstreams_.emplace(url, upstream);
  }
  health_.Add(url);
  if (!PollUpstream(*upstream)) {
    spdlog::warn("gateway: upstream {} added but not answering yet", url);
  }
  UpdateCapacity();
  ResumeWaiters(false, Status::Ok());
  return Status::Ok();
}

Status Router::RemoveUpstream(std::string_view url) {
  std::shared_ptr<Upstream> upstream;
  {
    std::lock_guard lock(upstreams_mutex_);
    auto it = upstreams_.find(url);
    if (it == upstreams_.end()) {
      return Status::NotFound("upstream '" + std::string(url) + "' is not in the gateway");
    }
    upstream = it->second;
    if (upstream->draining.exchange(true)) {
      return Status::Unavailable("upstream '" + std::string(url) + "' is already draining");
    }
    draining_count_.fetch_add(1);
  }
  placement_.Remove(url);  // no new requests go there
  UpdateCapacity();
  {
    std::unique_lock lock(upstreams_mutex_);
    if (const size_t left = WaitForDrain(lock, url, ""); left > 0) {
      spdlog::warn(
          "gateway: upstream {} still had {} request(s) after draining; they are "
          "cancelled and retried elsewhere",
          url, left);
    }
    upstreams_.erase(upstreams_.find(url));
    draining_count_.fetch_sub(1);
  }
  health_.Remove(url);
  balancer_->Forget(url);
  upstream.reset();  // cancels leftovers: their callbacks retry elsewhere
  spdlog::info("gateway: upstream {} removed", url);
  return Status::Ok();
}

size_t Router::WaitForDrain(std::unique_lock<std::mutex>& lock, std::string_view url,
                            std::string_view model) {
  const Clock::TimePoint deadline = clock_->Now() + options_.drain_timeout;
  while (balancer_->InFlight(url, model) > 0 && clock_->Now() < deadline) {
    clock_->WaitUntil(drained_cv_, lock, deadline);
  }
  return balancer_->InFlight(url, model);
}

std::shared_ptr<Router::Upstream> Router::Find(std::string_view url) const {
  std::lock_guard lock(upstreams_mutex_);
  auto it = upstreams_.find(url);
  return it == upstreams_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Router::Upstream>> Router::Snapshot() const {
  std::vector<std::shared_ptr<Upstream>> out;
  std::lock_guard lock(upstreams_mutex_);
  out.reserve(upstreams_.size());
  for (const auto& [url, upstream] : upstreams_) out.push_back(upstream);
  return out;
}

std::vector<UpstreamInfo> Router::Upstreams() const {
  std::vector<UpstreamInfo> out;
  for (const auto& upstream : Snapshot()) {
    UpstreamInfo info;
    info.url = upstream->url;
    info.health = std::string(UpstreamHealthName(health_.Health(upstream->url)));
    info.draining = upstream->draining;
    auto placement = placement_.Info(upstream->url);
    info.stale = !placement || placement->stale || placement->snapshots == 0;
    info.in_flight = balancer_->InFlight(upstream->url, "");
    info.ready_models = placement_.ReadyModels(upstream->url);
    out.push_back(std::move(info));
  }
  return out;
}

// Takes the index of one upstream; true when it answered. The snapshot is applied only
// while the upstream is still in the gateway, so a poll racing with a removal cannot bring
// it back.
bool Router::PollUpstream(const Upstream& upstream) const {
  const Clock::TimePoint taken_at = clock_->Now();
  auto index = upstream.service->Index();
  if (!index.ok()) {
    // A failed poll counts as a failure of the upstream (active health check); an answered
    // one does not clear failures of requests, which polls do not exercise.
    if (health_.Report(upstream.url, "", false, Clock::Duration::zero())) {
      spdlog::warn("gateway: upstream {} ejected: its index polls fail ({})", upstream.url,
                   index.status().ToString());
    }
    spdlog::debug("gateway: poll of {} failed: {}", upstream.url, index.status().ToString());
    return false;
  }
  std::lock_guard lock(upstreams_mutex_);
  auto it = upstreams_.find(upstream.url);
  if (it == upstreams_.end() || it->second->draining) return true;
  placement_.Apply(upstream.url, ToSnapshot(taken_at, *index));
  return true;
}

void Router::UpdateCapacity() {
  if (!scheduler_) return;
  if (options_.upstream_max_in_flight == 0) {
    scheduler_->SetCapacity(0);
    return;
  }
  size_t healthy = 0;
  for (const auto& upstream : Snapshot()) {
    if (!upstream->draining && health_.Available(upstream->url)) ++healthy;
  }
  scheduler_->SetCapacity(std::max<size_t>(1, healthy) * options_.upstream_max_in_flight);
}

void Router::PollOnce() {
  for (const auto& upstream : Snapshot()) {
    if (stopping_) return;
    if (upstream->draining) continue;
    if (health_.Health(upstream->url) == UpstreamHealth::kProbing) {
      const bool ok = upstream->service->Ready();
      health_.ReportProbe(upstream->url, ok);
      spdlog::info("gateway: probe of {} {}", upstream->url,
                   ok ? "succeeded: re-admitted" : "failed: ejected again");
    }
    PollUpstream(*upstream);
  }
  UpdateCapacity();
  ResumeWaiters(false, Status::Ok());
}

void Router::PollerLoop() {
  std::unique_lock lock(poller_mutex_);
  while (!stopping_) {
    lock.unlock();
    PollOnce();
    lock.lock();
    const Clock::TimePoint next = clock_->Now() + options_.poll_interval;
    while (!stopping_ && clock_->Now() < next) clock_->WaitUntil(poller_cv_, lock, next);
  }
}

std::vector<ModelLoad> Router::Load() const {
  std::set<std::string, std::less<>> models(options_.wait_for_models.begin(),
                                            options_.wait_for_models.end());
  for (auto& m : placement_.Models()) models.insert(std::move(m));
  std::vector<ModelLoad> out;
  std::lock_guard lock(counters_mutex_);
  for (const auto& [name, c] : counters_) models.insert(name);
  for (const auto& model : models) {
    ModelLoad load;
    load.model = model;
    auto it = counters_.find(model);
    if (it != counters_.end()) {
      const ModelCounters& c = *it->second;
      load.succeeded = c.success;
      load.failed = c.failure;
      load.rejected = c.rejected;
      load.requests_total = load.succeeded + load.failed + load.rejected;
      load.queue_ns_total = c.queue_ns_total;
      load.in_flight = static_cast<uint64_t>(std::max<int64_t>(0, c.in_flight));
      load.waiting = static_cast<uint64_t>(std::max<int64_t>(0, c.waiting));
    }
    auto ready = placement_.ReadyUpstreams(model, "");
    load.ready_replicas = ready.ok() ? ready->size() : 0;
    load.capacity = load.ready_replicas * options_.upstream_max_in_flight;
    out.push_back(std::move(load));
  }
  return out;
}

}  // namespace quiver::gateway
