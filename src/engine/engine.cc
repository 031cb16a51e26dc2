#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "core/strings.h"
#include "engine/model_config.h"

namespace quiver::engine {
namespace {

Result<int64_t> ParseVersion(std::string_view model, std::string_view version) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  // Triton's GetModelVersionFromString (server/src/common.cc); version 0 is "not found".
  if (ec != std::errc() || end != version.data() + version.size() || v < 0) {
    return Status::InvalidArgument("failed to get model version from specified version string " +
                                   Quoted(version) + " for model " + Quoted(model) +
                                   ", version should be an integral value > 0");
  }
  return v;
}

}  // namespace

Result<ModelControlMode> ParseModelControlMode(std::string_view text) {
  if (text == "none") return ModelControlMode::kNone;
  if (text == "poll") return ModelControlMode::kPoll;
  if (text == "explicit") return ModelControlMode::kExplicit;
  return Status::InvalidArgument("model control mode " + Quoted(text) +
                                 " is not one of none, poll, explicit");
}

Engine::Engine(EngineOptions options)
    : options_(std::move(options)), repository_(options_.model_repositories) {}

Result<std::unique_ptr<Engine>> Engine::Create(EngineOptions options) {
  if (!options.backends) return Status::InvalidArgument("EngineOptions.backends is not set");
  if (!options.clock) options.clock = Clock::System();
  std::unique_ptr<Engine> engine(new Engine(std::move(options)));
  auto scan = engine->repository_.Scan();
  if (!scan.ok()) return scan.status();

  const auto& opts = engine->options_;
  if (opts.control_mode == ModelControlMode::kExplicit) {
    for (const auto& name : opts.startup_models) {
      if (name == "*") {
        for (const auto& dir : scan->models) (void)engine->LoadDirectory(dir);
      } else {
        Status s = engine->Load(name);
        if (!s.ok()) spdlog::error("{}", s.message());
      }
    }
  } else {
    (void)engine->Poll();
  }
  if (opts.control_mode == ModelControlMode::kPoll && opts.poll_interval.count() > 0) {
    engine->poller_ = std::thread([e = engine.get()] { e->PollLoop(); });
  }
  return engine;
}

