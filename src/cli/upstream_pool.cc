#include "cli/upstream_pool.h"

#include <spdlog/spdlog.h>

namespace quiver::cli {

std::shared_ptr<gateway::ServerPool> MakeUpstreamServerPool(gateway::Router& router,
                                                            gateway::ServerPoolOptions o,
                                                            std::function<void()> on_change) {
  o.on_ready = [&router, on_change](const std::string& url) {
    if (Status s = router.AddUpstream(url); !s.ok())
      spdlog::error("cannot add upstream {}: {}", url, s.ToString());
    if (on_change) on_change();
  };
  auto remove = [&router, on_change](const std::string& url) {
    if (Status s = router.RemoveUpstream(url); !s.ok() && s.code() != StatusCode::kNotFound)
      spdlog::warn("removing upstream {}: {}", url, s.ToString());
    if (on_change) on_change();
  };
  o.before_stop = remove;
  o.on_exit = [remove](const std::string& url, const std::string&) { remove(url); };
  return std::make_shared<gateway::ServerPool>(std::move(o));
}

}  // namespace quiver::cli
