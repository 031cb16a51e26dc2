#pragma once
// Statistics of one model version, with the semantics of Triton's statistics extension:
// request counts and durations (success / fail / queue / compute phases, where every
// request of a batch is charged the whole batch's compute durations), execution counts,
// and per-batch-size execution statistics; plus Quiver's latency histograms (request and
// queue durations per successful request, compute-infer duration per execution).

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>

#include "core/histogram.h"
#include "service/types.h"

namespace quiver::engine {

// The three compute phases of one execution, in nanoseconds.
struct ComputeDurations {
  uint64_t input_ns = 0;
  uint64_t infer_ns = 0;
  uint64_t output_ns = 0;
};

// Timing of one successful request.
struct RequestTiming {
  uint64_t request_ns = 0;  // enqueue to response
  uint64_t queue_ns = 0;    // enqueue to execution start
};

// Accumulates statistics; thread-safe (one internal mutex, held only to add numbers; the
// histograms are lock-free and recorded outside it, so a snapshot taken while a batch is
// being recorded may count it in the totals but not yet in a histogram).
class ModelStats {
 public:
  ModelStats(std::string model_name, std::string model_version);

  // One successful execution of `batch_size` inference elements (1 for a model without a
  // batch dimension) serving `requests`: adds one execution, batch_size inferences, one
  // batch_stats entry for batch_size, and for each request a success, its queue time and
  // the batch's compute durations. `epoch_ms` becomes last_inference_ms. Histograms: each
  // request's request_ns and queue_ns, and compute.infer_ns once.
  void RecordBatch(uint64_t batch_size, const ComputeDurations& compute,
                   std::span<const RequestTiming> requests, uint64_t epoch_ms);
  // One failed request (backend error, timeout, rejection), `request_ns` after it arrived.
  // Not part of the histograms (like Triton's request duration, they cover successes).
  void RecordFailure(uint64_t request_ns);

  // A consistent copy of everything recorded so far.
  ModelStatistics Snapshot() const;

 private:
  const std::string name_;
  const std::string version_;
  mutable std::mutex mutex_;
  ModelStatistics totals_;                        // guarded by mutex_; batch_stats unused
  std::map<uint64_t, BatchStatistics> by_batch_;  // guarded by mutex_
  Histogram request_histogram_;        // lock-free
  Histogram queue_histogram_;          // lock-free
  Histogram compute_infer_histogram_;  // lock-free
};

}  // namespace quiver::engine
