#include "client/client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <random>
#include <thread>

#include "client/remote_service.h"

namespace quiver::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

std::string VersionSuffix(const std::string& version) {
  return version.empty() ? std::string() : " version " + version;
}

}  // namespace

struct Client::Endpoint {
  std::string name;  // the URL as given
  std::shared_ptr<InferenceService> service;
  std::atomic<int64_t> down_until_ns{0};
  std::atomic<int> failures{0};  // consecutive

  bool Up(int64_t now) const { return down_until_ns.load(std::memory_order_relaxed) <= now; }
};

struct Client::ModelInfo {
  ModelMetadata metadata;
  std::optional<ModelConfig> config;  // absent when the server would not give it
  SteadyClock::time_point fetched;
};

struct Client::Call {
  InferRequest request;
  InferCallback done;
  SteadyClock::time_point start;
  SteadyClock::time_point deadline = SteadyClock::time_point::max();
  int attempts = 0;          // remote attempts so far
  int round = 0;             // backoff rounds so far
  std::vector<bool> tried;   // endpoints tried in the current round
  std::vector<std::string> tried_names;  // every endpoint tried, in order, unique
  Status last;               // the last attempt's error
  std::string last_endpoint;
  bool used_fallback = false;
};

// Runs delayed tasks (backoffs) on one thread, so no transport thread ever sleeps.
class Client::Timer {
 public:
  Timer() : thread_([this] { Loop(); }) {}
  ~Timer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void At(SteadyClock::time_point when, std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.emplace(when, std::move(task));
    }
    cv_.notify_all();
  }
  // Runs every queued task now (shutdown: the tasks see shutting_down_ and finish).
  void Flush() {
    {
      std::lock_guard lock(mutex_);
      flush_ = true;
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      if (tasks_.empty()) {
        if (stopping_) return;
        cv_.wait(lock);
        continue;
      }
      auto first = tasks_.begin();
      if (!flush_ && !stopping_ && first->first > SteadyClock::now()) {
        cv_.wait_until(lock, first->first);
        continue;
      }
      std::function<void()> task = std::move(first->second);
      tasks_.erase(first);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::multimap<SteadyClock::time_point, std::function<void()>> tasks_;  // guarded
  bool stopping_ = false;  // guarded
  bool flush_ = false;     // guarded
  std::thread thread_;
};

namespace {
std::atomic<LocalOpener> g_local_opener{nullptr};
}  // namespace

void SetLocalOpener(LocalOpener opener) { g_local_opener.store(opener); }

Result<std::shared_ptr<InferenceService>> OpenService(const Url& url,
                                                      const ClientOptions& options) {
  if (url.scheme == Scheme::kLocal) {
    LocalOpener open = g_local_opener.load();
    if (open == nullptr) {
      return Status::Unsupported(url.text +
                                 ": local:// needs the in-process engine (link "
                                 "quiver_client_local and call client::EnableLocalUrls())");
    }
    return open(url);
  }
  RemoteOptions remote;
  remote.host = url.host;
  remote.port = url.port;
  remote.connections = options.connections;
  remote.shared_memory = options.shared_memory;
  remote.token = options.token;
  if (url.scheme == Scheme::kHttp) return std::shared_ptr<InferenceService>(MakeHttpService(remote));
  return std::shared_ptr<InferenceService>(MakeGrpcService(remote));
}

Result<std::shared_ptr<Client>> Client::Create(ClientOptions options,
                                               const ServiceFactory& open) {
  if (options.urls.empty() && options.fallback.empty()) {
    return Status::InvalidArgument("client: no endpoint URL given");
  }
  QUIVER_RETURN_IF_ERROR(CheckToken(options.token).WithContext("client"));
  if (options.max_in_flight == 0) options.max_in_flight = 1;
  std::shared_ptr<Client> client(new Client(options));
  for (const std::string& text : options.urls) {
    auto url = ParseUrl(text);
    if (!url.ok()) return url.status();
    auto service = open(*url, options);
    if (!service.ok()) return service.status();
    auto endpoint = std::make_unique<Endpoint>();
    endpoint->name = text;
    endpoint->service = std::move(*service);
    client->endpoints_.push_back(std::move(endpoint));
  }
  if (!options.fallback.empty()) {
    auto url = ParseUrl(options.fallback);
    if (!url.ok()) return url.status().WithContext("fallback");
    auto service = open(*url, options);
    if (!service.ok()) return service.status().WithContext("fallback");
    client->fallback_ = std::make_unique<Endpoint>();
    client->fallback_->name = options.fallback;
    client->fallback_->service = std::move(*service);
  }
  return client;
}

Client::Client(ClientOptions options)
    : options_(std::move(options)), timer_(std::make_unique<Timer>()) {}

Client::~Client() {
  shutting_down_ = true;
  timer_->Flush();
  {
    std::unique_lock lock(window_mutex_);
    window_cv_.wait(lock, [&] { return in_flight_ == 0 && completing_ == 0; });
  }
  timer_.reset();
  // Endpoints (and their transports) go after the last callback has run.
}

ClientStats Client::Stats() const {
  return ClientStats{calls_.load(), attempts_.load(), retries_.load(), fallback_calls_.load(),
                     failed_calls_.load()};
}

void Client::MarkDown(Endpoint& endpoint) const {
  const int failures = std::min(endpoint.failures.fetch_add(1) + 1, 8);
  const auto cooldown = options_.retry.endpoint_cooldown * (1 << (failures - 1));
  endpoint.down_until_ns =
      NowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(cooldown).count();
}

void Client::MarkUp(Endpoint& endpoint) const {
  if (endpoint.failures.load(std::memory_order_relaxed) != 0) {
    endpoint.failures = 0;
    endpoint.down_until_ns = 0;
  }
}


int Client::PickEndpoint(const Call& call) const {
  const int64_t now = NowNs();
  const int n = static_cast<int>(endpoints_.size());
  // First choice: the first endpoint that is up and not yet tried in this round.
  for (int i = 0; i < n; ++i) {
    if (!call.tried[i] && endpoints_[i]->Up(now)) return i;
  }
  if (fallback_ != nullptr) return -1;
  // No fallback: the untried endpoint that comes back soonest, else the soonest of all.
  int best = -1;
  for (int pass = 0; pass < 2 && best < 0; ++pass) {
    for (int i = 0; i < n; ++i) {
      if (pass == 0 && call.tried[i]) continue;
      if (best < 0 || endpoints_[i]->down_until_ns < endpoints_[best]->down_until_ns) best = i;
    }
  }
  return best;
}

void Client::Infer(InferRequest request, InferCallback done) {
  auto call = std::make_shared<Call>();
  call->start = SteadyClock::now();
  call->deadline = request.deadline;
  if (options_.timeout.count() > 0) {
    call->deadline = std::min(call->deadline, call->start + options_.timeout);
  }
  call->tried.assign(endpoints_.size(), false);
  call->done = std::move(done);
  ++calls_;

  if (options_.validate_inputs) {
    // The metadata fetch is part of the call: bounded by its deadline.
    SyncDeadlineScope bounded(call->deadline);
    auto info = Info(request.model, request.version);
    Status invalid = info.ok() ? Validate(request, **info) : info.status();
    // Metadata that cannot be fetched because every server is down is no reason to
    // fail: the call itself will retry or fall back (and report this error if it fails).
    const bool servers_down = !info.ok() && IsRetryable(info.status());
    if (!invalid.ok() && !servers_down) {
      ++failed_calls_;
      call->done(Status(invalid.code(), WithEndpoints(invalid.message())));
      return;
    }
    if (servers_down) call->last = info.status();
  }
  call->request = std::move(request);
  {
    std::unique_lock lock(window_mutex_);
    window_cv_.wait(lock, [&] { return in_flight_ < options_.max_in_flight; });
    ++in_flight_;
  }
  Attempt(call);
}

std::future<Result<InferResponse>> Client::InferAsync(InferRequest request) {
  auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
  auto future = promise->get_future();
  Infer(std::move(request),
        [promise](Result<InferResponse> result) { promise->set_value(std::move(result)); });
  return future;
}

Result<InferResponse> Client::InferSync(InferRequest request) {
  return InferAsync(std::move(request)).get();
}

void Client::Attempt(const std::shared_ptr<Call>& call) {
  if (shutting_down_) {
    Finish(call, Status::Cancelled("client is shutting down; model '" + call->request.model +
                                   "' request not sent again"));
    return;
  }
  const auto now = SteadyClock::now();
  if (now >= call->deadline) {
    Finish(call, Status::DeadlineExceeded("deadline exceeded"));
    return;
  }
  const int index = call->used_fallback ? -1 : PickEndpoint(*call);
  Endpoint* endpoint = index >= 0 ? endpoints_[index].get() : fallback_.get();
  if (index < 0) {
    if (!call->used_fallback) ++fallback_calls_;
    call->used_fallback = true;
    if (!on_fallback_.exchange(true)) {
      spdlog::warn("client: every remote endpoint is down; serving from fallback {}",
                   endpoint->name);
    }
  } else {
    call->tried[index] = true;
    ++call->attempts;
    if (on_fallback_.load(std::memory_order_relaxed) && on_fallback_.exchange(false)) {
      spdlog::warn("client: remote endpoint {} is back; leaving fallback {}", endpoint->name,
                   fallback_->name);
    }
  }
  if (std::find(call->tried_names.begin(), call->tried_names.end(), endpoint->name) ==
      call->tried_names.end()) {
    call->tried_names.push_back(endpoint->name);
  }
  ++attempts_;

  InferRequest request = call->request;  // shares tensor bytes; kept for retries
  request.deadline = call->deadline;
  if (options_.attempt_timeout.count() > 0) {
    request.deadline = std::min(request.deadline, now + options_.attempt_timeout);
  }
  endpoint->service->Infer(std::move(request), [this, call, index](Result<InferResponse> r) {
    OnResult(call, index, std::move(r));
  });
}

void Client::OnResult(const std::shared_ptr<Call>& call, int index,
                      Result<InferResponse> result) {
  Endpoint* endpoint = index >= 0 ? endpoints_[index].get() : fallback_.get();
  if (result.ok()) {
    if (index >= 0) MarkUp(*endpoint);
    Finish(call, std::move(result));
    return;
  }
  call->last = result.status();
  call->last_endpoint = endpoint->name;
  const bool call_deadline_passed = SteadyClock::now() >= call->deadline;
  if (index < 0 || !IsRetryable(call->last) || call_deadline_passed) {
    Finish(call, std::move(result));
    return;
  }
  // A retryable failure of a remote endpoint: skip it for a while, then try the next.
  if (call->last.code() == StatusCode::kUnavailable) MarkDown(*endpoint);
  const auto elapsed = SteadyClock::now() - call->start;
  const bool budget_left =
      call->attempts < options_.retry.max_attempts && elapsed < options_.retry.max_total;
  if (!budget_left) {
    if (fallback_ != nullptr) {
      call->used_fallback = true;
      ++fallback_calls_;
      spdlog::warn("client: model '{}': remote attempts exhausted; serving from fallback {}",
                   call->request.model, fallback_->name);
      timer_->At(SteadyClock::now(), [this, call] { Attempt(call); });
    } else {
      Finish(call, std::move(result));
    }
    return;
  }
  ++retries_;
  const int64_t now = NowNs();
  const bool untried_up =
      std::any_of(endpoints_.begin(), endpoints_.end(), [&, i = 0](const auto& e) mutable {
        return !call->tried[i++] && e->Up(now);
      });
  if (untried_up || (fallback_ != nullptr && PickEndpoint(*call) < 0)) {
    // Failover: no wait. Through the timer so that deep failure chains do not recurse.
    timer_->At(SteadyClock::now(), [this, call] { Attempt(call); });
    return;
  }
  // Every endpoint was tried in this round: back off (full jitter) and start again.
  const auto cap = std::min<std::chrono::nanoseconds>(
      options_.retry.max_backoff, options_.retry.initial_backoff * (int64_t{1} << std::min(call->round, 20)));
  ++call->round;
  std::fill(call->tried.begin(), call->tried.end(), false);
  thread_local std::mt19937_64 rng(std::random_device{}());
  const auto delay = std::chrono::nanoseconds(
      std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(cap.count(), 0))(rng));
  timer_->At(std::min(SteadyClock::now() + delay, call->deadline), [this, call] { Attempt(call); });
}

