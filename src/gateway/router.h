#pragma once
// Router: the gateway's InferenceService. It holds one service per upstream (a
// client::RemoteService for grpc:// and http:// URLs: `quiver serve`, Triton, another
// gateway) and sends each request to one upstream where its model version is READY,
// chosen by the policy core (docs/gateway.md): placement -> health -> not yet tried ->
// balancer. Served by the ordinary frontends, a client cannot tell it from a server.
//
// Per request: admission (RequestScheduler: tenants' limits and fair queueing; none = all
// admitted at once), then attempts. An attempt that fails with UNAVAILABLE (connection
// refused or lost, server or model not ready) or CANCELLED by an upstream being removed is
// sent again to another upstream, bounded by the retry budget: a retry beyond the budget
// waits for a retry slot instead of failing, so a dead server costs no request while
// retries still cannot multiply the load. Every other error is the upstream's verdict on
// the request and goes back to the client unchanged. `done` is called exactly once.
//
// A poller thread, every poll_interval: the repository index of each upstream (placement),
// which is also the active health check (a failed poll counts as a failure of that
// upstream); probes of ejected upstreams whose time is up; and the expiry of requests
// waiting for a model.
//
// Waiting for a model: a request for a model that no upstream has READY but some upstream's
// repository has starts one load (single flight) on the upstream DecidePlacement picks, and
// waits for it; a request for a model in `wait_for_models` (autoscaled, possibly at zero
// replicas) waits for a replica to appear. Both wait at most load_wait (checked by the
// poller, so up to one poll_interval later), then fail with UNAVAILABLE naming the model.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "gateway/autoscale/model_load.h"
#include "gateway/balancer/balancer.h"
#include "gateway/health/outlier_detector.h"
#include "gateway/health/retry_budget.h"
#include "gateway/placement/on_demand.h"
#include "gateway/placement/placement_table.h"
#include "gateway/tenants/request_scheduler.h"
#include "gateway/upstream_selector.h"
#include "service/inference_service.h"

namespace quiver::gateway {

// Opens the service behind an upstream URL: RemoteUpstreamFactory (remote_upstreams.h) for
// grpc:// and http:// servers; tests substitute in-process services. The Router itself
// knows no transport.
using UpstreamFactory =
    std::function<Result<std::shared_ptr<InferenceService>>(const std::string& url)>;

struct RouterOptions {
  std::string balancer = "p2c";
  Clock::Duration poll_interval = std::chrono::seconds(1);
  PlacementOptions placement;
  OutlierOptions outlier;
  RetryBudgetOptions retry_budget;
  size_t upstream_max_in_flight = 64;         // per upstream: the capacity fair queueing shares
  size_t max_loaded_models_per_upstream = 0;  // on-demand placement cap; 0 = none
  Clock::Duration load_wait = std::chrono::seconds(60);
  Clock::Duration drain_timeout = std::chrono::seconds(30);
  // Models whose requests wait for a replica (autoscaled) instead of failing NOT_FOUND.
  std::set<std::string, std::less<>> wait_for_models;
  // Upstream connections (for RemoteUpstreamFactory): per upstream, and how long a sync
  // call (index poll, probe, metadata) may take.
  size_t upstream_connections = 4;
  std::chrono::milliseconds upstream_timeout{3000};
  UpstreamFactory factory;  // required
  // Start the poller thread (tests drive PollOnce() themselves).
  bool start_poller = true;
};

// One upstream, for the admin endpoint, metrics and tests.
struct UpstreamInfo {
  std::string url;
  std::string health;  // "available", "ejected", "probing"
  bool draining = false;
  bool stale = true;  // no fresh index snapshot
  size_t in_flight = 0;
  std::vector<std::string> ready_models;
};

class Router : public InferenceService {
 public:
  // `scheduler` may be null (every request admitted at once).
  static Result<std::unique_ptr<Router>> Create(RouterOptions options, std::shared_ptr<Clock> clock,
                                                std::unique_ptr<RequestScheduler> scheduler);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Adds an upstream (it gets traffic once a poll has seen its models; AddUpstream polls it
  // once before returning). INVALID_ARGUMENT for a bad URL, ALREADY_EXISTS.
  Status AddUpstream(const std::string& url);
  // Stops sending it new requests, waits up to drain_timeout for those in flight, then
  // removes it (leftovers are cancelled and retried elsewhere). NOT_FOUND when unknown.
  Status RemoveUpstream(std::string_view url);
  std::vector<UpstreamInfo> Upstreams() const;
  // Per model: what the autoscaler and the metrics read (autoscale/model_load.h).
  std::vector<ModelLoad> Load() const;
  // Retries sent to another upstream so far.
  uint64_t retries() const { return retries_.load(); }

  // Moves `model` to the version(s) its repositories now hold, one upstream at a time:
  // the upstream stops getting the model's requests (the others serve them), its requests
  // in flight finish (up to drain_timeout), it reloads the model from its repository (new
  // version in, old out, by the model's version policy), and it gets traffic again. With
  // two or more upstreams no request fails. Returns what was done, one line per upstream;
  // stops at the first failed load (that upstream is put back).
  Result<std::vector<std::string>> Rollout(std::string_view model);

  // One round of the poller: index every upstream, probe those due, expire waiters.
  void PollOnce();

  // InferenceService.
  bool Live() const override;
  bool Ready() const override;
  Result<ServerMetadata> GetServerMetadata() const override;
  Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                         std::string_view version) const override;
  Result<ModelConfig> GetModelConfig(std::string_view model,
                                     std::string_view version) const override;
  bool ModelReady(std::string_view model, std::string_view version) const override;
  void Infer(InferRequest request, InferCallback done) override;
  Result<RepositoryIndex> Index() override;
  Status Load(std::string_view model) override;
  Status Unload(std::string_view model) override;
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override;

