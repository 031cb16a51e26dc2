#include "gateway/merge_statistics.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace quiver::gateway {
namespace {

void Add(StatisticDuration& into, const StatisticDuration& from) {
  into.count += from.count;
  into.ns += from.ns;
}

void Add(HistogramSnapshot& into, const HistogramSnapshot& from, bool first) {
  if (first) {
    into = from;
    return;
  }
  if (into.bounds != from.bounds || into.counts.size() != from.counts.size()) {
    into = HistogramSnapshot{};  // incomparable buckets: report none rather than a wrong one
    return;
  }
  for (size_t i = 0; i < into.counts.size(); ++i) into.counts[i] += from.counts[i];
  into.sum += from.sum;
}

void Add(ModelStatistics& into, const ModelStatistics& from, bool first) {
  into.last_inference_ms = std::max(into.last_inference_ms, from.last_inference_ms);
  into.inference_count += from.inference_count;
  into.execution_count += from.execution_count;
  Add(into.success, from.success);
  Add(into.fail, from.fail);
  Add(into.queue, from.queue);
  Add(into.compute_input, from.compute_input);
  Add(into.compute_infer, from.compute_infer);
  Add(into.compute_output, from.compute_output);
  for (const auto& batch : from.batch_stats) {
    auto it =
        std::find_if(into.batch_stats.begin(), into.batch_stats.end(),
                     [&](const BatchStatistics& b) { return b.batch_size == batch.batch_size; });
    if (it == into.batch_stats.end()) {
      into.batch_stats.push_back(batch);
      continue;
    }
    Add(it->compute_input, batch.compute_input);
    Add(it->compute_infer, batch.compute_infer);
    Add(it->compute_output, batch.compute_output);
  }
  std::sort(into.batch_stats.begin(), into.batch_stats.end(),
            [](const BatchStatistics& a, const BatchStatistics& b) {
              return a.batch_size < b.batch_size;
            });
  Add(into.request_histogram, from.request_histogram, first);
  Add(into.queue_histogram, from.queue_histogram, first);
  Add(into.compute_infer_histogram, from.compute_infer_histogram, first);
}

}  // namespace

std::vector<ModelStatistics> MergeStatistics(
    const std::vector<std::vector<ModelStatistics>>& per_upstream) {
  std::map<std::pair<std::string, std::string>, ModelStatistics> merged;
  for (const auto& stats : per_upstream) {
    for (const auto& s : stats) {
      auto [it, inserted] = merged.try_emplace({s.name, s.version});
      if (inserted) {
        it->second.name = s.name;
        it->second.version = s.version;
      }
      Add(it->second, s, inserted);
    }
  }
  std::vector<ModelStatistics> out;
  out.reserve(merged.size());
  for (auto& [key, s] : merged) out.push_back(std::move(s));
  return out;
}

RepositoryIndex MergeIndexes(const std::vector<RepositoryIndex>& per_upstream) {
  std::map<std::pair<std::string, std::string>, RepositoryEntry> rows;
  std::set<std::string> versioned;
  for (const auto& index : per_upstream) {
    for (const auto& entry : index) {
      if (!entry.version.empty()) versioned.insert(entry.name);
      auto [it, inserted] = rows.try_emplace({entry.name, entry.version}, entry);
      if (!inserted && entry.state == "READY" && it->second.state != "READY") it->second = entry;
    }
  }
  RepositoryIndex out;
  for (auto& [key, entry] : rows) {
    if (entry.version.empty() && versioned.contains(entry.name)) continue;
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace quiver::gateway
