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
#include <span>
#include <thread>
#include <utility>

#include "client/http_client_connection.h"
#include "client/http_json.h"
#include "client/remote_transport.h"
#include "core/strings.h"

namespace quiver::client {

namespace asio = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;

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
// thread, including the service's own I/O thread), until `deadline` (kNoDeadline: no
// limit): DEADLINE_EXCEEDED naming the endpoint when the server did not answer in time.
Result<HttpRawResponse> RunOneShot(const std::shared_ptr<const HttpEndpoint>& endpoint,
                                   const std::shared_ptr<BlockingExchange>& exchange,
                                   Deadline deadline) {
  const auto start = Clock::now();
  if (deadline <= start) {
    return Status::DeadlineExceeded(endpoint->name + ": deadline exceeded before sending " +
                                    exchange->method + " " + exchange->target);
  }
  asio::io_context io;
  auto future = exchange->future();
  auto connection = std::make_shared<HttpClientConnection>(io.get_executor(), endpoint, nullptr);
  connection->Start(exchange);
  if (deadline != kNoDeadline) {
    io.run_until(deadline);
  } else {
    io.run();
  }
  if (auto unanswered = connection->Abort()) {  // also closes the socket
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    unanswered->Finish(Status::DeadlineExceeded(endpoint->name + ": no answer to " +
                                                std::string(exchange->method) + " " + exchange->target +
                                                " within " + std::to_string(waited) + " ms"));
  }
  return future.get();
}

// A server's error answer, its message after the endpoint's name.
Status ServerError(const HttpEndpoint& endpoint, const HttpRawResponse& response) {
  return NamingEndpoint(ErrorFromHttpResponse(response.status, response.text()), endpoint.name);
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


// ---------------------------------------------------------------------------------------
// Core: everything the I/O thread touches; outlives the transport while the thread runs.

class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(const RemoteOptions& options)
      : endpoint_(HttpEndpoint::Make(options)), work_(asio::make_work_guard(io_)) {
    const size_t n = std::max<size_t>(options.connections, 1);
    for (size_t i = 0; i < n; ++i) {
      connections_.push_back(std::make_shared<HttpClientConnection>(
          io_.get_executor(), endpoint_, [this](HttpClientConnection& c) { OnIdle(c); }));
    }
  }

  void StartThread() {
    thread_ = std::thread([self = shared_from_this()] { self->Run(); });
  }

  // Fails what is queued or in flight, lets the thread finish and joins it (or detaches
  // it when called on the thread itself, from a callback). Idempotent.
  void Shutdown() {
    if (shutting_down_.exchange(true)) return;
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

  void Infer(InferRequest request, std::span<const protocol::SharedMemoryRef> placements,
             InferCallback done);

  // A blocking request on a connection of its own, run on the calling thread: it neither
  // queues behind the Infer requests on the pool (a slow model would delay a health check
  // or a metadata fetch by the whole queue) nor can deadlock when called from a callback.
  Result<HttpRawResponse> Call(const char* method, std::string target, Deadline deadline,
                               std::string body = {}) const {
    auto exchange = std::make_shared<BlockingExchange>(method, std::move(target), std::move(body));
    return RunOneShot(endpoint_, exchange, deadline);
  }

  // Call, then the server's error for a non-2xx status.
  Result<HttpRawResponse> CallOk(const char* method, std::string target, Deadline deadline,
                                 std::string body = {}) const {
    auto r = Call(method, std::move(target), deadline, std::move(body));
    if (r.ok() && r->status / 100 != 2) return ServerError(*endpoint_, *r);
    return r;
  }

  // A malformed answer: INTERNAL naming the endpoint.
  Status Malformed(const Status& parse_error) const {
    return Status::Internal(endpoint_->name + ": " + parse_error.message());
  }

 private:
  class InferExchange;

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

  void Enqueue(std::shared_ptr<HttpExchange> x);
  void OnIdle(HttpClientConnection& connection);
  void Expire(const std::shared_ptr<HttpExchange>& x);
  void StopAll();
  Status DeadlineStatus(const HttpExchange& x) const;

  const std::shared_ptr<const HttpEndpoint> endpoint_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<bool> shutting_down_{false};

  // I/O thread only.
  std::vector<std::shared_ptr<HttpClientConnection>> connections_;
  std::deque<std::shared_ptr<HttpExchange>> queue_;  // waiting for a free connection
  bool stopped_ = false;
};

// An inference call: parses the response and calls the user's callback.
class Core::InferExchange final : public HttpExchange {
 public:
  InferExchange(std::shared_ptr<const HttpEndpoint> endpoint, InferCallback done)
      : endpoint_(std::move(endpoint)), done_(std::move(done)) {}

  std::string model;

 private:
  void OnFinish(Result<HttpRawResponse> result) override {
    chunks.clear();  // the caller's input tensors are no longer needed
    Result<InferResponse> response = Convert(std::move(result));
    InferCallback done = std::move(done_);
    done(std::move(response));
  }

  Result<InferResponse> Convert(Result<HttpRawResponse> result) const {
    if (!result.ok()) return result.status();
    if (result->status != 200) return ServerError(*endpoint_, *result);
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

void Core::Infer(InferRequest request, std::span<const protocol::SharedMemoryRef> placements,
                 InferCallback done) {
  if (shutting_down_.load(std::memory_order_acquire)) {
    done(Status::Cancelled(endpoint_->name + ": the HTTP service was destroyed"));
    return;
  }
  auto x = std::make_shared<InferExchange>(endpoint_, std::move(done));
  x->method = "POST";
  x->target = ModelTarget(request.model, request.version, "infer");
  x->deadline = request.deadline;

  std::vector<protocol::InputEncoding> encodings(placements.size());
  for (size_t i = 0; i < placements.size(); ++i) {
    if (!placements[i].in_shared_memory()) continue;
    encodings[i].transport = protocol::Transport::kSharedMemory;
    encodings[i].shm = placements[i];
  }
  protocol::ResponsePlan plan;
  plan.default_transport = protocol::Transport::kBinary;
  auto body = protocol::EncodeInferRequest(request, encodings, plan);
  x->model = std::move(request.model);
  if (!body.ok()) {
    // Delivered on the I/O thread like every other outcome.
    asio::post(io_, [x, status = body.status().WithContext(endpoint_->name)]() mutable {
      x->Finish(std::move(status));
    });
    return;
  }
  x->header_length = body->header_length();
  x->json = std::move(body->json);
  x->chunks = std::move(body->binary);
  Submit(std::move(x));
}

Status Core::DeadlineStatus(const HttpExchange& x) const {
  const auto* infer = dynamic_cast<const InferExchange*>(&x);
  return Status::DeadlineExceeded(
      endpoint_->name + ": deadline exceeded" +
      (infer != nullptr ? " waiting for model " + Quoted(infer->model) : std::string()));
}

void Core::Enqueue(std::shared_ptr<HttpExchange> x) {
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

void Core::OnIdle(HttpClientConnection& connection) {
  if (stopped_) return;
  while (!queue_.empty()) {
    std::shared_ptr<HttpExchange> x = std::move(queue_.front());
    queue_.pop_front();
    if (x->finished()) continue;
    connection.Start(std::move(x));
    return;
  }
}

void Core::Expire(const std::shared_ptr<HttpExchange>& x) {
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

void Core::StopAll() {
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
// HttpTransport: RemoteTransport over the Core.

class HttpTransport final : public RemoteTransport {
 public:
  explicit HttpTransport(const RemoteOptions& options) : core_(std::make_shared<Core>(options)) {
    core_->StartThread();
  }
  ~HttpTransport() override { core_->Shutdown(); }

  const std::string& endpoint() const override { return core_->endpoint()->name; }
  void Infer(InferRequest request, std::vector<protocol::SharedMemoryRef> placements,
             InferCallback done) override {
    core_->Infer(std::move(request), placements, std::move(done));
  }
  void Shutdown() override { core_->Shutdown(); }

  bool Live(Deadline deadline) override {
    auto r = core_->Call("GET", "/v2/health/live", deadline);
    return r.ok() && r->status == 200;
  }
  bool Ready(Deadline deadline) override {
    auto r = core_->Call("GET", "/v2/health/ready", deadline);
    return r.ok() && r->status == 200;
  }
  bool ModelReady(std::string_view model, std::string_view version, Deadline deadline) override {
    auto r = core_->Call("GET", ModelTarget(model, version, "ready"), deadline);
    return r.ok() && r->status == 200;
  }
  Result<ServerMetadata> GetServerMetadata(Deadline deadline) override {
    return Parsed(core_->CallOk("GET", "/v2", deadline), ParseServerMetadataJson);
  }
  Result<ModelMetadata> GetModelMetadata(std::string_view model, std::string_view version,
                                         Deadline deadline) override {
    return Parsed(core_->CallOk("GET", ModelTarget(model, version, ""), deadline),
                  ParseModelMetadataJson);
  }
  Result<ModelConfig> GetModelConfig(std::string_view model, std::string_view version,
                                     Deadline deadline) override {
    return Parsed(core_->CallOk("GET", ModelTarget(model, version, "config"), deadline),
                  ParseModelConfigJson);
  }
  Result<RepositoryIndex> Index(Deadline deadline) override {
    return Parsed(core_->CallOk("POST", "/v2/repository/index", deadline, "{}"),
                  ParseRepositoryIndexJson);
  }
  Status Load(std::string_view model, Deadline deadline) override {
    auto r = core_->CallOk(
        "POST", "/v2/repository/models/" + EncodePathSegment(model) + "/load", deadline);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status Unload(std::string_view model, Deadline deadline) override {
    auto r = core_->CallOk(
        "POST", "/v2/repository/models/" + EncodePathSegment(model) + "/unload", deadline);
    return r.ok() ? Status::Ok() : r.status();
  }
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version,
                                                     Deadline deadline) override {
    return Parsed(core_->CallOk("GET",
                                model.empty() ? std::string("/v2/models/stats")
                                              : ModelTarget(model, version, "stats"),
                                deadline),
                  ParseStatisticsJson);
  }
  Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                    uint64_t byte_size, Deadline deadline) override {
    // Region names and keys are ours ("quiver_<pid>_<n>_<i>"): nothing to escape.
    auto r = core_->CallOk(
        "POST", "/v2/systemsharedmemory/region/" + EncodePathSegment(name) + "/register",
        deadline,
        R"({"key":")" + key + R"(","offset":0,"byte_size":)" + std::to_string(byte_size) + "}");
    return r.ok() ? Status::Ok() : r.status();
  }
  Status UnregisterSystemSharedMemory(const std::string& name, Deadline deadline) override {
    auto r = core_->CallOk(
        "POST", "/v2/systemsharedmemory/region/" + EncodePathSegment(name) + "/unregister",
        deadline);
    return r.ok() ? Status::Ok() : r.status();
  }

 private:
  // The parsed body of a successful call; a malformed one is INTERNAL.
  template <typename Parse>
  auto Parsed(Result<HttpRawResponse> r, Parse parse) const -> decltype(parse("")) {
    if (!r.ok()) return r.status();
    auto value = parse(r->text());
    if (!value.ok()) return core_->Malformed(value.status());
    return value;
  }

  std::shared_ptr<Core> core_;
};

}  // namespace

HttpService::HttpService(const RemoteOptions& options)
    : RemoteService(options, std::make_shared<HttpTransport>(options)) {}

std::shared_ptr<RemoteService> MakeHttpService(const RemoteOptions& options) {
  return std::make_shared<HttpService>(options);
}

}  // namespace quiver::client
