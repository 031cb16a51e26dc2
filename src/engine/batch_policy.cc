#include "engine/batch_policy.h"

#include <algorithm>

namespace quiver::engine {

Clock::TimePoint SaturatingAdd(Clock::TimePoint t, Clock::Duration d) {
  if (d <= Clock::Duration::zero()) return t;
  if (t.time_since_epoch() > Clock::TimePoint::max().time_since_epoch() - d) {
    return Clock::TimePoint::max();
  }
  return t + d;
}

BatchPolicy::BatchPolicy(int64_t max_batch_size, std::vector<int64_t> preferred_batch_sizes,
                         Clock::Duration max_queue_delay)
    : max_batch_size_(max_batch_size),
      preferred_(std::move(preferred_batch_sizes)),
      max_queue_delay_(max_queue_delay) {
  std::erase_if(preferred_, [&](int64_t s) { return s < 1 || s > max_batch_size_; });
  std::sort(preferred_.begin(), preferred_.end());
  preferred_.erase(std::unique(preferred_.begin(), preferred_.end()), preferred_.end());
}

bool BatchPolicy::IsPreferred(int64_t size) const {
  if (preferred_.empty()) return size == max_batch_size_;
  return std::binary_search(preferred_.begin(), preferred_.end(), size);
}

BatchDecision BatchPolicy::Decide(std::span<const BatchCandidate> queue, bool truncated,
                                  Clock::TimePoint now) const {
  if (queue.empty()) return {};
  const uint64_t shape_class = queue.front().shape_class;
  int64_t sum = 0;
  size_t count = 0;
  size_t preferred_count = 0;
  bool can_grow = true;
  for (const BatchCandidate& c : queue) {
    if (c.shape_class != shape_class || c.batch_size > max_batch_size_ - sum) {
      can_grow = false;
      break;
    }
    sum += c.batch_size;
    ++count;
    if (IsPreferred(sum)) preferred_count = count;
    if (sum == max_batch_size_) {
      can_grow = false;
      break;
    }
  }
  if (count == queue.size() && truncated) can_grow = false;
  // An oversized head (cannot happen for validated requests) still has to leave the queue.
  if (count == 0) return {1, {}};
  if (preferred_count > 0) return {preferred_count, {}};
  if (!can_grow) return {count, {}};
  const Clock::TimePoint deadline = SaturatingAdd(queue.front().arrival, max_queue_delay_);
  if (now >= deadline) return {count, {}};
  return {0, deadline};
}

}  // namespace quiver::engine
