#include "gateway/placement/on_demand.h"

#include <algorithm>
#include <optional>
#include <tuple>

namespace quiver::gateway {
namespace {

struct Option {
  size_t in_flight = 0;
  size_t loaded = 0;
  const std::string* upstream = nullptr;
  std::vector<std::string> unload;

  auto Key() const { return std::make_tuple(in_flight, unload.size(), loaded, *upstream); }
};

// The LRU idle models to unload so that one more fits under `cap`; nullopt if impossible.
std::optional<std::vector<std::string>> Evictions(const PlacementCandidate& c, size_t cap) {
  std::vector<std::string> out;
  if (cap == 0 || c.loaded.size() < cap) return out;
  const size_t needed = c.loaded.size() - cap + 1;
  std::vector<const LoadedModel*> idle;
  for (const LoadedModel& m : c.loaded) {
    if (m.in_flight == 0) idle.push_back(&m);
  }
  if (idle.size() < needed) return std::nullopt;
  std::stable_sort(idle.begin(), idle.end(), [](const LoadedModel* a, const LoadedModel* b) {
    return std::tie(a->last_used, a->model) < std::tie(b->last_used, b->model);
  });
  for (size_t i = 0; i < needed; ++i) out.push_back(idle[i]->model);
  return out;
}

}  // namespace

Result<PlacementDecision> DecidePlacement(std::string_view model,
                                          const std::vector<PlacementCandidate>& candidates,
                                          size_t max_loaded_models) {
  if (candidates.empty()) {
    return Status::NotFound("model '" + std::string(model) +
                            "' is in no available upstream's repository");
  }
  std::optional<Option> best;
  for (const PlacementCandidate& c : candidates) {
    Option o;
    o.upstream = &c.upstream;
    o.loaded = c.loaded.size();
    for (const LoadedModel& m : c.loaded) {
      if (m.model == model) {
        return Status::InvalidArgument("model '" + std::string(model) + "' is already loaded on " +
                                       c.upstream);
      }
      o.in_flight += m.in_flight;
    }
    auto unload = Evictions(c, max_loaded_models);
    if (!unload) continue;
    o.unload = std::move(*unload);
    if (!best || o.Key() < best->Key()) best = std::move(o);
  }
  if (!best) {
    return Status::ResourceExhausted("model '" + std::string(model) +
                                     "' cannot be loaded: every upstream that has it is at its "
                                     "cap of " +
                                     std::to_string(max_loaded_models) +
                                     " loaded models, all busy");
  }
  return PlacementDecision{*best->upstream, std::move(best->unload)};
}

}  // namespace quiver::gateway
