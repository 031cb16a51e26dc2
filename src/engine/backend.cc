#include "engine/backend.h"

namespace quiver::engine {

void BackendRegistry::Register(std::string name, std::shared_ptr<const Backend> backend) {
  backends_[std::move(name)] = std::move(backend);
}

Result<std::shared_ptr<const Backend>> BackendRegistry::Find(const std::string& name) const {
  auto it = backends_.find(name);
  if (it != backends_.end()) return it->second;
  std::string known;
  for (const auto& [n, _] : backends_) known += (known.empty() ? "" : ", ") + n;
  return Status::NotFound("unknown backend '" + name + "' (this build has: " + known + ")");
}

}  // namespace quiver::engine
