#pragma once
// Power of two choices on outstanding requests, per (upstream, model).
//
// Why it works: sending each request to a uniformly random upstream leaves the busiest of n
// upstreams with about log n / log log n times the mean load; sampling two at random and
// taking the one with fewer requests in flight brings that down to log log n / log 2, an
// exponential improvement (Azar, Broder, Karlin, Upfal 1994; Mitzenmacher 2001), for the
// cost of two counter reads. It also avoids the failure of "always the least loaded":
// when many requests decide on the same (stale, or briefly equal) counts they all pile onto
// the one minimum (herding), whereas two random samples spread concurrent decisions and
// still never pick the worse of the pair. A slow or stuck upstream accumulates outstanding
// requests and so loses every comparison it enters, with no latency measurement needed.
//
// Load is counted per (upstream, model), because a server busy with one model can still
// serve another from a different instance group; ties are broken by the upstream's total
// in flight over all models (a shared GPU), then by the first sample. The two samples are
// distinct candidates; one candidate is returned without drawing.
//
// Thread-safe: one mutex over the counters and the random generator, held for a few
// comparisons per call (never across a call to an upstream). Memory: one counter per
// (upstream, model) pair ever chosen, until Forget(upstream).

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "gateway/balancer/balancer.h"

namespace quiver::gateway {

class P2cBalancer final : public Balancer {
 public:
  // Returns a uniformly distributed integer in [0, bound), bound >= 1; called under the
  // balancer's lock (so it need not be thread-safe itself).
  using Rng = std::function<uint64_t(uint64_t bound)>;

  // Seeded from std::random_device.
  P2cBalancer();
  // With an injected generator (deterministic tests).
  explicit P2cBalancer(Rng rng);

  Result<std::string> Choose(std::string_view model,
                             std::span<const std::string> candidates) override;
  void Done(std::string_view upstream, std::string_view model) override;
  size_t InFlight(std::string_view upstream, std::string_view model) const override;
  void Forget(std::string_view upstream) override;

 private:
  // Requests in flight on one upstream. Entries stay at zero (no allocation per request
  // once an (upstream, model) pair has been seen); Forget drops an upstream's.
  struct Counts {
    size_t total = 0;
    bool forgotten = false;  // erase when total reaches 0
    std::map<std::string, size_t, std::less<>> per_model;
  };
  // Per-model and total counts of `upstream`; both 0 when it has nothing in flight.
  std::pair<size_t, size_t> Load(std::string_view upstream, std::string_view model) const;

  mutable std::mutex mutex_;
  Rng rng_;                                          // guarded by mutex_
  std::map<std::string, Counts, std::less<>> busy_;  // guarded by mutex_
};

}  // namespace quiver::gateway
