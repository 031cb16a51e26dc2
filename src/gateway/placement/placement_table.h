#pragma once
// PlacementTable: which upstream has which model version READY, as far as the gateway
// knows. The Router feeds it snapshots (each upstream's repository index, polled) and its
// own load/unload outcomes between polls, and asks it, per request, where a model version
// may go.
//
// Why snapshots and not events: KServe v2 has no change notifications, and the repository
// index is the one call both quiver serve and Triton answer with every model of the
// repository, loaded or not. A snapshot replaces everything known about that upstream, so a
// missed poll is repaired by the next one instead of drifting.
//
// Freshness: every snapshot carries `taken_at`, the time its index request was *sent*.
//   - A snapshot older than the one held is ignored (a slow poll answering after a faster,
//     later one must not bring back a model that was unloaded in between).
//   - An upstream whose last snapshot is older than `stale_after` is treated as knowing
//     nothing: it is not offered for any model until a fresh snapshot arrives (its poller is
//     failing, so the upstream is most likely down). stale_after = 0 turns this off.
// Each accepted change bumps generation(), so a caller may cache answers per generation.
//
// Versions: a request naming a version goes only to upstreams with exactly that version
// READY. A request with version "" goes to every upstream with *any* READY version of the
// model, and is forwarded with version "" so that each upstream serves its own default
// (Triton's: the highest ready version). During a rollout this spreads "" traffic over the
// old and the new version, which is what shifting traffic means. LatestReadyVersion() gives
// the one version the gateway reports for "" (metadata, config): the highest READY version
// on any fresh upstream, ordered by CompareVersions (numbers numerically, as Triton's
// version directories; non-numeric names after every number, in byte order).
//
// Thread-safe: every method may be called concurrently (one mutex; readers hold it only to
// copy out a small answer, never across a call to an upstream).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace quiver::gateway {

// One row of an upstream's repository index, reduced to what placement needs.
struct PlacementEntry {
  std::string model;
  std::string version;  // "" for a model in the repository with no version loaded or tried
  bool ready = false;   // state == "READY"
};

// What one upstream reported, and when it was asked.
struct UpstreamSnapshot {
  Clock::TimePoint taken_at;  // when the index request was sent
  std::vector<PlacementEntry> entries;
};

// What the table knows about one upstream (for metrics, logs and tests).
struct UpstreamPlacementInfo {
  uint64_t snapshots = 0;       // accepted snapshots
  Clock::TimePoint taken_at{};  // of the last accepted snapshot
  bool stale = false;
  size_t ready_versions = 0;  // READY (model, version) pairs
};

struct PlacementOptions {
  // An upstream whose last snapshot was taken longer ago than this is offered for nothing.
  // Zero: snapshots never go stale.
  Clock::Duration stale_after = std::chrono::seconds(30);
};

// <0, 0, >0 as version a orders before, equal to, after b: all-digit names numerically
// ("9" < "10"), then non-numeric names in byte order after every number.
int CompareVersions(std::string_view a, std::string_view b);

class PlacementTable {
 public:
  explicit PlacementTable(std::shared_ptr<Clock> clock, PlacementOptions options = {});

  // Replaces everything known about `upstream` (adding it when new). Returns false, and
  // changes nothing, when `snapshot` was taken before the snapshot already held.
  bool Apply(std::string_view upstream, UpstreamSnapshot snapshot);
  // Forgets `upstream` (removed from the configuration, or drained).
  void Remove(std::string_view upstream);
  // The Router's own successful Load of `model` on `upstream`, before the next poll
  // confirms it: `versions` are READY there now (the model's other versions are not).
  void NoteLoaded(std::string_view upstream, std::string_view model,
                  const std::vector<std::string>& versions);
  // The Router's own Unload of `model` on `upstream`: no version of it is READY there; the
  // model stays known to be in that upstream's repository.
  void NoteUnloaded(std::string_view upstream, std::string_view model);

  // The fresh upstreams with `model` `version` READY ("" = any version READY), sorted.
  // NOT_FOUND naming the model (and version) when there are none.
  Result<std::vector<std::string>> ReadyUpstreams(std::string_view model,
                                                  std::string_view version) const;
  // The highest version of `model` READY on any fresh upstream; NOT_FOUND when none.
  Result<std::string> LatestReadyVersion(std::string_view model) const;
  // The fresh upstreams whose repository has `model` (loaded or not), sorted: where an
  // on-demand Load may go.
  std::vector<std::string> UpstreamsWithModelInRepository(std::string_view model) const;
  // The models READY (any version) on `upstream`, sorted; empty when unknown or stale.
  std::vector<std::string> ReadyModels(std::string_view upstream) const;

  // Every version of `model` READY on some fresh upstream, in CompareVersions order.
  std::vector<std::string> ReadyVersions(std::string_view model) const;
  // Every model in some fresh upstream's repository (loaded or not), sorted.
  std::vector<std::string> Models() const;

  std::optional<UpstreamPlacementInfo> Info(std::string_view upstream) const;
  // Bumped by every change (Apply accepted, Remove of a known upstream, Note*).
  uint64_t generation() const;

 private:
  struct ModelState {
    std::map<std::string, bool, std::less<>> versions;  // version -> READY
    bool AnyReady() const;
  };
  struct Upstream {
    Clock::TimePoint taken_at{};
    uint64_t snapshots = 0;
    std::map<std::string, ModelState, std::less<>> models;
  };
  using UpstreamMap = std::map<std::string, Upstream, std::less<>>;

  bool Fresh(const Upstream& upstream, Clock::TimePoint now) const;

  const std::shared_ptr<Clock> clock_;
  const PlacementOptions options_;
  mutable std::mutex mutex_;
  UpstreamMap upstreams_;    // guarded by mutex_
  uint64_t generation_ = 0;  // guarded by mutex_
};

}  // namespace quiver::gateway
