#pragma once
// local:// URLs: a model repository served in this process by an Engine. Kept out of
// quiver_client so that a remote-only client (and `import quiver`) does not load the
// engine's backends (libtorch). A program that wants local:// links quiver_client_local and
// calls EnableLocalUrls() once; the Python module loads it on the first local:// URL.

#include <memory>

#include "client/client.h"
#include "client/url.h"
#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::client {

// An Engine over the repository at url.path, with every backend this build has.
Result<std::shared_ptr<InferenceService>> OpenLocalService(const Url& url);

// Makes OpenService (and so Client::Create's default) open local:// URLs with
// OpenLocalService. Thread-safe, idempotent. (Inline: quiver_client_local itself does not
// depend on the Client, so the Python module _quiver_local holds only the engine.)
inline void EnableLocalUrls() { SetLocalOpener(&OpenLocalService); }

}  // namespace quiver::client