Engine::~Engine() {
  {
    std::lock_guard lock(poll_mutex_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  std::lock_guard lifecycle(lifecycle_mutex_);
  std::map<std::string, ModelEntry, std::less<>> models;
  {
    std::unique_lock lock(mutex_);
    models.swap(models_);
  }
  for (auto& [name, entry] : models) {
    for (auto& [v, version] : entry.versions) version->Retire();
  }
}

void Engine::PollLoop() {
  std::unique_lock lock(poll_mutex_);
  while (!stopping_) {
    poll_cv_.wait_for(lock, options_.poll_interval, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Status s = Poll();
    if (!s.ok()) spdlog::warn("repository poll: {}", s.message());
    lock.lock();
  }
}

bool Engine::Ready() const {
  std::shared_lock lock(mutex_);
  for (const auto& [name, entry] : models_) {
    if (!entry.error.ok()) return false;
    for (const auto& [v, version] : entry.versions) {
      if (!version->ready()) return false;
    }
  }
  return true;
}

Result<ServerMetadata> Engine::GetServerMetadata() const {
  ServerMetadata m;
  m.name = "quiver";
  m.version = "0.1.0";
  m.extensions = {"model_repository", "model_configuration", "statistics", "schedule_policy"};
  return m;
}

Result<std::shared_ptr<ModelVersion>> Engine::FindVersion(std::string_view model,
                                                          std::string_view version) const {
  std::shared_lock lock(mutex_);
  // The texts are Triton's (ModelRepositoryManager::GetModel + ModelLifeCycle::GetModel in
  // triton-inference-server/core), with our reason appended where Triton has none.
  auto it = models_.find(model);
  if (it == models_.end()) {
    return Status::NotFound("Request for unknown model: " + Quoted(model) + " is not found");
  }
  const ModelEntry& entry = it->second;
  if (version.empty()) {
    for (auto v = entry.versions.rbegin(); v != entry.versions.rend(); ++v) {
      if (v->second->ready()) return v->second;
    }
    std::string why = entry.error.ok() ? "" : ": " + entry.error.message();
    for (const auto& [n, v] : entry.versions) {
      if (why.empty() && !v->load_error().ok()) why = ": " + v->load_error().message();
    }
    return Status::NotFound("Request for unknown model: " + Quoted(model) +
                            " has no available versions" + why);
  }
  auto number = ParseVersion(model, version);
  if (!number.ok()) return number.status();
  auto v = entry.versions.find(*number);
  if (v == entry.versions.end()) {
    return Status::NotFound("Request for unknown model: " + Quoted(model) + " version " +
                            std::to_string(*number) + " is not found");
  }
  if (!v->second->ready()) {
    const Status& why = v->second->load_error();
    return Status::Unavailable("Request for unknown model: " + Quoted(model) + " version " +
                               std::to_string(*number) + " is not at ready state" +
                               (why.ok() ? "" : ": " + why.message()));
  }
  return v->second;
}

Result<ModelMetadata> Engine::GetModelMetadata(std::string_view model,
                                               std::string_view version) const {
  auto found = FindVersion(model, version);
  if (!found.ok()) return found.status();
  const ModelConfig& config = (*found)->config();
  ModelMetadata m;
  m.name = config.name();
  m.platform = config.platform().empty() ? config.backend() : config.platform();
  {
    std::shared_lock lock(mutex_);
    auto it = models_.find(model);
    if (it != models_.end()) {
      for (const auto& [n, v] : it->second.versions) {
        if (v->ready()) m.versions.push_back(v->version_string());
      }
    }
  }
  auto describe = [&](const std::string& name, inference::DataType type, const auto& dims) {
    TensorMetadata t;
    t.name = name;
    t.datatype = ToDataType(type);
    if (config.max_batch_size() > 0) t.shape.push_back(-1);
    t.shape.insert(t.shape.end(), dims.begin(), dims.end());
    return t;
  };
  for (const auto& in : config.input()) {
    m.inputs.push_back(describe(in.name(), in.data_type(), in.dims()));
  }
  for (const auto& out : config.output()) {
    m.outputs.push_back(describe(out.name(), out.data_type(), out.dims()));
  }
  return m;
}

Result<ModelConfig> Engine::GetModelConfig(std::string_view model,
                                           std::string_view version) const {
  auto found = FindVersion(model, version);
  if (!found.ok()) return found.status();
  return (*found)->config();
}

bool Engine::ModelReady(std::string_view model, std::string_view version) const {
  return FindVersion(model, version).ok();
}

void Engine::Infer(InferRequest request, InferCallback done) {
  // A version may retire between lookup and scheduling (poll or reload swapped it);
  // the second lookup then finds its replacement.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto found = FindVersion(request.model, request.version);
    if (!found.ok()) {
      done(found.status());
      return;
    }
    if ((*found)->TryInfer(request, done)) return;
  }
  done(Status::Unavailable("model " + Quoted(request.model) +
                           " is being reloaded; try again"));
}

Result<RepositoryIndex> Engine::Index() {
  auto scan = repository_.Scan();
  if (!scan.ok()) return scan.status();
  RepositoryIndex index;
  std::shared_lock lock(mutex_);
  auto describe = [&](const std::string& name) {
    auto it = models_.find(name);
    if (it == models_.end()) {
      index.push_back({name, "", "UNAVAILABLE", "unloaded"});
      return;
    }
    const ModelEntry& entry = it->second;
    if (!entry.error.ok()) index.push_back({name, "", "UNAVAILABLE", entry.error.message()});
    for (const auto& [n, v] : entry.versions) {
      index.push_back({name, v->version_string(), v->ready() ? "READY" : "UNAVAILABLE",
                       v->load_error().message()});
    }
  };
  std::vector<std::string> seen;
  for (const auto& dir : scan->models) {
    describe(dir.name);
    seen.push_back(dir.name);
  }
  for (const auto& [name, status] : scan->errors) {
    index.push_back({name, "", "UNAVAILABLE", status.message()});
    seen.push_back(name);
  }
  for (const auto& [name, entry] : models_) {
    if (std::find(seen.begin(), seen.end(), name) == seen.end()) describe(name);
  }
  return index;
}

Status Engine::LoadDirectory(const ModelDirectory& dir) {
  ModelEntry fresh;
  fresh.path = dir.path;
  fresh.config_fingerprint = dir.config_fingerprint;
  fresh.dir_versions = dir.versions;

  std::map<int64_t, std::shared_ptr<ModelVersion>> previous;
  std::string previous_config;
  {
    std::shared_lock lock(mutex_);
    auto it = models_.find(dir.name);
    if (it != models_.end()) {
      previous = it->second.versions;
      previous_config = it->second.config_fingerprint;
    }
  }

  auto loaded = LoadModelConfig(dir.path);
  Status backend_ok = Status::Ok();
  if (loaded.ok()) {
    for (const auto& w : loaded->warnings) spdlog::warn("{}", w);
    auto backend = options_.backends->Find(loaded->config.backend());
    backend_ok = backend.ok() ? (*backend)->ValidateConfig(loaded->config) : backend.status();
  }
  if (!loaded.ok() || !backend_ok.ok()) {
    fresh.error = (loaded.ok() ? backend_ok : loaded.status())
                      .WithContext("failed to load model " + Quoted(dir.name));
    spdlog::error("{}", fresh.error.message());
    Status error = fresh.error;
    std::unique_lock lock(mutex_);
    auto it = models_.find(dir.name);
    if (it != models_.end() && !it->second.versions.empty()) {
      // Keep serving what was loaded; only record why the reload failed.
      it->second.error = error;
      it->second.config_fingerprint = dir.config_fingerprint;
      it->second.dir_versions = dir.versions;
    } else {
      models_[dir.name] = std::move(fresh);
    }
    return error;
  }

  auto config = std::make_shared<const ModelConfig>(std::move(loaded->config));
  fresh.config = config;
  const bool config_same = previous_config == dir.config_fingerprint;
  VersionSelection selection = SelectVersions(config->version_policy(), dir.versions);
  for (int64_t v : selection.load) {
    auto old = previous.find(v);
    const std::string& fingerprint = dir.versions.at(v);
    if (config_same && old != previous.end() && old->second->ready() &&
        old->second->fingerprint() == fingerprint) {
      fresh.versions[v] = old->second;
      continue;
    }
    fresh.versions[v] = ModelVersion::Load(config, dir.path, v, fingerprint, *options_.backends,
                                           options_.clock, options_.hold_for_waiters);
  }
  for (int64_t v : selection.missing) {
    fresh.versions[v] = ModelVersion::Failed(
        config, v,
        Status::NotFound("version directory " + (dir.path / std::to_string(v)).string() +
                         " does not exist (version_policy: specific)"));
  }
  if (fresh.versions.empty()) {
    fresh.error = Status::Unavailable("model " + Quoted(dir.name) + " in " +
                                      dir.path.string() +
                                      " has no version directory to load (e.g. 1/)");
  }

  std::vector<std::shared_ptr<ModelVersion>> retire;
  Status result = fresh.error;
  for (const auto& [v, version] : fresh.versions) {
    if (result.ok() && !version->load_error().ok()) result = version->load_error();
  }
  {
    std::unique_lock lock(mutex_);
    for (auto& [v, old] : previous) {
      auto kept = fresh.versions.find(v);
      if (kept == fresh.versions.end() || kept->second != old) retire.push_back(old);
    }
    models_[dir.name] = std::move(fresh);
  }
  for (auto& v : retire) v->Retire();  // outside the lock: waits for in-flight requests
  return result;
}

void Engine::UnloadLocked(std::string_view model,
                          std::vector<std::shared_ptr<ModelVersion>>& retire) {
  auto it = models_.find(model);
  if (it == models_.end()) return;
  for (auto& [v, version] : it->second.versions) retire.push_back(version);
  models_.erase(it);
}

// Load and unload answer as Triton's ModelRepositoryManager::LoadUnloadModel: UNAVAILABLE
// outside explicit mode, INTERNAL for a model the repository does not have, INVALID_ARGUMENT
// "load failed for model ..." when it does not load; unloading what is not loaded succeeds.
Status Engine::Load(std::string_view model) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    return Status::Unavailable("explicit model load / unload is not allowed if polling is enabled");
  }
  std::lock_guard lifecycle(lifecycle_mutex_);
  auto dir = repository_.Find(model);
  if (!dir.ok()) {
    return Status::Internal("failed to load " + Quoted(model) +
                            ", failed to poll from model repository: " + dir.status().message());
  }
  Status s = LoadDirectory(*dir);
  if (s.ok()) return s;
  return Status::InvalidArgument("load failed for model " + Quoted(model) + ": " + s.message());
}

