#pragma once
// The backends compiled into this build: "identity" always, "pytorch" with libtorch.

#include <memory>

#include "engine/backend.h"

namespace quiver::engine {

std::shared_ptr<BackendRegistry> DefaultBackendRegistry();

}  // namespace quiver::engine