void Client::Finish(const std::shared_ptr<Call>& call, Result<InferResponse> result) {
  if (!result.ok()) {
    ++failed_calls_;
    const StatusCode code = result.status().code();
    result = Status(code, FailureMessage(*call, result.status()));
    if (code == StatusCode::kNotFound || code == StatusCode::kInvalidArgument) {
      // The model may have changed on the server: fetch its metadata again next time.
      std::lock_guard lock(info_mutex_);
      info_.erase(call->request.model + '\n' + call->request.version);
    }
  }
  InferCallback done = std::move(call->done);
  // No attempt follows: drop the inputs before the callback, whose owner (Python: the
  // numpy arrays) may then release them on its own thread instead of this one.
  call->request.inputs.clear();
  // Free the window slot before the callback so that it may issue the next request;
  // `completing_` keeps the destructor waiting until the callback has returned.
  {
    std::lock_guard lock(window_mutex_);
    --in_flight_;
    ++completing_;
  }
  window_cv_.notify_all();
  done(std::move(result));
  {
    // Notify under the lock: once `completing_` is 0 the destructor may return and destroy
    // window_cv_, so the notify must not run after the unlock.
    std::lock_guard lock(window_mutex_);
    --completing_;
    window_cv_.notify_all();
  }
}

std::string Client::FailureMessage(const Call& call, const Status& status) const {
  const int attempts = call.attempts + (call.used_fallback ? 1 : 0);
  std::string tried;
  for (const std::string& name : call.tried_names) tried += (tried.empty() ? "" : ", ") + name;
  std::string message = fmt::format("model '{}'{}: ", call.request.model,
                                    VersionSuffix(call.request.version));
  if (status.code() == StatusCode::kDeadlineExceeded && SteadyClock::now() >= call.deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(call.deadline -
                                                                          call.start).count();
    message += fmt::format("deadline of {} ms exceeded after {} attempt(s)", ms, attempts);
  } else {
    message += fmt::format("{} attempt(s) failed", attempts);
  }
  message += tried.empty() ? " (endpoints: " + EndpointList() + ")" : " over [" + tried + "]";
  // The last server or transport message (the metadata fetch's when no attempt was made),
  // naming its endpoint.
  const Status& last = call.last.ok() ? status : call.last;
  std::string detail = last.message();
  if (!call.last_endpoint.empty() && detail.find(call.last_endpoint) == std::string::npos) {
    detail = call.last_endpoint + ": " + detail;
  }
  return message + "; last error: " + detail;
}

