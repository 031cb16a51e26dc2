#pragma once
// Statistics and repository indexes of several upstreams, merged as one server would
// report them: the gateway's GetStatistics and Index.

#include <vector>

#include "service/types.h"

namespace quiver::gateway {

// Sums the statistics of each (model, version) over upstreams: counts and durations add,
// last_inference_ms is the latest, batch statistics add per batch size, histograms add
// when their buckets match (else the merged one is empty). Sorted by model, then version.
std::vector<ModelStatistics> MergeStatistics(
    const std::vector<std::vector<ModelStatistics>>& per_upstream);

// One row per (model, version): READY where any upstream has it READY, else the first
// upstream's state and reason; a model's versionless row ("in the repository, nothing
// loaded") only when no upstream reports a version of it. Sorted by model, then version.
RepositoryIndex MergeIndexes(const std::vector<RepositoryIndex>& per_upstream);

}  // namespace quiver::gateway
