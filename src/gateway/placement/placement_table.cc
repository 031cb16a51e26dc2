#include "gateway/placement/placement_table.h"

#include <algorithm>
#include <set>
#include <utility>

namespace quiver::gateway {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string NotReadyMessage(std::string_view model, std::string_view version) {
  std::string m = "model '" + std::string(model) + "'";
  if (!version.empty()) m += " version '" + std::string(version) + "'";
  return m + " is not ready on any upstream";
}

}  // namespace

int CompareVersions(std::string_view a, std::string_view b) {
  const bool na = AllDigits(a), nb = AllDigits(b);
  if (na != nb) return na ? -1 : 1;  // numbers first
  if (na) {
    // Numerically without overflow: strip leading zeros, then longer is larger.
    auto strip = [](std::string_view s) {
      size_t i = s.find_first_not_of('0');
      return i == std::string_view::npos ? std::string_view() : s.substr(i);
    };
    a = strip(a);
    b = strip(b);
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  }
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

bool PlacementTable::ModelState::AnyReady() const {
  return std::any_of(versions.begin(), versions.end(), [](const auto& v) { return v.second; });
}

PlacementTable::PlacementTable(std::shared_ptr<Clock> clock, PlacementOptions options)
    : clock_(std::move(clock)), options_(options) {}

bool PlacementTable::Fresh(const Upstream& upstream, Clock::TimePoint now) const {
  return options_.stale_after == Clock::Duration::zero() ||
         now - upstream.taken_at <= options_.stale_after;
}

bool PlacementTable::Apply(std::string_view upstream, UpstreamSnapshot snapshot) {
  Upstream next;
  next.taken_at = snapshot.taken_at;
  for (PlacementEntry& e : snapshot.entries) {
    ModelState& model = next.models[e.model];
    if (e.version.empty()) continue;  // in the repository, no version loaded or tried
    bool& ready = model.versions[e.version];
    ready = ready || e.ready;  // duplicate rows: READY wins
  }
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) {
    it = upstreams_.emplace(std::string(upstream), Upstream{}).first;
  } else if (snapshot.taken_at < it->second.taken_at) {
    return false;
  }
  next.snapshots = it->second.snapshots + 1;
  it->second = std::move(next);
  ++generation_;
  return true;
}

void PlacementTable::Remove(std::string_view upstream) {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return;
  upstreams_.erase(it);
  ++generation_;
}

void PlacementTable::NoteLoaded(std::string_view upstream, std::string_view model,
                                const std::vector<std::string>& versions) {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return;  // removed meanwhile: nothing to note
  ModelState& state = it->second.models[std::string(model)];
  for (auto& [version, ready] : state.versions) ready = false;
  for (const std::string& v : versions) state.versions[v] = true;
  // A poll sent before this change must not undo it.
  it->second.taken_at = std::max(it->second.taken_at, clock_->Now());
  ++generation_;
}

void PlacementTable::NoteUnloaded(std::string_view upstream, std::string_view model) {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return;
  auto m = it->second.models.find(model);
  if (m == it->second.models.end()) return;
  for (auto& [version, ready] : m->second.versions) ready = false;
  it->second.taken_at = std::max(it->second.taken_at, clock_->Now());  // see NoteLoaded
  ++generation_;
}

Result<std::vector<std::string>> PlacementTable::ReadyUpstreams(std::string_view model,
                                                                std::string_view version) const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(mutex_);
    const Clock::TimePoint now = clock_->Now();
    for (const auto& [name, upstream] : upstreams_) {
      if (!Fresh(upstream, now)) continue;
      auto m = upstream.models.find(model);
      if (m == upstream.models.end()) continue;
      if (version.empty()) {
        if (m->second.AnyReady()) out.push_back(name);
      } else {
        auto v = m->second.versions.find(version);
        if (v != m->second.versions.end() && v->second) out.push_back(name);
      }
    }
  }
  if (out.empty()) return Status::NotFound(NotReadyMessage(model, version));
  return out;  // sorted: the map's order
}

Result<std::string> PlacementTable::LatestReadyVersion(std::string_view model) const {
  std::optional<std::string> best;
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_->Now();
  for (const auto& [name, upstream] : upstreams_) {
    if (!Fresh(upstream, now)) continue;
    auto m = upstream.models.find(model);
    if (m == upstream.models.end()) continue;
    for (const auto& [version, ready] : m->second.versions) {
      if (ready && (!best || CompareVersions(version, *best) > 0)) best = version;
    }
  }
  if (!best) return Status::NotFound(NotReadyMessage(model, ""));
  return *best;
}

std::vector<std::string> PlacementTable::UpstreamsWithModelInRepository(
    std::string_view model) const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_->Now();
  for (const auto& [name, upstream] : upstreams_) {
    if (Fresh(upstream, now) && upstream.models.contains(model)) out.push_back(name);
  }
  return out;
}

std::vector<std::string> PlacementTable::ReadyModels(std::string_view upstream) const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end() || !Fresh(it->second, clock_->Now())) return out;
  for (const auto& [model, state] : it->second.models) {
    if (state.AnyReady()) out.push_back(model);
  }
  return out;
}

std::vector<std::string> PlacementTable::ReadyVersions(std::string_view model) const {
  std::set<std::string> versions;
  {
    std::lock_guard lock(mutex_);
    const Clock::TimePoint now = clock_->Now();
    for (const auto& [name, upstream] : upstreams_) {
      if (!Fresh(upstream, now)) continue;
      auto m = upstream.models.find(model);
      if (m == upstream.models.end()) continue;
      for (const auto& [version, ready] : m->second.versions) {
        if (ready) versions.insert(version);
      }
    }
  }
  std::vector<std::string> out(versions.begin(), versions.end());
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return CompareVersions(a, b) < 0; });
  return out;
}

std::vector<std::string> PlacementTable::Models() const {
  std::set<std::string> models;
  {
    std::lock_guard lock(mutex_);
    const Clock::TimePoint now = clock_->Now();
    for (const auto& [name, upstream] : upstreams_) {
      if (!Fresh(upstream, now)) continue;
      for (const auto& [model, state] : upstream.models) models.insert(model);
    }
  }
  return {models.begin(), models.end()};
}

std::optional<UpstreamPlacementInfo> PlacementTable::Info(std::string_view upstream) const {
  std::lock_guard lock(mutex_);
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end()) return std::nullopt;
  UpstreamPlacementInfo info;
  info.snapshots = it->second.snapshots;
  info.taken_at = it->second.taken_at;
  info.stale = !Fresh(it->second, clock_->Now());
  for (const auto& [model, state] : it->second.models) {
    for (const auto& [version, ready] : state.versions) info.ready_versions += ready ? 1 : 0;
  }
  return info;
}

uint64_t PlacementTable::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

}  // namespace quiver::gateway
