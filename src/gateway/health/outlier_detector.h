#pragma once
// OutlierDetector: passive health. It watches the outcome of every request the Router sends
// and takes an upstream out of rotation (ejects it) when it fails where its peers do not:
//   - N consecutive failures (connection refused/reset, UNAVAILABLE, INTERNAL: the caller
//     reports only failures that are the upstream's fault, never the client's
//     INVALID_ARGUMENT or NOT_FOUND); or
//   - latency far above its peers: an EWMA of its latency for one model above k times the
//     median EWMA of the other upstreams serving that model (each with at least
//     min_samples), and above an absolute floor (1 ms vs 0.2 ms is noise, not an outlier).
//     Latency is compared per model because models differ by orders of magnitude; the
//     ejection is of the whole upstream (a slow model usually means a slow or shared GPU).
// Why passive ejection works: requests are the best health check there is (they exercise
// the real path, at the real rate), and a failing upstream is found within N requests
// instead of one active-check interval, while comparison with peers keeps a uniformly slow
// facility (everybody overloaded) from ejecting everyone.
//
// Life cycle of an upstream:  available --eject--> ejected --time passes--> probing
//   --probe succeeds--> available;  probing --probe fails--> ejected (longer).
// The k-th ejection in a row lasts base_ejection * 2^(k-1), at most max_ejection; the count
// starts again after the upstream has stayed available for backoff_reset_after. While
// ejected or probing an upstream gets no traffic; the Router sends a probe (server and
// model ready) to each upstream in ProbesDue() and reports it with ReportProbe. At most
// max_ejected_fraction of the known upstreams (and always at least one) are out at a time,
// so a facility-wide problem does not empty the pool.
//
// Time comes from the injected Clock. Thread-safe: one mutex, held for a map lookup and a
// few arithmetic operations per call (the peer median walks the upstreams serving the model).

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace quiver::gateway {

struct OutlierOptions {
  size_t consecutive_failures = 5;  // 0: never eject for failures
  double latency_factor = 3.0;      // k; 0: never eject for latency
  size_t min_samples = 20;          // per (upstream, model), before its EWMA counts
  size_t min_peers = 2;             // other upstreams with enough samples, for a median
  // Latencies under this never eject: on shared CPUs an idle peer's stale low average and
  // scheduling noise make small absolute latencies look like outliers (measured with
  // scripts/bench-gateway: 5 ms ejected a healthy upstream in every 3- and 4-server run).
  Clock::Duration latency_floor = std::chrono::milliseconds(50);
  double ewma_alpha = 0.1;  // weight of the newest sample
  Clock::Duration base_ejection = std::chrono::seconds(5);
  Clock::Duration max_ejection = std::chrono::minutes(5);
  Clock::Duration backoff_reset_after = std::chrono::minutes(5);
  double max_ejected_fraction = 0.5;
};

enum class UpstreamHealth { kAvailable, kEjected, kProbing };
std::string_view UpstreamHealthName(UpstreamHealth health);

// Why an upstream was ejected (for logs and metrics).
enum class EjectionReason { kNone, kConsecutiveFailures, kLatency, kFailedProbe };
std::string_view EjectionReasonName(EjectionReason reason);

class OutlierDetector {
 public:
  explicit OutlierDetector(std::shared_ptr<Clock> clock, OutlierOptions options = {});

  // Starts tracking `upstream` (available; an upstream added again starts afresh).
  void Add(std::string_view upstream);
  // Stops tracking `upstream` and forgets its history.
  void Remove(std::string_view upstream);

  // One finished request to `upstream` for `model`: `ok` false for a failure that is the
  // upstream's fault; `latency` counts only for successes. Reports about an upstream that
  // is ejected or probing (requests sent before its ejection), or not tracked (removed, or
  // never added), change nothing.
  // Returns true when this report ejected the upstream.
  bool Report(std::string_view upstream, std::string_view model, bool ok, Clock::Duration latency);

  // Whether `upstream` may get traffic now. Unknown upstreams are available.
  bool Available(std::string_view upstream) const;
  // The state now (an ejection whose time is up reads kProbing).
  UpstreamHealth Health(std::string_view upstream) const;
  EjectionReason LastEjectionReason(std::string_view upstream) const;
  // Upstreams whose ejection time is up and that await a probe, sorted.
  std::vector<std::string> ProbesDue() const;
  // The outcome of a probe of `upstream`: success re-admits it (failure and latency
  // history cleared); failure ejects it again, for longer. Ignored unless it is probing.
  void ReportProbe(std::string_view upstream, bool ok);

 private:
  struct Latency {
    double ewma_ns = 0;
    size_t samples = 0;
  };
  struct Upstream {
    size_t consecutive_failures = 0;
    bool ejected = false;  // ejected or probing (ejected_until tells which)
    Clock::TimePoint ejected_until{};
    Clock::TimePoint available_since{};
    uint32_t ejections_in_a_row = 0;
    EjectionReason reason = EjectionReason::kNone;
    std::map<std::string, Latency, std::less<>> latency;  // per model
  };
  using UpstreamMap = std::map<std::string, Upstream, std::less<>>;

  bool MayEject() const;                                                 // requires mutex_
  void Eject(Upstream& u, EjectionReason reason, Clock::TimePoint now);  // requires mutex_
  bool LatencyOutlier(std::string_view self, std::string_view model,
                      const Latency& mine) const;  // requires mutex_

  const std::shared_ptr<Clock> clock_;
  const OutlierOptions options_;
  mutable std::mutex mutex_;
  UpstreamMap upstreams_;  // guarded by mutex_
};

}  // namespace quiver::gateway
