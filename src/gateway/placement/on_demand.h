#pragma once
// On-demand placement: where to load a model that some upstream's repository has but no
// upstream has loaded, and what to unload there first. A pure decision over a picture the
// Router assembles (placement table, balancer counts, its own last-use times); the Router
// carries it out (Unload each of unload_first, then Load) and makes sure only one load of a
// model is under way at a time.
//
// The rule, in order of priority:
//   1. Only upstreams whose repository has the model (and which the caller found healthy).
//   2. An upstream at its cap of loaded models must unload its least recently used *idle*
//      models (no request in flight) to make room; one that cannot is not eligible.
//   3. Least loaded first: fewest requests in flight over all its models, then fewest
//      unloads needed (each one costs a later reload), then fewest loaded models, then the
//      id, so the decision is deterministic.
// Least-loaded here (not power of two choices) because loads are rare and take seconds: the
// herd effect P2C avoids needs many concurrent decisions on the same stale counts, and the
// Router makes one decision per model at a time.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace quiver::gateway {

// A model loaded on an upstream, as the Router sees it.
struct LoadedModel {
  std::string model;
  Clock::TimePoint last_used{};  // the last request sent to it there (or its load)
  size_t in_flight = 0;          // requests in flight to it there
};

// An upstream that could take the model.
struct PlacementCandidate {
  std::string upstream;
  std::vector<LoadedModel> loaded;
};

struct PlacementDecision {
  std::string upstream;
  std::vector<std::string> unload_first;  // least recently used first
};

// Chooses where to load `model`. `max_loaded_models` is the per-upstream cap (0: no cap).
// Candidates already having `model` loaded are the caller's mistake: INVALID_ARGUMENT.
// NOT_FOUND naming the model when `candidates` is empty (no repository has it);
// RESOURCE_EXHAUSTED when every candidate is full of busy models.
Result<PlacementDecision> DecidePlacement(std::string_view model,
                                          const std::vector<PlacementCandidate>& candidates,
                                          size_t max_loaded_models);

}  // namespace quiver::gateway
