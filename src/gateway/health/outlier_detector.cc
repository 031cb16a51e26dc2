#include "gateway/health/outlier_detector.h"

#include <algorithm>
#include <utility>

namespace quiver::gateway {

std::string_view UpstreamHealthName(UpstreamHealth health) {
  switch (health) {
    case UpstreamHealth::kAvailable:
      return "available";
    case UpstreamHealth::kEjected:
      return "ejected";
    case UpstreamHealth::kProbing:
      return "probing";
  }
  return "unknown";
}

std::string_view EjectionReasonName(EjectionReason reason) {
  switch (reason) {
    case EjectionReason::kNone:
      return "none";
    case EjectionReason::kConsecutiveFailures:
      return "consecutive failures";
    case EjectionReason::kLatency:
      return "latency far above its peers";
    case EjectionReason::kFailedProbe:
      return "failed probe";
  }
  return "none";
}

OutlierDetector::OutlierDetector(std::shared_ptr<Clock> clock, OutlierOptions options)
    : clock_(std::move(clock)), options_(options) {}

void OutlierDetector::Add(std::string_view upstream) {
  std::lock_guard lock(mutex_);
  Upstream fresh;
  fresh.available_since = clock_->Now();
  upstreams_.insert_or_assign(std::string(upstream), std::move(fresh));
}

void OutlierDetector::Remove(std::string_view upstream) {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it != upstreams_.end()) upstreams_.erase(it);
}

bool OutlierDetector::MayEject() const {
  const size_t out = std::count_if(upstreams_.begin(), upstreams_.end(),
                                   [](const auto& u) { return u.second.ejected; });
  const auto allowed = std::max<size_t>(
      1,
      static_cast<size_t>(options_.max_ejected_fraction * static_cast<double>(upstreams_.size())));
  return out < allowed;
}

void OutlierDetector::Eject(Upstream& u, EjectionReason reason, Clock::TimePoint now) {
  // A failed probe continues the series; otherwise a long healthy spell starts it again.
  if (reason != EjectionReason::kFailedProbe &&
      now - u.available_since >= options_.backoff_reset_after) {
    u.ejections_in_a_row = 0;
  }
  ++u.ejections_in_a_row;
  Clock::Duration d = options_.base_ejection;
  for (uint32_t i = 1; i < u.ejections_in_a_row && d < options_.max_ejection; ++i) d *= 2;
  d = std::min(d, options_.max_ejection);
  u.ejected = true;
  u.ejected_until = now + d;
  u.reason = reason;
  u.consecutive_failures = 0;
  u.latency.clear();
}

bool OutlierDetector::LatencyOutlier(std::string_view self, std::string_view model,
                                     const Latency& mine) const {
  std::vector<double> peers;
  for (const auto& [name, u] : upstreams_) {
    if (name == self || u.ejected) continue;
    auto l = u.latency.find(model);
    if (l != u.latency.end() && l->second.samples >= options_.min_samples) {
      peers.push_back(l->second.ewma_ns);
    }
  }
  if (peers.empty() || peers.size() < options_.min_peers) return false;
  const size_t mid = peers.size() / 2;
  std::nth_element(peers.begin(), peers.begin() + mid, peers.end());
  double median = peers[mid];
  if (peers.size() % 2 == 0) {
    median = (median + *std::max_element(peers.begin(), peers.begin() + mid)) / 2;
  }
  const auto floor_ns = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.latency_floor).count());
  return mine.ewma_ns > options_.latency_factor * median && mine.ewma_ns > floor_ns;
}

bool OutlierDetector::Report(std::string_view upstream, std::string_view model, bool ok,
                             Clock::Duration latency) {
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_->Now();
  // Reports about an upstream not (or no longer) tracked are late answers of a removed one:
  // tracking it again would let ghosts count in max_ejected_fraction.
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return false;
  Upstream& u = it->second;
  if (u.ejected) return false;
  if (!ok) {
    ++u.consecutive_failures;
    if (options_.consecutive_failures > 0 &&
        u.consecutive_failures >= options_.consecutive_failures && MayEject()) {
      Eject(u, EjectionReason::kConsecutiveFailures, now);
      return true;
    }
    return false;
  }
  u.consecutive_failures = 0;
  auto found = u.latency.find(model);  // no string built per report once the model is known
  if (found == u.latency.end()) found = u.latency.emplace(std::string(model), Latency{}).first;
  Latency& l = found->second;
  const auto x =
      static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
  l.ewma_ns = l.samples == 0 ? x : options_.ewma_alpha * x + (1 - options_.ewma_alpha) * l.ewma_ns;
  ++l.samples;
  if (options_.latency_factor > 0 && l.samples >= options_.min_samples &&
      LatencyOutlier(upstream, model, l) && MayEject()) {
    Eject(u, EjectionReason::kLatency, now);
    return true;
  }
  return false;
}

bool OutlierDetector::Available(std::string_view upstream) const {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  return it == upstreams_.end() || !it->second.ejected;
}

UpstreamHealth OutlierDetector::Health(std::string_view upstream) const {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end() || !it->second.ejected) return UpstreamHealth::kAvailable;
  return clock_->Now() < it->second.ejected_until ? UpstreamHealth::kEjected
                                                  : UpstreamHealth::kProbing;
}

EjectionReason OutlierDetector::LastEjectionReason(std::string_view upstream) const {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  return it == upstreams_.end() ? EjectionReason::kNone : it->second.reason;
}

std::vector<std::string> OutlierDetector::ProbesDue() const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_->Now();
  for (const auto& [name, u] : upstreams_) {
    if (u.ejected && now >= u.ejected_until) out.push_back(name);
  }
  return out;
}

void OutlierDetector::ReportProbe(std::string_view upstream, bool ok) {
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_->Now();
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return;
  Upstream& u = it->second;
  if (!u.ejected || now < u.ejected_until) return;  // not probing
  if (!ok) {
    Eject(u, EjectionReason::kFailedProbe, now);
    return;
  }
  u.ejected = false;
  u.available_since = now;
  u.consecutive_failures = 0;
  u.latency.clear();
}

}  // namespace quiver::gateway