std::string Client::EndpointList() const {
  std::string names;
  for (const auto& e : endpoints_) names += (names.empty() ? "" : ", ") + e->name;
  if (fallback_ != nullptr) names += (names.empty() ? "" : ", ") + fallback_->name;
  return names;
}

std::string Client::WithEndpoints(const std::string& message) const {
  for (const auto& e : endpoints_) {
    if (message.find(e->name) != std::string::npos) return message;
  }
  if (fallback_ != nullptr && message.find(fallback_->name) != std::string::npos) return message;
  return EndpointList() + ": " + message;
}

template <typename Fn>
auto Client::WithFailover(Fn&& fn) const -> decltype(fn(std::declval<InferenceService&>())) {
  using R = decltype(fn(std::declval<InferenceService&>()));
  std::optional<R> last;
  // The client's timeout bounds a sync call over all endpoints.
  SyncDeadlineScope bounded(options_.timeout.count() > 0
                                ? SteadyClock::now() + options_.timeout
                                : kNoDeadline);
  const int64_t now = NowNs();
  // Healthy endpoints first, in order; then the ones marked down; then the fallback.
  std::vector<Endpoint*> order;
  for (const auto& e : endpoints_) {
    if (e->Up(now)) order.push_back(e.get());
  }
  for (const auto& e : endpoints_) {
    if (!e->Up(now)) order.push_back(e.get());
  }
  if (fallback_ != nullptr) order.push_back(fallback_.get());
  for (Endpoint* endpoint : order) {
    R result = fn(*endpoint->service);
    Status status;
    if constexpr (std::is_same_v<R, Status>) {
      status = result;
    } else {
      status = result.status();
    }
    if (status.ok() || status.code() != StatusCode::kUnavailable) {
      if (!status.ok() && status.message().find(endpoint->name) == std::string::npos) {
        return Status(status.code(), endpoint->name + ": " + status.message());
      }
      return result;
    }
    last.emplace(std::move(result));
  }
  return std::move(*last);
}

