#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "client/http_service.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <future>
#include <optional>
#include <thread>
#include <utility>

#include "client/http_client_connection.h"
#include "client/http_json.h"
#include "client/shm_pool.h"
#include "core/strings.h"

namespace quiver::client {

namespace asio = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kShmAlignment = 64;

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

// Set by the registration function when the server could not be reached at all (as
// opposed to answering with an error): Acquire runs it on the calling thread.
thread_local bool t_registration_unreachable = false;

// A request whose outcome a blocked thread waits for.
class BlockingExchange final : public HttpExchange {
 public:
  BlockingExchange(const char* m, std::string t, std::string body = {}) {
    method = m;
    target = std::move(t);
    json = std::move(body);
  }
  std::future<Result<HttpRawResponse>> future() { return promise_.get_future(); }

 private:
  void OnFinish(Result<HttpRawResponse> result) override { promise_.set_value(std::move(result)); }
  std::promise<Result<HttpRawResponse>> promise_;
};

// Runs one exchange on a private connection and io_context on the calling thread (any
// thread, including the service's own I/O thread), for at most `timeout` (0 = no limit):
// DEADLINE_EXCEEDED naming the endpoint when the server accepted but did not answer.
Result<HttpRawResponse> RunOneShot(const std::shared_ptr<const HttpEndpoint>& endpoint,
                                   const std::shared_ptr<BlockingExchange>& exchange,
                                   std::chrono::milliseconds timeout) {
  asio::io_context io;
  auto future = exchange->future();
  auto connection = std::make_shared<HttpClientConnection>(io.get_executor(), endpoint, nullptr);
  connection->Start(exchange);
  if (timeout.count() > 0) {
    io.run_for(timeout);
  } else {
    io.run();
  }
  if (auto unanswered = connection->Abort()) {  // also closes the socket
    unanswered->Finish(Status::DeadlineExceeded(endpoint->name + ": no answer within " +
                                                std::to_string(timeout.count()) + " ms"));
  }
  return future.get();
}

// The target of a model-scoped endpoint: /v2/models/{m}[/versions/{v}][/{action}].
std::string ModelTarget(std::string_view model, std::string_view version,
                        std::string_view action) {
  std::string t = "/v2/models/" + EncodePathSegment(model);
  if (!version.empty()) t += "/versions/" + EncodePathSegment(version);
  if (!action.empty()) {
    t += '/';
    t += action;
  }
  return t;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Core: everything the I/O thread touches; outlives the HttpService while the thread runs.

class HttpService::Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(const RemoteOptions& options)
      : options_(options),
        endpoint_(HttpEndpoint::Make(options.host, options.port, options.connect_timeout)),
        work_(asio::make_work_guard(io_)) {
    const size_t n = std::max<size_t>(options.connections, 1);
    for (size_t i = 0; i < n; ++i) {
      connections_.push_back(std::make_shared<HttpClientConnection>(
          io_.get_executor(), endpoint_, [this](HttpClientConnection& c) { OnIdle(c); }));
    }
    if (options.shared_memory && IsLoopback(options.host)) {
      static std::atomic<uint64_t> counter{0};
      const std::string prefix =
          "quiver_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
      auto endpoint = endpoint_;
      const std::chrono::milliseconds timeout = options.connect_timeout;
      pool_ = std::make_unique<ShmPool>(
          prefix,
          [endpoint, timeout](const std::string& name, const std::string& key, uint64_t size) {
            return Register(endpoint, timeout, name, key, size);
          },
          [endpoint, timeout](const std::string& name) {
            return Unregister(endpoint, timeout, name);
          });
      shm_active_ = true;
    }
  }

  ~Core() {
    // Unregisters (and unlinks) the regions while the server may still be there.
    pool_.reset();
  }

  void StartThread() {
    thread_ = std::thread([self = shared_from_this()] { self->Run(); });
  }

  // Fails what is queued or in flight, lets the thread finish and joins it (or detaches
  // it when called on the thread itself, from a callback).
  void Shutdown() {
    asio::post(io_, [this] { StopAll(); });
    work_.reset();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  const std::shared_ptr<const HttpEndpoint>& endpoint() const { return endpoint_; }
  bool shm_active() const { return shm_active_.load(std::memory_order_relaxed); }
  size_t shm_region_count() const { return pool_ ? pool_->RegionCount() : 0; }

  void Infer(InferRequest request, InferCallback done);

  // A blocking request on a connection of its own, run on the calling thread: it neither
  // queues behind the Infer requests on the pool (a slow model would delay a health check
  // or a metadata fetch by the whole queue) nor can deadlock when called from a callback.
  // Health, metadata, config, statistics and index calls give up after connect_timeout
  // (as the gRPC transport's), so a server that accepts but hangs cannot block a caller
  // for good; model load/unload (kUnbounded) may take as long as the model needs.
  enum class Wait : uint8_t { kBounded, kUnbounded };
  Result<HttpRawResponse> Call(const char* method, std::string target, std::string body = {},
                               Wait wait = Wait::kBounded) const {
    auto exchange = std::make_shared<BlockingExchange>(method, std::move(target), std::move(body));
    return RunOneShot(endpoint_, exchange,
                      wait == Wait::kBounded ? options_.connect_timeout
                                             : std::chrono::milliseconds(0));
  }

  // Call, then the server's error for a non-2xx status.
  Result<HttpRawResponse> CallOk(const char* method, std::string target, std::string body = {},
                                 Wait wait = Wait::kBounded) const {
    auto r = Call(method, std::move(target), std::move(body), wait);
    if (r.ok() && r->status / 100 != 2) return ErrorFromHttpResponse(r->status, r->text());
    return r;
  }

  // A malformed answer: INTERNAL naming the endpoint.
  Status Malformed(const Status& parse_error) const {
    return Status::Internal(endpoint_->name + ": " + parse_error.message());
  }

 private:
  class InferExchange;

  static Status Register(const std::shared_ptr<const HttpEndpoint>& endpoint,
                         std::chrono::milliseconds timeout, const std::string& name,
                         const std::string& key, uint64_t size) {
    // Region names and keys are ours ("quiver_<pid>_<n>_<i>"): nothing to escape.
    auto exchange = std::make_shared<BlockingExchange>(
        "POST", "/v2/systemsharedmemory/region/" + EncodePathSegment(name) + "/register",
        R"({"key":")" + key + R"(","offset":0,"byte_size":)" + std::to_string(size) + "}");
    auto r = RunOneShot(endpoint, exchange, timeout);
    if (!r.ok()) {
      t_registration_unreachable = true;
      return r.status();
    }
    if (r->status / 100 != 2) return ErrorFromHttpResponse(r->status, r->text());
    return Status::Ok();
  }

  static Status Unregister(const std::shared_ptr<const HttpEndpoint>& endpoint,
                           std::chrono::milliseconds timeout, const std::string& name) {
    auto exchange = std::make_shared<BlockingExchange>(
        "POST", "/v2/systemsharedmemory/region/" + EncodePathSegment(name) + "/unregister");
    auto r = RunOneShot(endpoint, exchange, timeout);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) return ErrorFromHttpResponse(r->status, r->text());
    return Status::Ok();
  }

  void Run() {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        // Only a user callback can throw here; the transport itself does not.
        spdlog::error("{}: an Infer callback threw: {}", endpoint_->name, e.what());
      }
    }
  }

  // Any thread: hands an exchange to the I/O thread.
  void Submit(std::shared_ptr<HttpExchange> exchange) {
    asio::post(io_, [this, x = std::move(exchange)]() mutable { Enqueue(std::move(x)); });
  }

  // Copies the inputs of at least shared_memory_min_bytes into one leased region and
  // describes them in `encodings`. Leaves everything binary when shm cannot be used.
  void PlaceInSharedMemory(const InferRequest& request,
                           std::vector<protocol::InputEncoding>& encodings,
                           std::optional<ShmPool::Lease>& lease);

  void Enqueue(std::shared_ptr<HttpExchange> x);
  void OnIdle(HttpClientConnection& connection);
  void Expire(const std::shared_ptr<HttpExchange>& x);
  void StopAll();
  Status DeadlineStatus(const HttpExchange& x) const;

  const RemoteOptions options_;
  const std::shared_ptr<const HttpEndpoint> endpoint_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::unique_ptr<ShmPool> pool_;  // null when shm is off for this service
  std::atomic<bool> shm_active_{false};

  // I/O thread only.
  std::vector<std::shared_ptr<HttpClientConnection>> connections_;
  std::deque<std::shared_ptr<HttpExchange>> queue_;  // waiting for a free connection
  bool stopped_ = false;
};

