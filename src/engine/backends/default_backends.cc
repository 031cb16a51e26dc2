#include "engine/backends/default_backends.h"

#include "engine/backends/identity_backend.h"
#ifdef QUIVER_WITH_TORCH
#include "engine/backends/torch_backend.h"
#endif

namespace quiver::engine {

std::shared_ptr<BackendRegistry> DefaultBackendRegistry() {
  auto registry = std::make_shared<BackendRegistry>();
  registry->Register("identity", std::make_shared<IdentityBackend>());
#ifdef QUIVER_WITH_TORCH
  registry->Register("pytorch", std::make_shared<TorchBackend>());
#endif
  return registry;
}

}  // namespace quiver::engine
