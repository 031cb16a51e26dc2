#pragma once
// AutoscalePolicy: how many replicas one model should have, from the gateway's per-model
// load (ModelLoad), one decision per tick. Pure: no threads, time from an injected Clock.
//
// Each tick:
//  1. Rates over the tick from the cumulative counters: requests that ended, and their mean
//     queue time q (ms). Demand D = in_flight + waiting (now).
//  2. Raw recommendation r (the Kubernetes HPA rule, ratio = observed / target):
//       idle (no request ended, none in flight, none waiting):  r = 0
//       otherwise r = max(1, ceil(R * max(q / target_queue_ms, u / target_utilisation)))
//     with R = ready replicas and u = D / capacity (capacity = R x per-replica in-flight
//     limit). The utilisation term equals ceil(D / (per-replica limit x target)), so it
//     also works with R = 0, using the last per-replica limit seen (r = 1 before any). A ratio
//     within `tolerance` of 1 keeps r = R (no churn on noise).
//  3. Stabilisation, as the HPA's behaviour windows: up = the *lowest* r over the last
//     scale_up_window_s, down = the *highest* r over the last scale_down_window_s; with
//     C = current replicas: C < up -> up; C > down -> down; else C. So a scale-up needs
//     load that lasts the up-window (a short burst is absorbed by the queue), and a
//     scale-down needs the down-window to be quiet (no flapping after a lull). A window
//     counts only once the policy has watched that long (a fresh start changes nothing).
//  4. Cooldown: for cooldown_s after a change of decision, the previous decision stands
//     (also re-asserting it if a replica died: the controller re-issues it).
//  5. Scale from zero: C = 0 and D > 0 -> max(1, r) at once, skipping windows and cooldown,
//     because the first request is waiting for a replica and nothing else will serve it.
//  6. Clamp to [min_replicas, max_replicas]. Idle for the down-window -> min_replicas.
// The signal is per model (never per server), so idle models on a shared server do not
// dilute it, and a model with zero replicas still shows its waiting requests.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

#include "core/clock.h"
#include "gateway/autoscale/model_load.h"

namespace quiver::gateway {

// The per-model keys of facility.yaml's `autoscale.models.<name>` (docs/gateway-contract.md).
struct AutoscaleOptions {
  size_t min_replicas = 0;
  size_t max_replicas = 4;
  double target_queue_ms = 50;      // mean queue time per request; 0: signal off
  double target_utilisation = 0.7;  // (in flight + waiting) / capacity; 0: signal off
  Clock::Duration scale_up_window = std::chrono::seconds(15);
  Clock::Duration scale_down_window = std::chrono::seconds(300);
  Clock::Duration cooldown = std::chrono::seconds(60);
  double tolerance = 0.1;  // not in the YAML: |ratio - 1| <= tolerance keeps R
};

// One decision with what it was based on (for logs and tests).
struct AutoscaleDecision {
  size_t desired = 0;      // the replicas the model should have
  size_t recommended = 0;  // r of this tick, before windows, cooldown and clamp
  double queue_ms = 0;     // mean queue time of the requests that ended in the tick
  double utilisation = 0;  // demand / capacity (0 without capacity)
  bool idle = false;
};

// The policy of one model. Not thread-safe: its owner (AutoscaleController) serialises.
class AutoscalePolicy {
 public:
  AutoscalePolicy(std::shared_ptr<Clock> clock, AutoscaleOptions options);

  // One tick: `load` is the model's current sample (cumulative counters), `current` the
  // replicas starting or running. The first call only records the counters' baseline
  // (rates need two samples) and keeps `current`, but still applies scale-from-zero and
  // the clamp.
  AutoscaleDecision Update(const ModelLoad& load, size_t current);

  const AutoscaleOptions& options() const { return options_; }

 private:
  struct Recommendation {
    Clock::TimePoint at;
    size_t replicas;
  };
  size_t Recommend(const ModelLoad& load, AutoscaleDecision& d);
  size_t Stabilise(Clock::TimePoint now, size_t recommended, size_t current);
  size_t Clamp(size_t n) const;

  std::shared_ptr<Clock> clock_;
  AutoscaleOptions options_;
  std::optional<ModelLoad> previous_;            // last sample, for the counters' deltas
  double per_replica_capacity_ = 0;              // last capacity / ready_replicas seen
  Clock::TimePoint first_update_{};              // when Update() was first called
  std::deque<Recommendation> history_;           // within the longer window, oldest first
  std::optional<size_t> last_desired_;           // the previous decision
  std::optional<Clock::TimePoint> last_change_;  // when the decision last changed
};

}  // namespace quiver::gateway
