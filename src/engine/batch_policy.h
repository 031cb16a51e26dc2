#pragma once
// The dynamic-batching decision, as a pure function of the queue and the time, so that it
// can be unit-tested without threads (the Scheduler supplies the queue view and acts on
// the decision).
//
// Why it works this way (Triton's dynamic batcher): a batch is built from the head of the
// queue in FIFO order, so no request is overtaken; it is sent as soon as waiting cannot
// make it better (it reached a preferred size or can no longer grow), and otherwise no
// later than max_queue_delay after its oldest request arrived, which bounds the latency
// that batching adds.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/clock.h"

namespace quiver::engine {

// What the policy needs to know about one queued request.
struct BatchCandidate {
  int64_t batch_size = 0;    // the request's dim 0
  Clock::TimePoint arrival;  // when it was enqueued
  uint64_t shape_class = 0;  // requests with equal classes can share a batch
};

// The outcome of one decision.
struct BatchDecision {
  // > 0: dispatch the first `count` requests of the queue now, as one batch.
  size_t count = 0;
  // When count == 0: decide again at this time (or earlier, when the queue changes).
  // TimePoint::max() when the queue is empty.
  Clock::TimePoint wait_until = Clock::TimePoint::max();
};

// Dynamic-batching parameters of one model version. Immutable; thread-safe.
class BatchPolicy {
 public:
  // `max_batch_size` > 0. Preferred sizes outside [1, max_batch_size] are ignored; with
  // none left, max_batch_size is the only target.
  BatchPolicy(int64_t max_batch_size, std::vector<int64_t> preferred_batch_sizes,
              Clock::Duration max_queue_delay);

  // Decides what to do with `queue` (head first) at time `now`. `truncated` says that the
  // queue holds more requests than `queue` shows (the caller may pass only a prefix that
  // is long enough to fill a batch); reaching the end of a truncated view counts as
  // "cannot grow". Walks from the head accumulating requests of the head's shape class
  // while the sum of batch sizes stays <= max_batch_size, then:
  //  1. some prefix sum equals a preferred size: dispatch the largest such prefix;
  //  2. the batch cannot grow (sum == max_batch_size, the next request has another
  //     class or would overflow): dispatch everything accumulated;
  //  3. now >= head arrival + max_queue_delay: dispatch everything accumulated;
  //  4. otherwise wait until head arrival + max_queue_delay.
  // A head request larger than max_batch_size is dispatched alone.
  BatchDecision Decide(std::span<const BatchCandidate> queue, bool truncated,
                       Clock::TimePoint now) const;

  int64_t max_batch_size() const { return max_batch_size_; }
  // True when a lone request of `batch_size` at the head of an empty queue would be
  // dispatched at once (rule 1 or 2), so the scheduler may run it inline.
  bool DispatchesAlone(int64_t batch_size) const {
    return IsPreferred(batch_size) || batch_size >= max_batch_size_;
  }

 private:
  bool IsPreferred(int64_t size) const;

  int64_t max_batch_size_;
  std::vector<int64_t> preferred_;  // sorted, unique, within [1, max_batch_size]
  Clock::Duration max_queue_delay_;
};

// `t + d`, saturating at TimePoint::max() instead of overflowing.
Clock::TimePoint SaturatingAdd(Clock::TimePoint t, Clock::Duration d);

}  // namespace quiver::engine
