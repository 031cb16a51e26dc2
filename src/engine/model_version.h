#pragma once
// ModelVersion: one loaded (or failed) version of a model — its config, its scheduler
// over backend instances, and the bookkeeping that lets it retire without failing a
// request that already chose it.

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "engine/backend.h"
#include "engine/scheduler.h"
#include "service/inference_service.h"

namespace quiver::engine {

class ModelVersion {
 public:
  // Creates the backend instances (instance_group) and the scheduler. A failure does
  // not throw or abort: the version is returned not ready, keeping its error.
  // `hold_for_waiters`: SchedulerOptions::hold_for_waiters.
  static std::shared_ptr<ModelVersion> Load(std::shared_ptr<const ModelConfig> config,
                                            const std::filesystem::path& model_dir,
                                            int64_t version, std::string fingerprint,
                                            const BackendRegistry& backends,
                                            std::shared_ptr<Clock> clock,
                                            bool hold_for_waiters = false);
  // A version that could not even be attempted (e.g. its directory is missing).
  static std::shared_ptr<ModelVersion> Failed(std::shared_ptr<const ModelConfig> config,
                                              int64_t version, Status error);
  ~ModelVersion();

  ModelVersion(const ModelVersion&) = delete;
  ModelVersion& operator=(const ModelVersion&) = delete;

  const std::string& model() const { return config_->name(); }
  int64_t version() const { return version_; }
  const std::string& version_string() const { return version_string_; }
  const ModelConfig& config() const { return *config_; }
  const std::shared_ptr<const ModelConfig>& shared_config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  bool ready() const { return load_error_.ok() && !retired_.load(); }
  const Status& load_error() const { return load_error_; }

  // Validates and schedules `request`. Returns false, leaving `request` and `done`
  // untouched, when this version has retired (the caller looks up a replacement);
  // otherwise `done` is (or will be) called exactly once.
  bool TryInfer(InferRequest& request, InferCallback& done);

  // Stops taking requests, lets queued and running ones finish, releases instances.
  // Blocks; must not be called from an inference callback. Idempotent.
  void Retire();

  ModelStatistics Statistics() const;
  size_t PendingCount() const;

 private:
  ModelVersion(std::shared_ptr<const ModelConfig> config, int64_t version,
               std::string fingerprint);

  std::shared_ptr<const ModelConfig> config_;
  int64_t version_;
  std::string version_string_;
  std::string fingerprint_;
  Status load_error_;
  std::unique_ptr<Scheduler> scheduler_;  // null when the load failed

  // Requests between "chose this version" and "handed to the scheduler"; Retire waits
  // for them so that none is rejected for a reason the caller could not foresee.
  std::atomic<bool> retired_{false};
  std::atomic<int> entering_{0};
  std::mutex retire_mutex_;
  std::condition_variable retire_cv_;
};

}  // namespace quiver::engine
