#pragma once
// Engine: the in-process InferenceService. Owns the model repository view, loads and
// unloads model versions (control modes none / poll / explicit), and routes requests
// to each version's scheduler.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "engine/backend.h"
#include "engine/model_repository.h"
#include "engine/model_version.h"
#include "service/inference_service.h"

namespace quiver::engine {

// Triton's --model-control-mode.
enum class ModelControlMode { kNone, kPoll, kExplicit };
// Parses "none" | "poll" | "explicit".
Result<ModelControlMode> ParseModelControlMode(std::string_view text);

struct EngineOptions {
  std::vector<std::filesystem::path> model_repositories;
  ModelControlMode control_mode = ModelControlMode::kNone;
  // explicit mode: models loaded at start ("*" = all), as Triton's --load-model.
  std::vector<std::string> startup_models;
  // poll mode: rescan period; zero means no background thread (call Poll()).
  std::chrono::milliseconds poll_interval{std::chrono::seconds(15)};
  std::shared_ptr<BackendRegistry> backends;  // required
  std::shared_ptr<Clock> clock = Clock::System();
  // In-process engines (local://), where a caller that waits for its own request may run
  // it: see SchedulerOptions::hold_for_waiters.
  bool hold_for_waiters = false;
};

class Engine final : public InferenceService {
 public:
  // Fails only when a repository root is missing or no backend registry is given;
  // models that fail to load are reported by Index() and make Ready() false.
  static Result<std::unique_ptr<Engine>> Create(EngineOptions options);
  ~Engine() override;

  bool Live() const override { return true; }
  bool Ready() const override;
  Result<ServerMetadata> GetServerMetadata() const override;
  Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                         std::string_view version) const override;
  Result<ModelConfig> GetModelConfig(std::string_view model,
                                     std::string_view version) const override;
  bool ModelReady(std::string_view model, std::string_view version) const override;
  void Infer(InferRequest request, InferCallback done) override;
  Result<RepositoryIndex> Index() override;
  Status Load(std::string_view model) override;
  Status Unload(std::string_view model) override;
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override;

  // Rescans the repositories and applies the differences: new models and versions
  // load, removed ones drain and unload, changed configs reload. What the poll-mode
  // thread runs; callable directly in any mode (tests, `SIGHUP`-style triggers).
  Status Poll();
  // Requests queued or executing across all models (for metrics and draining).
  size_t PendingCount() const;

 private:
  struct ModelEntry {
    std::filesystem::path path;
    std::string config_fingerprint;
    std::map<int64_t, std::string> dir_versions;  // version dirs as last scanned
    std::shared_ptr<const ModelConfig> config;
    std::map<int64_t, std::shared_ptr<ModelVersion>> versions;  // ready and failed ones
    Status error;  // model-level failure (bad config, unknown backend); no versions then
  };

  explicit Engine(EngineOptions options);
  // Loads or reloads one model directory; reuses unchanged ready versions.
  Status LoadDirectory(const ModelDirectory& dir);
  void UnloadLocked(std::string_view model, std::vector<std::shared_ptr<ModelVersion>>& retire);
  Result<std::shared_ptr<ModelVersion>> FindVersion(std::string_view model,
                                                    std::string_view version) const;
  void PollLoop();

  EngineOptions options_;
  ModelRepository repository_;

  std::mutex lifecycle_mutex_;  // serialises Load / Unload / Poll (held across loads)
  mutable std::shared_mutex mutex_;
  std::map<std::string, ModelEntry, std::less<>> models_;  // guarded by mutex_

  std::mutex poll_mutex_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;  // guarded by poll_mutex_
  std::thread poller_;
};

}  // namespace quiver::engine
