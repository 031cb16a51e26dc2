#pragma once
// ModelLoad: what the gateway measures per model, sampled by the autoscaler (and exported
// to Prometheus, docs/gateway-contract.md). Counters are cumulative since the gateway
// started; the autoscaler turns them into rates over its own tick. Per model, never per
// server: a server that also hosts idle models does not dilute the signal, and a model
// with zero replicas still shows its waiting requests (scale from zero).

#include <cstdint>
#include <string>

namespace quiver::gateway {

struct ModelLoad {
  std::string model;
  uint64_t requests_total = 0;  // requests that ended (any outcome), cumulative
  uint64_t succeeded = 0;       // of which answered
  uint64_t failed = 0;          // of which failed after admission
  uint64_t rejected = 0;        // of which refused by admission (tenants' limits)
  uint64_t queue_ns_total = 0;  // summed time those requests waited before an upstream
                                // took them (fair queue + on-demand load), cumulative
  uint64_t in_flight = 0;       // requests at upstreams now
  uint64_t waiting = 0;         // requests waiting now (no replica yet, or capacity short)
  uint64_t ready_replicas = 0;  // upstreams with a version of the model READY
  uint64_t capacity = 0;        // ready_replicas x per-upstream in-flight limit (0 = none)
};

}  // namespace quiver::gateway