// An inference call: parses the response and calls the user's callback.
class HttpService::Core::InferExchange final : public HttpExchange {
 public:
  InferExchange(std::shared_ptr<const HttpEndpoint> endpoint, InferCallback done)
      : endpoint_(std::move(endpoint)), done_(std::move(done)) {}

  std::string model;
  std::optional<ShmPool::Lease> lease;

 private:
  void OnFinish(Result<HttpRawResponse> result) override {
    chunks.clear();  // the caller's input tensors are no longer needed
    Result<InferResponse> response = Convert(std::move(result));
    lease.reset();  // the inputs have been consumed; outputs came in the body
    InferCallback done = std::move(done_);
    done(std::move(response));
  }

  Result<InferResponse> Convert(Result<HttpRawResponse> result) const {
    if (!result.ok()) return result.status();
    if (result->status != 200) return ErrorFromHttpResponse(result->status, result->text());
    auto parsed = protocol::ParseInferResponse(result->AsInferBody());
    if (!parsed.ok()) {
      return Status::Internal(endpoint_->name + ": malformed inference response: " +
                              parsed.status().message());
    }
    return parsed;
  }

  std::shared_ptr<const HttpEndpoint> endpoint_;
  InferCallback done_;
};

void HttpService::Core::Infer(InferRequest request, InferCallback done) {
  auto x = std::make_shared<InferExchange>(endpoint_, std::move(done));
  x->method = "POST";
  x->target = ModelTarget(request.model, request.version, "infer");
  x->deadline = request.deadline;

  std::vector<protocol::InputEncoding> encodings;
  if (shm_active()) PlaceInSharedMemory(request, encodings, x->lease);
  protocol::ResponsePlan plan;
  plan.default_transport = protocol::Transport::kBinary;
  auto body = protocol::EncodeInferRequest(request, encodings, plan);
  x->model = std::move(request.model);
  if (!body.ok()) {
    // Delivered on the I/O thread like every other outcome.
    asio::post(io_, [x, status = body.status()]() mutable { x->Finish(std::move(status)); });
    return;
  }
  x->header_length = body->header_length();
  x->json = std::move(body->json);
  x->chunks = std::move(body->binary);
  Submit(std::move(x));
}