bool Client::Live() const {
  return WithFailover([](InferenceService& s) -> Status {
           return s.Live() ? Status::Ok() : Status::Unavailable("not live");
         }).ok();
}

bool Client::Ready() const {
  return WithFailover([](InferenceService& s) -> Status {
           return s.Ready() ? Status::Ok() : Status::Unavailable("not ready");
         }).ok();
}

Result<ServerMetadata> Client::GetServerMetadata() const {
  return WithFailover([](InferenceService& s) { return s.GetServerMetadata(); });
}

Result<ModelMetadata> Client::GetModelMetadata(std::string_view model,
                                               std::string_view version) const {
  return WithFailover([&](InferenceService& s) { return s.GetModelMetadata(model, version); });
}

Result<ModelConfig> Client::GetModelConfig(std::string_view model,
                                           std::string_view version) const {
  return WithFailover([&](InferenceService& s) { return s.GetModelConfig(model, version); });
}

bool Client::ModelReady(std::string_view model, std::string_view version) const {
  return WithFailover([&](InferenceService& s) -> Status {
           return s.ModelReady(model, version) ? Status::Ok()
                                               : Status::Unavailable("model not ready");
         }).ok();
}

Result<RepositoryIndex> Client::Index() {
  return WithFailover([](InferenceService& s) { return s.Index(); });
}

