#pragma once
// Histogram: a distribution over fixed buckets (Prometheus's "classic" histogram), for
// latencies recorded on the request hot path without a lock.
//
// Why a fixed array of atomic counters and not Boost.Histogram: the exported form is
// exactly Prometheus's (counts at fixed, upper-inclusive bounds plus a sum), so the whole
// structure is one std::lower_bound and two relaxed atomic adds per value. Boost.Histogram's
// axes are lower-inclusive ([a, b)), the opposite of Prometheus's `le`, its thread-safe
// storage keeps no sum, and its templates would reach every file that includes
// service/types.h.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace quiver {

// Upper bounds of the latency buckets, in nanoseconds: 50 us to 10 s in a 1-2-5 series
// (50, 100, 200, 500 us, 1, 2, 5 ms, ...). Round bounds let a query ask for "requests
// under 10 ms" exactly; the ratio between neighbours stays <= 2.5.
std::span<const uint64_t> LatencyBucketsNs();

// A copy of a Histogram at one moment; plain data.
struct HistogramSnapshot {
  // Ascending, inclusive upper bounds of the finite buckets. Empty: no histogram kept.
  std::vector<uint64_t> bounds;
  // Per-bucket counts, not cumulative: bounds.size() + 1 entries, the last one for values
  // above every bound (Prometheus's le="+Inf" minus the others). Empty when bounds is.
  std::vector<uint64_t> counts;
  // Sum of the recorded values.
  uint64_t sum = 0;

  bool empty() const { return bounds.empty(); }
  // Number of recorded values (the sum of `counts`).
  uint64_t Count() const;
  // Cumulative counts as Prometheus exports them: entry i counts values <= bounds[i]; the
  // last entry (le="+Inf") equals Count(). Non-decreasing.
  std::vector<uint64_t> Cumulative() const;
};

// Thread-safe. Record is lock-free (two relaxed atomic adds) and may run concurrently with
// Snapshot; a snapshot taken meanwhile may contain a value's bucket count but not yet its
// part of the sum (each counter is exact on its own, and counts never go backwards).
class Histogram {
 public:
  // `bounds` must be strictly ascending (asserted); copied.
  explicit Histogram(std::span<const uint64_t> bounds = LatencyBucketsNs());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Adds one value.
  void Record(uint64_t value) {
    counts_[BucketIndex(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  // The bucket a value falls in: the first i with value <= bounds[i], or bounds.size()
  // (the overflow bucket) when it exceeds them all.
  size_t BucketIndex(uint64_t value) const;

  HistogramSnapshot Snapshot() const;

  std::span<const uint64_t> bounds() const { return bounds_; }

 private:
  const std::vector<uint64_t> bounds_;
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<uint64_t> sum_{0};
};

}  // namespace quiver