Status Engine::Unload(std::string_view model) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    return Status::Unavailable("explicit model load / unload is not allowed if polling is enabled");
  }
  std::lock_guard lifecycle(lifecycle_mutex_);
  std::vector<std::shared_ptr<ModelVersion>> retire;
  {
    std::unique_lock lock(mutex_);
    if (models_.find(model) == models_.end()) return Status::Ok();  // as Triton
    UnloadLocked(model, retire);
  }
  for (auto& v : retire) v->Retire();
  spdlog::info("unloaded model '{}'", model);
  return Status::Ok();
}

Status Engine::Poll() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  auto scan = repository_.Scan();
  if (!scan.ok()) return scan.status();
  Status first_error;
  for (const auto& dir : scan->models) {
    bool unchanged = false;
    {
      // Same config and same version directories: nothing to do, even if the last
      // attempt failed (it would fail again; the error stays in the index).
      std::shared_lock lock(mutex_);
      auto it = models_.find(dir.name);
      unchanged = it != models_.end() &&
                  it->second.config_fingerprint == dir.config_fingerprint &&
                  it->second.dir_versions == dir.versions;
    }
    if (unchanged) continue;
    Status s = LoadDirectory(dir);
    if (first_error.ok() && !s.ok()) first_error = s;
  }
  std::vector<std::shared_ptr<ModelVersion>> retire;
  {
    std::unique_lock lock(mutex_);
    std::vector<std::string> gone;
    for (const auto& [name, entry] : models_) {
      bool present = false;
      for (const auto& dir : scan->models) present = present || dir.name == name;
      if (!present) gone.push_back(name);
    }
    for (const auto& name : gone) UnloadLocked(name, retire);
    for (const auto& [name, status] : scan->errors) {
      models_[name].error = status;
      if (first_error.ok()) first_error = status;
    }
  }
  for (auto& v : retire) v->Retire();
  return first_error;
}

size_t Engine::PendingCount() const {
  std::shared_lock lock(mutex_);
  size_t n = 0;
  for (const auto& [name, entry] : models_) {
    for (const auto& [v, version] : entry.versions) n += version->PendingCount();
  }
  return n;
}

Result<std::vector<ModelStatistics>> Engine::GetStatistics(std::string_view model,
                                                           std::string_view version) const {
  std::vector<ModelStatistics> out;
  if (!model.empty() && !version.empty()) {
    auto found = FindVersion(model, version);
    if (!found.ok()) return found.status();
    out.push_back((*found)->Statistics());
    return out;
  }
  std::shared_lock lock(mutex_);
  if (!model.empty() && models_.find(model) == models_.end()) {
    return Status::NotFound("Request for unknown model: " + Quoted(model) + " is not found");
  }
  for (const auto& [name, entry] : models_) {
    if (!model.empty() && name != model) continue;
    for (const auto& [v, ver] : entry.versions) {
      if (ver->ready()) out.push_back(ver->Statistics());
    }
  }
  return out;
}

}  // namespace quiver::engine
