#pragma once
// InferenceService: the one interface behind every frontend (see docs/architecture.md).
// Implementations: engine::Engine (in-process), the client's RemoteService, the
// gateway's Router.

#include <string_view>

#include "model_config.pb.h"
#include "service/types.h"

namespace quiver {

using ModelConfig = inference::ModelConfig;

// Thread-safe: every method may be called concurrently from any thread.
// `version` arguments: empty means the default (highest ready) version.
class InferenceService {
 public:
  virtual ~InferenceService() = default;

  virtual bool Live() const = 0;
  virtual bool Ready() const = 0;
  virtual Result<ServerMetadata> GetServerMetadata() const = 0;
  // NOT_FOUND for an unknown model or version.
  virtual Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                                 std::string_view version) const = 0;
  virtual Result<ModelConfig> GetModelConfig(std::string_view model,
                                             std::string_view version) const = 0;
  virtual bool ModelReady(std::string_view model, std::string_view version) const = 0;

  // Runs `request`; `done` is called exactly once, on any thread (possibly inline,
  // before Infer returns), with the response or the error. Never throws.
  virtual void Infer(InferRequest request, InferCallback done) = 0;

  virtual Result<RepositoryIndex> Index() = 0;
  // Loads (or reloads) a model from the repository; blocks until done.
  virtual Status Load(std::string_view model) = 0;
  // Unloads every version of a model; in-flight requests finish first.
  virtual Status Unload(std::string_view model) = 0;
  // Statistics of one version, of every version of `model` (empty version), or of every
  // model (empty model).
  virtual Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                             std::string_view version) const = 0;
};

}  // namespace quiver
