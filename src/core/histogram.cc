#include "core/histogram.h"

#include <algorithm>
#include <cassert>
#include <functional>

namespace quiver {
namespace {

constexpr uint64_t kUs = 1000;
constexpr uint64_t kLatencyBucketsNs[] = {
    50 * kUs,        100 * kUs,        200 * kUs,     500 * kUs,       1000 * kUs,
    2000 * kUs,      5000 * kUs,       10'000 * kUs,  20'000 * kUs,    50'000 * kUs,
    100'000 * kUs,   200'000 * kUs,    500'000 * kUs, 1'000'000 * kUs, 2'000'000 * kUs,
    5'000'000 * kUs, 10'000'000 * kUs,
};

}  // namespace

std::span<const uint64_t> LatencyBucketsNs() { return kLatencyBucketsNs; }

uint64_t HistogramSnapshot::Count() const {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

std::vector<uint64_t> HistogramSnapshot::Cumulative() const {
  std::vector<uint64_t> out(counts.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts.size(); ++i) out[i] = running += counts[i];
  return out;
}

Histogram::Histogram(std::span<const uint64_t> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {
  assert(std::adjacent_find(bounds_.begin(), bounds_.end(), std::greater_equal<>()) ==
             bounds_.end() &&
         "histogram bounds must be strictly ascending");
}

size_t Histogram::BucketIndex(uint64_t value) const {
  return static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                             bounds_.begin());
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot out;
  out.bounds = bounds_;
  out.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i < out.counts.size(); ++i) {
    out.counts[i] = counts_[i].load(std::memory_order_relaxed);
  }
  out.sum = sum_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace quiver
