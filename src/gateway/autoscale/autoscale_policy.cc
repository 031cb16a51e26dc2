#include "gateway/autoscale/autoscale_policy.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace quiver::gateway {
namespace {

// Counter delta that survives a gateway restart (the counter starting again from zero).
uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// ceil() that does not turn 2.0000000001 (rounding noise) into 3.
size_t CeilCount(double x) {
  if (!(x > 0)) return 0;
  return static_cast<size_t>(std::ceil(x - 1e-9));
}

}  // namespace

AutoscalePolicy::AutoscalePolicy(std::shared_ptr<Clock> clock, AutoscaleOptions options)
    : clock_(std::move(clock)), options_(options) {}

AutoscaleDecision AutoscalePolicy::Update(const ModelLoad& load, size_t current) {
  const Clock::TimePoint now = clock_->Now();
  const bool first = !previous_;
  if (first) first_update_ = now;
  AutoscaleDecision d;
  d.recommended = Recommend(load, d);
  previous_ = load;

  const uint64_t demand = load.in_flight + load.waiting;
  size_t desired;
  if (current == 0 && demand > 0) {
    desired = std::max<size_t>(1, d.recommended);  // scale from zero: nobody else will serve
    history_.push_back({now, d.recommended});
  } else if (first) {
    desired = current;  // no rates yet
  } else {
    desired = Stabilise(now, d.recommended, current);
    if (last_desired_ && last_change_ && now - *last_change_ < options_.cooldown) {
      desired = *last_desired_;
    }
  }
  desired = Clamp(desired);
  if (!last_desired_ || desired != *last_desired_) {
    if (last_desired_) last_change_ = now;
    last_desired_ = desired;
  }
  d.desired = desired;
  return d;
}

size_t AutoscalePolicy::Recommend(const ModelLoad& load, AutoscaleDecision& d) {
  const uint64_t ended = previous_ ? Delta(load.requests_total, previous_->requests_total) : 0;
  const uint64_t queue_ns = previous_ ? Delta(load.queue_ns_total, previous_->queue_ns_total) : 0;
  const uint64_t demand = load.in_flight + load.waiting;
  if (load.ready_replicas > 0 && load.capacity > 0) {
    per_replica_capacity_ =
        static_cast<double>(load.capacity) / static_cast<double>(load.ready_replicas);
  }
  d.idle = ended == 0 && demand == 0;
  if (d.idle) return 0;

  d.queue_ms = ended > 0 ? static_cast<double>(queue_ns) / static_cast<double>(ended) / 1e6 : 0;
  // Without an in-flight limit (capacity 0) utilisation is unknown: the queue time decides.
  d.utilisation =
      load.capacity > 0 ? static_cast<double>(demand) / static_cast<double>(load.capacity) : 0;

  const size_t ready = load.ready_replicas;
  double ratio = 0;
  if (options_.target_queue_ms > 0) ratio = std::max(ratio, d.queue_ms / options_.target_queue_ms);
  if (options_.target_utilisation > 0) {
    ratio = std::max(ratio, d.utilisation / options_.target_utilisation);
  }
  size_t r;
  if (ready == 0) {
    // Nothing ready to take a ratio of: size by demand alone, once a replica's size is known.
    r = options_.target_utilisation > 0 && per_replica_capacity_ > 0
            ? CeilCount(static_cast<double>(demand) /
                        (per_replica_capacity_ * options_.target_utilisation))
            : 1;
  } else if (std::abs(ratio - 1.0) <= options_.tolerance) {
    r = ready;
  } else {
    r = CeilCount(static_cast<double>(ready) * ratio);
  }
  return std::max<size_t>(1, r);
}

size_t AutoscalePolicy::Stabilise(Clock::TimePoint now, size_t recommended, size_t current) {
  history_.push_back({now, recommended});
  const Clock::Duration keep = std::max(options_.scale_up_window, options_.scale_down_window);
  while (!history_.empty() && now - history_.front().at > keep) history_.pop_front();

  size_t up = recommended;
  size_t down = recommended;
  for (const Recommendation& r : history_) {
    const Clock::Duration age = now - r.at;
    if (age <= options_.scale_up_window) up = std::min(up, r.replicas);
    if (age <= options_.scale_down_window) down = std::max(down, r.replicas);
  }
  // A window counts only once this policy has watched for that long (e.g. after a restart).
  const Clock::Duration watched = now - first_update_;
  if (current < up && watched >= options_.scale_up_window) return up;
  if (current > down && watched >= options_.scale_down_window) return down;
  return current;
}

size_t AutoscalePolicy::Clamp(size_t n) const {
  return std::clamp(n, options_.min_replicas,
                    std::max(options_.min_replicas, options_.max_replicas));
}

}  // namespace quiver::gateway
