#pragma once
// AutoscaleController: the autoscaler's loop. Each tick it reads the gateway's per-model
// load, runs each configured model's AutoscalePolicy and asks the ReplicaProvider for the
// decided count when it differs from what the provider has (so a replica that died is
// replaced on the next tick). Models in the load but not configured are left alone;
// configured models missing from the load count as idle (no traffic, nothing loaded).
//
// Without a provider (kubernetes: KEDA or an HPA does the scaling, deploy/k8s/) the
// controller is advisory: it only publishes its decisions (quiver_gateway_desired_replicas),
// taking its own last decision as the current count.
//
// Ticks come from the owner (Tick()) or from Start()'s thread, every `interval` on the
// injected Clock. Thread-safe: Tick() calls are serialised; the accessors may be called
// from any thread. The load source and provider are called without the state lock held.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/autoscale/autoscale_policy.h"
#include "gateway/autoscale/model_load.h"
#include "gateway/autoscale/replica_provider.h"

namespace quiver::gateway {

// What the controller needs besides its collaborators.
struct AutoscaleControllerOptions {
  Clock::Duration interval = std::chrono::seconds(5);
  std::map<std::string, AutoscaleOptions, std::less<>> models;  // the models it scales
};

// The last decision for one model (for metrics, logs and the admin view).
struct ModelScaleState {
  std::string model;
  size_t desired = 0;  // quiver_gateway_desired_replicas
  size_t current = 0;  // the provider's count when decided (advisory: the last decision)
  AutoscaleDecision decision;
  Status last_scale;  // the last ScaleTo's outcome (OK when none was needed)
};

class AutoscaleController {
 public:
  using LoadSource = std::function<std::vector<ModelLoad>()>;

  // `load` is typically [&router] { return router.Load(); }. `provider` may be null
  // (advisory). The load source and provider must outlive the controller.
  AutoscaleController(AutoscaleControllerOptions options, LoadSource load,
                      std::shared_ptr<ReplicaProvider> provider, std::shared_ptr<Clock> clock);
  ~AutoscaleController();  // Stop()s
  AutoscaleController(const AutoscaleController&) = delete;
  AutoscaleController& operator=(const AutoscaleController&) = delete;

  // One round: sample, decide, scale. A failed ScaleTo is kept in last_scale and retried
  // on the next tick (the decision stands).
  void Tick();

  // Starts a thread that calls Tick() at once and then every `interval` of the clock.
  // No-op if already started.
  void Start();
  // Stops and joins the thread; idempotent. A Tick() in progress completes first.
  void Stop();

  // The last decision for `model`; nullopt before its first tick or if not configured.
  std::optional<size_t> DesiredReplicas(std::string_view model) const;
  // The last state of every configured model that has been ticked, by model name.
  std::vector<ModelScaleState> States() const;
  // Completed ticks (for owners and tests that wait for the thread).
  uint64_t ticks() const;

 private:
  void Loop();

  const AutoscaleControllerOptions options_;
  const LoadSource load_;
  const std::shared_ptr<ReplicaProvider> provider_;
  const std::shared_ptr<Clock> clock_;

  std::mutex tick_mutex_;  // serialises Tick(); guards policies_
  std::map<std::string, AutoscalePolicy, std::less<>> policies_;

  mutable std::mutex mutex_;
  std::map<std::string, ModelScaleState, std::less<>> states_;  // guarded by mutex_
  uint64_t ticks_ = 0;                                          // guarded by mutex_

  std::mutex thread_mutex_;  // guards stop_ and thread_; thread_cv_ waits on it
  std::condition_variable thread_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace quiver::gateway