 private:
  struct Upstream;
  struct Call;
  struct ModelCounters;
  struct Waiter;

  Router(RouterOptions options, std::shared_ptr<Clock> clock,
         std::unique_ptr<RequestScheduler> scheduler, std::unique_ptr<Balancer> balancer);

  // The request path (router_infer.cc).
  void Admitted(const std::shared_ptr<Call>& call);
  void Attempt(const std::shared_ptr<Call>& call);
  void OnAttemptDone(const std::shared_ptr<Call>& call, const std::string& upstream,
                     Clock::TimePoint sent, Result<InferResponse> result);
  void Retry(const std::shared_ptr<Call>& call);
  void RetrySlotFreed();
  void Finish(const std::shared_ptr<Call>& call, Result<InferResponse> result);
  void LogEjection(const std::string& upstream) const;
  void NotifyDrain();
  void ReleaseRetrySlot(const std::shared_ptr<Call>& call);
  ModelCounters& Counters(std::string_view model);

  // Waiting for a model (router_waiting.cc).
  bool WaitForModel(const std::shared_ptr<Call>& call);
  // Queues `resume` until `model` `version` is READY (starting a load if it is in some
  // repository); false (and `resume` not kept) when there is nothing to wait for.
  bool WaitFor(const std::string& model, const std::string& version,
               std::function<void(Status)> resume) const;
  // Blocks until `model` `version` is READY or cannot be (for metadata/config calls).
  Status AwaitModel(std::string_view model, std::string_view version) const;
  void ResumeWaiters(bool expire_all, const Status& status,
                     std::string_view loaded_model = {}) const;
  void LoadOnDemand(const std::string& model) const;
  void LoaderLoop();
  Result<PlacementDecision> DecideOnDemand(const std::string& model) const;

  // The services with `model` `version` READY ("" = the latest READY version, written to
  // `resolved`), available ones first (router_repository.cc).
  Result<std::vector<std::shared_ptr<InferenceService>>> ReadyServices(std::string_view model,
                                                                       std::string_view version,
                                                                       std::string& resolved) const;

  // Upstreams cordoned off for `model` (a rollout in progress); empty almost always.
  std::vector<std::string> Cordoned(std::string_view model) const;

  // Upstreams and polling (router.cc).
  std::shared_ptr<Upstream> Find(std::string_view url) const;
  std::vector<std::shared_ptr<Upstream>> Snapshot() const;
  // With upstreams_mutex_ held in `lock`: waits (up to drain_timeout) until `url` has no
  // request of `model` ("" = any) in flight; returns how many are left.
  size_t WaitForDrain(std::unique_lock<std::mutex>& lock, std::string_view url,
                      std::string_view model);
  bool PollUpstream(const Upstream& upstream) const;
  void UpdateCapacity();
  void PollerLoop();

  const RouterOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::unique_ptr<RequestScheduler> scheduler_;  // may be null
  const std::unique_ptr<Balancer> balancer_;
  mutable PlacementTable placement_;  // a const metadata call may poll after a load
  mutable OutlierDetector health_;
  RetryBudget budget_;
  UpstreamSelector selector_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> retries_{0};

  mutable std::mutex upstreams_mutex_;
  std::map<std::string, std::shared_ptr<Upstream>, std::less<>> upstreams_;  // guarded
  std::condition_variable drained_cv_;  // with upstreams_mutex_: an attempt ended
  std::atomic<int> draining_count_{0};  // upstreams being drained (skip the notify when 0)

  mutable std::mutex counters_mutex_;
  std::map<std::string, std::unique_ptr<ModelCounters>, std::less<>> counters_;  // guarded
  const std::unique_ptr<ModelCounters> unknown_models_;  // names no upstream has

  std::mutex retry_mutex_;
  std::vector<std::shared_ptr<Call>> retry_queue_;  // guarded: waiting for a retry slot

  // Waiting for models (mutable: a const metadata call may start a load and wait for it).
  // Loads run one at a time on one loader thread; a model whose load failed is not loaded
  // again for kLoadBackoff (its requests are NOT_FOUND meanwhile).
  static constexpr std::chrono::seconds kLoadBackoff{5};
  mutable std::mutex wait_mutex_;
  mutable std::condition_variable load_cv_;                       // with wait_mutex_
  mutable std::vector<Waiter> waiters_;                           // guarded by wait_mutex_
  mutable std::set<std::string> loading_;                         // guarded: queued or loading
  mutable std::vector<std::string> load_queue_;                   // guarded
  mutable std::map<std::string, Clock::TimePoint> failed_loads_;  // guarded: when it failed
  std::thread loader_;

  mutable std::mutex cordon_mutex_;
  std::map<std::string, std::set<std::string>, std::less<>> cordons_;  // model -> upstreams
  std::atomic<int> cordon_count_{0};  // skip the lookup when no rollout runs
  std::mutex rollout_mutex_;          // one rollout at a time

  std::mutex poller_mutex_;
  std::condition_variable poller_cv_;
  std::thread poller_;
};

}  // namespace quiver::gateway