Status Client::Load(std::string_view model) {
  return WithFailover([&](InferenceService& s) { return s.Load(model); });
}

Status Client::Unload(std::string_view model) {
  return WithFailover([&](InferenceService& s) { return s.Unload(model); });
}

Result<std::vector<ModelStatistics>> Client::GetStatistics(std::string_view model,
                                                           std::string_view version) const {
  return WithFailover([&](InferenceService& s) { return s.GetStatistics(model, version); });
}

Result<std::shared_ptr<const Client::ModelInfo>> Client::Info(const std::string& model,
                                                              const std::string& version) const {
  const std::string key = model + '\n' + version;
  const auto now = SteadyClock::now();
  {
    std::lock_guard lock(info_mutex_);
    auto it = info_.find(key);
    if (it != info_.end() && now - it->second->fetched < options_.metadata_ttl) return it->second;
  }
  auto metadata = GetModelMetadata(model, version);
  if (!metadata.ok()) return metadata.status();
  auto info = std::make_shared<ModelInfo>();
  info->metadata = std::move(*metadata);
  if (auto config = GetModelConfig(model, version); config.ok()) info->config = std::move(*config);
  info->fetched = now;
  std::lock_guard lock(info_mutex_);
  info_[key] = info;
  return std::shared_ptr<const ModelInfo>(std::move(info));
}

Status Client::Validate(const InferRequest& request, const ModelInfo& info) const {
  // Built only for an error: this runs on every call.
  const auto where = [&] {
    return "model '" + request.model + "'" + VersionSuffix(request.version);
  };
  for (const Tensor& input : request.inputs) {
    auto it = std::find_if(info.metadata.inputs.begin(), info.metadata.inputs.end(),
                           [&](const TensorMetadata& m) { return m.name == input.name; });
    if (it == info.metadata.inputs.end()) {
      std::string expected;
      for (const auto& m : info.metadata.inputs) expected += (expected.empty() ? "" : ", ") + m.name;
      return Status::InvalidArgument(where() + ": unknown input '" + input.name +
                                     "' (the model's inputs: " + expected + ")");
    }
    if (input.datatype != it->datatype) {
      return Status::InvalidArgument(
          fmt::format("{}: input '{}' has datatype {} but the model expects {}", where(),
                      input.name, DataTypeName(input.datatype), DataTypeName(it->datatype)));
    }
    bool shape_ok = input.shape.size() == it->shape.size();
    for (size_t d = 0; shape_ok && d < input.shape.size(); ++d) {
      shape_ok = it->shape[d] < 0 || it->shape[d] == input.shape[d];
    }
    if (!shape_ok) {
      return Status::InvalidArgument(fmt::format(
          "{}: input '{}' has shape {} but the model expects {} (-1 = any size)", where(),
          input.name, ShapeToString(input.shape), ShapeToString(it->shape)));
    }
    if (info.config && info.config->max_batch_size() > 0 && !input.shape.empty() &&
        input.shape[0] > info.config->max_batch_size()) {
      return Status::InvalidArgument(fmt::format(
          "{}: input '{}' has batch size {} but the model's max_batch_size is {}", where(),
          input.name, input.shape[0], info.config->max_batch_size()));
    }
  }
  for (const TensorMetadata& m : info.metadata.inputs) {
    const bool given = std::any_of(request.inputs.begin(), request.inputs.end(),
                                   [&](const Tensor& t) { return t.name == m.name; });
    if (given) continue;
    bool optional = false;
    if (info.config) {
      for (const auto& in : info.config->input()) {
        if (in.name() == m.name) optional = in.optional();
      }
    }
    if (!optional) {
      return Status::InvalidArgument(where() + ": missing input '" + m.name + "'");
    }
  }
  return Status::Ok();
}

}  // namespace quiver::client