void HttpService::Core::PlaceInSharedMemory(const InferRequest& request,
                                            std::vector<protocol::InputEncoding>& encodings,
                                            std::optional<ShmPool::Lease>& lease) {
  const size_t min_bytes = std::max<size_t>(options_.shared_memory_min_bytes, 1);
  auto aligned = [](size_t n) { return (n + kShmAlignment - 1) / kShmAlignment * kShmAlignment; };
  size_t total = 0;
  for (const Tensor& t : request.inputs) {
    if (t.data.size() >= min_bytes) total += aligned(t.data.size());
  }
  if (total == 0) return;
  t_registration_unreachable = false;
  auto acquired = pool_->Acquire(total);
  if (!acquired.ok()) {
    // A server that could not be reached fails this request anyway; one that answered
    // (refused the key: remote, or in a container without our /dev/shm) never will take
    // shared memory, and neither will a host whose shm cannot be created.
    if (!t_registration_unreachable && shm_active_.exchange(false)) {
      spdlog::info("{}: system shared memory disabled for this service, tensors travel in the "
                   "HTTP body ({})",
                   endpoint_->name, acquired.status().ToString());
    }
    return;
  }
  encodings.resize(request.inputs.size());
  size_t offset = 0;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Buffer& data = request.inputs[i].data;
    if (data.size() < min_bytes) continue;
    std::memcpy(acquired->data() + offset, data.data(), data.size());
    encodings[i].transport = protocol::Transport::kSharedMemory;
    encodings[i].shm = {acquired->name(), offset, data.size()};
    offset += aligned(data.size());
  }
  lease = std::move(acquired).value();
}

Status HttpService::Core::DeadlineStatus(const HttpExchange& x) const {
  const auto* infer = dynamic_cast<const InferExchange*>(&x);
  return Status::DeadlineExceeded(
      endpoint_->name + ": deadline exceeded" +
      (infer != nullptr ? " waiting for model " + Quoted(infer->model) : std::string()));
}

void HttpService::Core::Enqueue(std::shared_ptr<HttpExchange> x) {
  if (x->finished()) return;
  if (stopped_) {
    x->Finish(Status::Cancelled(endpoint_->name + ": the HTTP service was destroyed"));
    return;
  }
  if (x->deadline != Clock::time_point::max()) {
    if (x->deadline <= Clock::now()) {
      x->Finish(DeadlineStatus(*x));
      return;
    }
    x->timer.emplace(io_, x->deadline);
    x->timer->async_wait([this, x](boost::system::error_code ec) {
      if (!ec) Expire(x);
    });
  }
  // An idle open connection first (keep-alive), else an idle closed one (opened lazily).
  HttpClientConnection* pick = nullptr;
  for (const auto& c : connections_) {
    if (c->busy()) continue;
    if (c->open()) {
      pick = c.get();
      break;
    }
    if (pick == nullptr) pick = c.get();
  }
  if (pick != nullptr) {
    pick->Start(std::move(x));
  } else {
    queue_.push_back(std::move(x));
  }
}

void HttpService::Core::OnIdle(HttpClientConnection& connection) {
  if (stopped_) return;
  while (!queue_.empty()) {
    std::shared_ptr<HttpExchange> x = std::move(queue_.front());
    queue_.pop_front();
    if (x->finished()) continue;
    connection.Start(std::move(x));
    return;
  }
}

