#pragma once
// The Router's private state types, shared by its translation units (router*.cc).

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/router.h"

namespace quiver::gateway {

struct Router::Upstream {
  std::string url;
  std::shared_ptr<InferenceService> service;
  std::atomic<bool> draining{false};
};

// Per model, for Load() and the metrics. Atomics: updated on every request without a lock.
struct Router::ModelCounters {
  std::atomic<uint64_t> success{0};
  std::atomic<uint64_t> failure{0};
  std::atomic<uint64_t> rejected{0};  // by admission (tenants' limits)
  std::atomic<uint64_t> queue_ns_total{0};
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> waiting{0};
  std::atomic<int64_t> last_used_ns{0};  // Clock time of the last request sent
};

// One client request, from Infer to its `done`. Touched by one thread at a time: each
// attempt starts only after the previous one ended.
struct Router::Call {
  InferRequest request;  // kept for retries; each attempt sends a copy
  InferCallback done;
  ModelCounters* counters = nullptr;
  Clock::TimePoint received{};
  std::vector<std::string> tried;  // upstreams whose attempt failed
  Status last_error;
  bool admitted = false;  // owes the scheduler a Finished
  bool started = false;   // owes the retry budget a RequestFinished
  bool sent = false;      // left `waiting` for `in_flight`
  bool in_retry = false;  // holds a retry slot
  bool waited = false;    // has waited for a model once (never twice)
};

// Something waiting for a model version to become READY: a request, or a metadata call.
struct Router::Waiter {
  std::string model;
  std::string version;
  Clock::TimePoint deadline;
  std::function<void(Status)> resume;  // OK: ready now; else why not (called once)
};

inline int64_t Nanos(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace quiver::gateway
