#include "engine/model_stats.h"

#include <utility>

namespace quiver::engine {
namespace {

void Add(StatisticDuration& d, uint64_t count, uint64_t ns) {
  d.count += count;
  d.ns += ns;
}

}  // namespace

ModelStats::ModelStats(std::string model_name, std::string model_version)
    : name_(std::move(model_name)), version_(std::move(model_version)) {}

void ModelStats::RecordBatch(uint64_t batch_size, const ComputeDurations& compute,
                             std::span<const RequestTiming> requests, uint64_t epoch_ms) {
  std::unique_lock lock(mutex_);
  totals_.last_inference_ms = epoch_ms;
  totals_.inference_count += batch_size;
  totals_.execution_count += 1;
  const uint64_t n = requests.size();
  for (const RequestTiming& r : requests) {
    Add(totals_.success, 1, r.request_ns);
    Add(totals_.queue, 1, r.queue_ns);
  }
  Add(totals_.compute_input, n, n * compute.input_ns);
  Add(totals_.compute_infer, n, n * compute.infer_ns);
  Add(totals_.compute_output, n, n * compute.output_ns);
  BatchStatistics& b = by_batch_[batch_size];
  b.batch_size = batch_size;
  Add(b.compute_input, 1, compute.input_ns);
  Add(b.compute_infer, 1, compute.infer_ns);
  Add(b.compute_output, 1, compute.output_ns);
  lock.unlock();
  for (const RequestTiming& r : requests) {
    request_histogram_.Record(r.request_ns);
    queue_histogram_.Record(r.queue_ns);
  }
  compute_infer_histogram_.Record(compute.infer_ns);
}

void ModelStats::RecordFailure(uint64_t request_ns) {
  std::lock_guard lock(mutex_);
  Add(totals_.fail, 1, request_ns);
}

ModelStatistics ModelStats::Snapshot() const {
  ModelStatistics out;
  {
    std::lock_guard lock(mutex_);
    out = totals_;
    out.batch_stats.reserve(by_batch_.size());
    for (const auto& [size, stats] : by_batch_) out.batch_stats.push_back(stats);
  }
  out.name = name_;
  out.version = version_;
  out.request_histogram = request_histogram_.Snapshot();
  out.queue_histogram = queue_histogram_.Snapshot();
  out.compute_infer_histogram = compute_infer_histogram_.Snapshot();
  return out;
}

}  // namespace quiver::engine