void HttpService::Core::Expire(const std::shared_ptr<HttpExchange>& x) {
  if (x->finished()) return;
  if (HttpClientConnection* c = x->connection) {
    // The request may be half sent or half answered: the connection cannot be reused.
    (void)c->Abort();
    OnIdle(*c);
  } else {
    auto it = std::find(queue_.begin(), queue_.end(), x);
    if (it != queue_.end()) queue_.erase(it);
  }
  x->Finish(DeadlineStatus(*x));
}

void HttpService::Core::StopAll() {
  stopped_ = true;
  const Status cancelled = Status::Cancelled(
      endpoint_->name + ": the HTTP service was destroyed with the request in flight");
  std::deque<std::shared_ptr<HttpExchange>> queued = std::move(queue_);
  queue_.clear();
  for (const auto& c : connections_) {
    if (auto x = c->Abort()) x->Finish(cancelled);
  }
  for (auto& x : queued) x->Finish(cancelled);
}

// ---------------------------------------------------------------------------------------
// HttpService

HttpService::HttpService(const RemoteOptions& options) : core_(std::make_shared<Core>(options)) {
  core_->StartThread();
}

HttpService::~HttpService() { core_->Shutdown(); }

const std::string& HttpService::endpoint() const { return core_->endpoint()->name; }
bool HttpService::SharedMemoryActive() const { return core_->shm_active(); }
size_t HttpService::SharedMemoryRegionCount() const { return core_->shm_region_count(); }

bool HttpService::Live() const {
  auto r = core_->Call("GET", "/v2/health/live");
  return r.ok() && r->status == 200;
}

bool HttpService::Ready() const {
  auto r = core_->Call("GET", "/v2/health/ready");
  return r.ok() && r->status == 200;
}

Result<ServerMetadata> HttpService::GetServerMetadata() const {
  auto r = core_->CallOk("GET", "/v2");
  if (!r.ok()) return r.status();
  auto m = ParseServerMetadataJson(r->text());
  if (!m.ok()) return core_->Malformed(m.status());
  return m;
}

Result<ModelMetadata> HttpService::GetModelMetadata(std::string_view model,
                                                    std::string_view version) const {
  auto r = core_->CallOk("GET", ModelTarget(model, version, ""));
  if (!r.ok()) return r.status();
  auto m = ParseModelMetadataJson(r->text());
  if (!m.ok()) return core_->Malformed(m.status());
  return m;
}

Result<ModelConfig> HttpService::GetModelConfig(std::string_view model,
                                                std::string_view version) const {
  auto r = core_->CallOk("GET", ModelTarget(model, version, "config"));
  if (!r.ok()) return r.status();
  auto c = ParseModelConfigJson(r->text());
  if (!c.ok()) return core_->Malformed(c.status());
  return c;
}

bool HttpService::ModelReady(std::string_view model, std::string_view version) const {
  auto r = core_->Call("GET", ModelTarget(model, version, "ready"));
  return r.ok() && r->status == 200;
}

void HttpService::Infer(InferRequest request, InferCallback done) {
  core_->Infer(std::move(request), std::move(done));
}

Result<RepositoryIndex> HttpService::Index() {
  auto r = core_->CallOk("POST", "/v2/repository/index", "{}");
  if (!r.ok()) return r.status();
  auto index = ParseRepositoryIndexJson(r->text());
  if (!index.ok()) return core_->Malformed(index.status());
  return index;
}

Status HttpService::Load(std::string_view model) {
  auto r = core_->CallOk("POST", "/v2/repository/models/" + EncodePathSegment(model) + "/load",
                         {}, Core::Wait::kUnbounded);
  return r.ok() ? Status::Ok() : r.status();
}

Status HttpService::Unload(std::string_view model) {
  auto r = core_->CallOk("POST", "/v2/repository/models/" + EncodePathSegment(model) + "/unload",
                         {}, Core::Wait::kUnbounded);
  return r.ok() ? Status::Ok() : r.status();
}

Result<std::vector<ModelStatistics>> HttpService::GetStatistics(std::string_view model,
                                                                std::string_view version) const {
  auto r = core_->CallOk("GET", model.empty() ? std::string("/v2/models/stats")
                                              : ModelTarget(model, version, "stats"));
  if (!r.ok()) return r.status();
  auto stats = ParseStatisticsJson(r->text());
  if (!stats.ok()) return core_->Malformed(stats.status());
  return stats;
}

std::shared_ptr<InferenceService> MakeHttpService(const RemoteOptions& options) {
  return std::make_shared<HttpService>(options);
}

}  // namespace quiver::client
