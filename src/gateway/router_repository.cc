// The Router's health, metadata, repository and statistics calls: answered from the
// placement table where it knows, else forwarded to the upstreams that can answer.

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gateway/merge_statistics.h"
#include "gateway/router.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {
namespace {

std::string Quoted(std::string_view model, std::string_view version) {
  std::string s = "model '" + std::string(model) + "'";
  if (!version.empty()) s += " version '" + std::string(version) + "'";
  return s;
}

}  // namespace

bool Router::Live() const { return !stopping_; }

// Ready when some upstream is available and has told us what it serves.
bool Router::Ready() const {
  if (stopping_) return false;
  for (const auto& upstream : Snapshot()) {
    if (upstream->draining || !health_.Available(upstream->url)) continue;
    auto info = placement_.Info(upstream->url);
    if (info && !info->stale && info->snapshots > 0) return true;
  }
  return false;
}

Result<ServerMetadata> Router::GetServerMetadata() const {
  for (const auto& upstream : Snapshot()) {
    if (upstream->draining || !health_.Available(upstream->url)) continue;
    auto metadata = upstream->service->GetServerMetadata();
    if (metadata.ok()) return metadata;
  }
  // No upstream answers: what `quiver serve` reports, so clients still recognise it.
  return ServerMetadata{
      "quiver", "0.1.0", {"model_repository", "model_configuration", "statistics"}};
}

Result<std::vector<std::shared_ptr<InferenceService>>> Router::ReadyServices(
    std::string_view model, std::string_view version, std::string& resolved) const {
  resolved = std::string(version);
  if (resolved.empty()) {
    auto latest = placement_.LatestReadyVersion(model);
    if (!latest.ok()) return latest.status();
    resolved = *latest;
  }
  auto where = placement_.ReadyUpstreams(model, resolved);
  if (!where.ok()) return where.status();
  std::stable_partition(where->begin(), where->end(),
                        [&](const std::string& u) { return health_.Available(u); });
  std::vector<std::shared_ptr<InferenceService>> out;
  for (const auto& url : *where) {
    auto upstream = Find(url);
    if (upstream && !upstream->draining) out.push_back(upstream->service);
  }
  if (out.empty()) {
    return Status::Unavailable(Quoted(model, resolved) + " is ready only on upstreams leaving");
  }
  return out;
}

// Asks each service in turn until one answers other than UNAVAILABLE.
template <typename T, typename Fn>
static Result<T> FirstAnswer(const std::vector<std::shared_ptr<InferenceService>>& services,
                             Fn&& ask) {
  Result<T> answer = Status::Unavailable("no upstream answered");
  for (const auto& service : services) {
    answer = ask(*service);
    if (answer.ok() || answer.status().code() != StatusCode::kUnavailable) break;
  }
  return answer;
}

Result<ModelMetadata> Router::GetModelMetadata(std::string_view model,
                                               std::string_view version) const {
  // A client asks for metadata before its first request: a model that is only in a
  // repository (or autoscaled at zero) is loaded or waited for here, as a request would.
  if (Status s = AwaitModel(model, version); !s.ok()) return s;
  std::string resolved;
  auto services = ReadyServices(model, version, resolved);
  if (!services.ok()) return services.status();
  auto metadata = FirstAnswer<ModelMetadata>(
      *services, [&](InferenceService& s) { return s.GetModelMetadata(model, resolved); });
  // For the default version a server lists every version it has READY; so does the gateway,
  // over all its upstreams.
  if (metadata.ok() && version.empty()) metadata->versions = placement_.ReadyVersions(model);
  return metadata;
}

Result<ModelConfig> Router::GetModelConfig(std::string_view model, std::string_view version) const {
  if (Status s = AwaitModel(model, version); !s.ok()) return s;
  std::string resolved;
  auto services = ReadyServices(model, version, resolved);
  if (!services.ok()) return services.status();
  return FirstAnswer<ModelConfig>(
      *services, [&](InferenceService& s) { return s.GetModelConfig(model, resolved); });
}

bool Router::ModelReady(std::string_view model, std::string_view version) const {
  auto where = placement_.ReadyUpstreams(model, version);
  if (!where.ok()) return false;
  return std::any_of(where->begin(), where->end(),
                     [&](const std::string& u) { return health_.Available(u); });
}

Result<RepositoryIndex> Router::Index() {
  std::vector<RepositoryIndex> indexes;
  Status last;
  for (const auto& upstream : Snapshot()) {
    if (upstream->draining) continue;
    auto index = upstream->service->Index();
    if (index.ok()) {
      indexes.push_back(std::move(index).value());
    } else {
      last = index.status();
    }
  }
  if (indexes.empty() && !last.ok()) return last;
  return MergeIndexes(indexes);
}

// Load and Unload go to every upstream whose repository has the model, as an explicit
// repository request to one server would; placement learns the result at once.
Status Router::Load(std::string_view model) {
  auto targets = placement_.UpstreamsWithModelInRepository(model);
  if (targets.empty()) {
    return Status::NotFound(Quoted(model, "") + " is in no upstream's model repository");
  }
  Status first_error;
  for (const auto& url : targets) {
    auto upstream = Find(url);
    if (!upstream || upstream->draining) continue;
    Status s = upstream->service->Load(model);
    PollUpstream(*upstream);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  ResumeWaiters(false, Status::Ok());
  return first_error;
}

Status Router::Unload(std::string_view model) {
  auto targets = placement_.UpstreamsWithModelInRepository(model);
  if (targets.empty()) {
    return Status::NotFound(Quoted(model, "") + " is in no upstream's model repository");
  }
  Status first_error;
  for (const auto& url : targets) {
    auto upstream = Find(url);
    if (!upstream || upstream->draining) continue;
    placement_.NoteUnloaded(url, model);  // no new requests go there from now on
    Status s = upstream->service->Unload(model);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

Result<std::vector<ModelStatistics>> Router::GetStatistics(std::string_view model,
                                                           std::string_view version) const {
  std::vector<std::vector<ModelStatistics>> per_upstream;
  Status last;
  for (const auto& upstream : Snapshot()) {
    if (upstream->draining) continue;
    auto stats = upstream->service->GetStatistics(model, version);
    if (stats.ok()) {
      per_upstream.push_back(std::move(stats).value());
    } else {
      last = stats.status();
    }
  }
  if (per_upstream.empty() && !last.ok()) return last;
  return MergeStatistics(per_upstream);
}

}  // namespace quiver::gateway
