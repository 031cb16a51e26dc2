#include "gateway/balancer/p2c/p2c_balancer.h"

#include <cassert>

namespace quiver::gateway {

P2cBalancer::P2cBalancer()
    : P2cBalancer([gen = std::mt19937_64(std::random_device{}())](uint64_t bound) mutable {
        return std::uniform_int_distribution<uint64_t>(0, bound - 1)(gen);
      }) {}

P2cBalancer::P2cBalancer(Rng rng) : rng_(std::move(rng)) {}

std::pair<size_t, size_t> P2cBalancer::Load(std::string_view upstream,
                                            std::string_view model) const {
  auto it = busy_.find(upstream);
  if (it == busy_.end()) return {0, 0};
  auto m = it->second.per_model.find(model);
  return {m == it->second.per_model.end() ? 0 : m->second, it->second.total};
}

Result<std::string> P2cBalancer::Choose(std::string_view model,
                                        std::span<const std::string> candidates) {
  if (candidates.empty()) {
    return Status::Unavailable("no upstream available for model '" + std::string(model) + "'");
  }
  std::lock_guard lock(mutex_);
  const std::string* chosen = &candidates[0];
  if (candidates.size() > 1) {
    // Two distinct indices, uniformly: the second drawn from the n-1 others.
    const uint64_t n = candidates.size();
    const uint64_t i = rng_(n) % n;
    uint64_t j = rng_(n - 1) % (n - 1);
    if (j >= i) ++j;
    // Lexicographic (per model, total): fewer in flight wins; a full tie keeps the first.
    chosen =
        Load(candidates[j], model) < Load(candidates[i], model) ? &candidates[j] : &candidates[i];
  }
  auto it = busy_.find(*chosen);
  if (it == busy_.end()) it = busy_.emplace(*chosen, Counts{}).first;
  Counts& counts = it->second;
  counts.forgotten = false;  // chosen again: back in the pool
  ++counts.total;
  auto m = counts.per_model.find(model);
  if (m == counts.per_model.end()) m = counts.per_model.emplace(std::string(model), 0).first;
  ++m->second;
  return *chosen;
}

void P2cBalancer::Done(std::string_view upstream, std::string_view model) {
  std::lock_guard lock(mutex_);
  auto it = busy_.find(upstream);
  if (it == busy_.end()) {
    assert(false && "P2cBalancer::Done without a matching Choose");
    return;
  }
  auto m = it->second.per_model.find(model);
  if (m == it->second.per_model.end()) {
    assert(false && "P2cBalancer::Done without a matching Choose");
    return;
  }
  if (m->second == 0) {
    assert(false && "P2cBalancer::Done more often than Choose");
    return;
  }
  --m->second;
  if (--it->second.total == 0 && it->second.forgotten) busy_.erase(it);
}

void P2cBalancer::Forget(std::string_view upstream) {
  std::lock_guard lock(mutex_);
  auto it = busy_.find(upstream);
  if (it == busy_.end()) return;
  if (it->second.total == 0) {
    busy_.erase(it);
  } else {
    it->second.forgotten = true;
  }
}

size_t P2cBalancer::InFlight(std::string_view upstream, std::string_view model) const {
  std::lock_guard lock(mutex_);
  auto [per_model, total] = Load(upstream, model);
  return model.empty() ? total : per_model;
}

}  // namespace quiver::gateway
