#pragma once
// Client: what an analysis calls. One or more endpoint URLs (failover order), an
// optional fallback (typically local://...), retries with exponential backoff and full
// jitter, a bounded in-flight window, per-call deadlines, and inputs checked against
// the model's metadata before they are sent. It is itself an InferenceService, so
// everything written against that interface (columnar batching, the gateway) runs over
// a local Engine, one server, or a fault-tolerant set of servers alike.
//
// Error policy:
//   - retried (next healthy endpoint first, then backoff): UNAVAILABLE (server or model
//     not ready, connection refused/lost) and a per-attempt timeout (IsRetryable);
//   - never retried: INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED (a missing or wrong
//     token), TOO_MANY_REQUESTS / RESOURCE_EXHAUSTED (a tenant over its limits: retrying
//     at once only adds load) and every other server error;
//   - every call ends in exactly one result or one error. An error reads
//     "model 'm': <n> attempt(s) failed over [<endpoints tried>]; last error: <endpoint>:
//     <server or transport message>" (or "deadline of <t> ms exceeded after <n>
//     attempt(s) ..."), with the last error's code.
//
// Time limits (ClientOptions):
//   - timeout: the total of one call, from Infer to its callback: the metadata fetch of the
//     input checks, every attempt, backoff waits and failover included. Nothing waits past
//     it: the call ends with DEADLINE_EXCEEDED at most a few milliseconds after it (timer
//     and socket wake-up; the tests allow 2 s on a loaded machine). The sync methods
//     (metadata, config, health, index, statistics, load/unload) are bounded by it too,
//     over all endpoints. 0 = no limit.
//   - attempt_timeout: one attempt; one that passes it is retried like UNAVAILABLE.
//   - connect timeout (3 s, per remote endpoint): how long connecting, registering shared
//     memory and each sync call may take at most when `timeout` allows more.
//
// Thread-safe. Infer blocks the caller while max_in_flight calls are outstanding
// (backpressure); a completion callback may issue the next call (its slot is already
// free). Callbacks run on transport threads (or inline for local://).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/url.h"
#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::client {

struct RetryPolicy {
  int max_attempts = 5;                         // remote attempts per call, all endpoints
  std::chrono::milliseconds initial_backoff{20};  // first backoff cap; doubles per round
  std::chrono::milliseconds max_backoff{2000};
  std::chrono::milliseconds max_total{30000};   // no new attempt after this much time
  // How long an endpoint that failed is skipped (doubles per consecutive failure).
  std::chrono::milliseconds endpoint_cooldown{500};
};

struct ClientOptions {
  std::vector<std::string> urls;  // failover order; at least one (or a fallback)
  std::string fallback;           // served when every remote endpoint is down; "" = none
  std::chrono::milliseconds timeout{0};          // total per call (see above); 0 = none
  std::chrono::milliseconds attempt_timeout{0};  // per attempt; 0 = none
  RetryPolicy retry;
  size_t max_in_flight = 256;
  size_t connections = 4;    // per remote endpoint
  bool shared_memory = true; // system shm with servers on this host
  bool validate_inputs = true;
  std::chrono::milliseconds metadata_ttl{30000};  // cached metadata/config lifetime
  // Bearer token for every remote endpoint (RemoteOptions::token); "" = none. Create
  // rejects one that fails CheckToken. Not read from the environment here: the
  // `quiver` program and the Python module take QUIVER_TOKEN.
  std::string token;
};

// Counters for tests, benchmarks and logs.
struct ClientStats {
  uint64_t calls = 0;
  uint64_t attempts = 0;
  uint64_t retries = 0;
  uint64_t fallback_calls = 0;
  uint64_t failed_calls = 0;
};

// Opens the service behind one URL. The default opens remote URLs with the HTTP / gRPC
// transports and local:// repositories with the opener set by SetLocalOpener (an Engine:
// local_service.h, library quiver_client_local); without one, local:// is UNSUPPORTED.
// Tests substitute fakes.
using ServiceFactory =
    std::function<Result<std::shared_ptr<InferenceService>>(const Url&, const ClientOptions&)>;
Result<std::shared_ptr<InferenceService>> OpenService(const Url& url,
                                                      const ClientOptions& options);

// How OpenService opens local:// URLs (nullptr: it cannot). Thread-safe.
using LocalOpener = Result<std::shared_ptr<InferenceService>> (*)(const Url& url);
void SetLocalOpener(LocalOpener opener);

class Client final : public InferenceService {
 public:
  // INVALID_ARGUMENT for a malformed URL or no URL at all; local:// repositories are
  // opened here (their errors are returned), remote servers are contacted lazily.
  static Result<std::shared_ptr<Client>> Create(ClientOptions options,
                                                const ServiceFactory& open = OpenService);
  ~Client() override;  // fails queued retries with CANCELLED, waits for every call

  bool Live() const override;
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

  std::future<Result<InferResponse>> InferAsync(InferRequest request);
  Result<InferResponse> InferSync(InferRequest request);

  const ClientOptions& options() const { return options_; }
  ClientStats Stats() const;

 private:
  struct Endpoint;
  struct Call;
  struct ModelInfo;
  class Timer;

  explicit Client(ClientOptions options);
  void Attempt(const std::shared_ptr<Call>& call);
  void OnResult(const std::shared_ptr<Call>& call, int endpoint, Result<InferResponse> result);
  void Finish(const std::shared_ptr<Call>& call, Result<InferResponse> result);
  // The endpoint for the next attempt of `call`; -1 = the fallback.
  int PickEndpoint(const Call& call) const;
  void MarkDown(Endpoint& endpoint) const;
  void MarkUp(Endpoint& endpoint) const;
  // Runs `fn` on the first healthy endpoint, failing over on UNAVAILABLE (sync calls).
  template <typename Fn>
  auto WithFailover(Fn&& fn) const -> decltype(fn(std::declval<InferenceService&>()));
  Result<std::shared_ptr<const ModelInfo>> Info(const std::string& model,
                                                const std::string& version) const;
  Status Validate(const InferRequest& request, const ModelInfo& info) const;
  // The error text of a failed call: what was tried, the last server/transport message.
  std::string FailureMessage(const Call& call, const Status& status) const;
  std::string EndpointList() const;
  // `message`, prefixed with the endpoint list unless it names one of them.
  std::string WithEndpoints(const std::string& message) const;

  ClientOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::unique_ptr<Endpoint> fallback_;
  std::unique_ptr<Timer> timer_;

  mutable std::mutex window_mutex_;
  std::condition_variable window_cv_;
  size_t in_flight_ = 0;   // guarded by window_mutex_
  size_t completing_ = 0;  // callbacks running; guarded by window_mutex_
  std::atomic<bool> shutting_down_{false};
  mutable std::atomic<bool> on_fallback_{false};  // for the one log line per switch

  mutable std::mutex info_mutex_;
  mutable std::map<std::string, std::shared_ptr<const ModelInfo>> info_;  // guarded

  mutable std::atomic<uint64_t> calls_{0}, attempts_{0}, retries_{0}, fallback_calls_{0},
      failed_calls_{0};
};

}  // namespace quiver::client
