#include "client/local_service.h"

#include "core/cpus.h"
#include "engine/backends/default_backends.h"
#include "engine/engine.h"

namespace quiver::client {

Result<std::shared_ptr<InferenceService>> OpenLocalService(const Url& url) {
  engine::EngineOptions options;
  options.model_repositories = {url.path};
  options.backends = engine::DefaultBackendRegistry();
  // A waiting caller runs its own request where the model's worker would run on another
  // core; on one CPU that measured slower (docs/benchmarks.md, "Held for the waiter").
  options.hold_for_waiters = UsableCpus() > 1;
  auto engine = engine::Engine::Create(std::move(options));
  if (!engine.ok()) return engine.status().WithContext(url.text);
  return std::shared_ptr<InferenceService>(std::move(*engine));
}

}  // namespace quiver::client
