#pragma once
// Value types exchanged through InferenceService: requests, responses, metadata and
// statistics, shaped after the KServe v2 protocol and Triton's extensions.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/histogram.h"
#include "core/status.h"
#include "core/tensor.h"

namespace quiver {

// In-process engines: how a thread that waits for its own request runs the queued requests
// itself instead of waiting for a worker thread to (see InferRequest::waiter).
class QueueHelper {
 public:
  virtual ~QueueHelper() = default;
  // Runs one batch of the held requests on the calling thread and returns true when an
  // instance is idle; otherwise hands them to the worker threads and returns false (the
  // caller then waits for its result as usual). Never blocks on other requests.
  virtual bool RunQueued() = 0;
  // Hands the held requests to the worker threads: their waiter will not run them.
  virtual void Release() = 0;
};

// Shared by a caller that will wait for its request and the engine that may hold it.
struct WaiterLink {
  std::mutex mutex;
  std::shared_ptr<QueueHelper> helper;  // guarded by mutex; set once the request is held

  std::shared_ptr<QueueHelper> Helper() {
    std::lock_guard lock(mutex);
    return helper;
  }
};

// One inference request. `version` empty means "the default version" (highest ready).
struct InferRequest {
  std::string model;
  std::string version;
  std::string id;
  std::vector<Tensor> inputs;
  // Names of outputs to return; empty means all outputs of the model.
  std::vector<std::string> requested_outputs;
  // Queue timeout in microseconds; 0 uses the model's default_queue_policy.
  uint64_t timeout_us = 0;
  // Priority level (1 = highest); 0 uses the model's default.
  uint64_t priority = 0;
  // The caller's deadline for the whole call (clients: connection, transfer, server).
  // Remote transports fail the call with DEADLINE_EXCEEDED when it passes; max() = none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // In-process engines (local://): for a model with dynamic batching, queue the request
  // for the model's worker threads even where it could run inline on the caller's thread,
  // so that a caller keeping several calls in flight from one thread (Python's
  // infer_async) gets control back at once and its calls are batched together, as calls
  // sent from inside callbacks are. Remote transports ignore it.
  bool queue_for_batching = false;
  // In-process engines: the sender will wait for this request soon (Python's
  // future.result()). The engine may then hold it in the queue without waking a worker
  // thread and set `waiter->helper`, through which the waiting thread runs it itself
  // (engine::SchedulerOptions::hold_for_waiters says when and for how long). Null: no
  // waiter. Remote transports ignore it.
  std::shared_ptr<WaiterLink> waiter;
  // Set by the network frontends: the calling thread also serves other connections, so an
  // in-process engine runs the request on it only while the model's recent executions were
  // short (engine::SchedulerOptions::inline_limit_us); longer ones go to an instance's worker
  // thread, and the frontend thread goes back to its connections.
  bool caller_serves_io = false;
  // The gateway: the tenant the frontend authenticated the caller as ("" = anonymous, auth
  // off). Set by the frontend, never taken from the request body; servers ignore it.
  std::string tenant{};
};

// Set by an engine that delivers several responses in a row (the requests of one batch)
// on the thread that runs their callbacks, and valid only while such a callback runs: work
// handed to AfterDelivery runs once the last of them was delivered. A callback that wakes a
// waiting thread does it there, so that on a busy core the woken thread (which preempts the
// deliverer at once) finds every response of the batch, not the first alone.
class DeliveryBatch {
 public:
  virtual void AfterDelivery(std::function<void()> work) = 0;

 protected:
  ~DeliveryBatch() = default;
};

struct InferResponse {
  std::string model;
  std::string version;
  std::string id;
  std::vector<Tensor> outputs;
  DeliveryBatch* delivery_batch = nullptr;  // see DeliveryBatch; null: wake at once
};

// Called exactly once per Infer, on any thread.
using InferCallback = std::function<void(Result<InferResponse>)>;

// Name, type and shape (-1 = variable; batch dimension included) of a model tensor.
struct TensorMetadata {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape shape;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

struct ServerMetadata {
  std::string name;
  std::string version;
  std::vector<std::string> extensions;
};

// One row of the repository index: a model version and its state.
struct RepositoryEntry {
  std::string name;
  std::string version;  // empty when the model has no loaded/attempted version
  std::string state;    // "READY", "UNAVAILABLE", "LOADING", "UNLOADING"
  std::string reason;   // why it is not READY, when it is not
};
using RepositoryIndex = std::vector<RepositoryEntry>;

// Count and cumulative duration, as Triton's StatisticDuration.
struct StatisticDuration {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// Per-batch-size execution statistics (Triton's InferBatchStatistics).
struct BatchStatistics {
  uint64_t batch_size = 0;
  StatisticDuration compute_input;
  StatisticDuration compute_infer;
  StatisticDuration compute_output;
};

// Per model version statistics (Triton's ModelStatistics).
struct ModelStatistics {
  std::string name;
  std::string version;
  uint64_t last_inference_ms = 0;  // milliseconds since the Unix epoch
  uint64_t inference_count = 0;    // inferences (batch elements) performed
  uint64_t execution_count = 0;    // backend executions (batches)
  StatisticDuration success;       // request durations, successful requests
  StatisticDuration fail;
  StatisticDuration queue;
  StatisticDuration compute_input;
  StatisticDuration compute_infer;
  StatisticDuration compute_output;
  std::vector<BatchStatistics> batch_stats;  // sorted by batch_size
  // Quiver's latency distributions in nanoseconds (exported as quiver_*_duration_us
  // histograms); empty where the service keeps none (e.g. a remote Triton).
  HistogramSnapshot request_histogram;        // successful requests, as `success`
  HistogramSnapshot queue_histogram;          // successful requests, as `queue`
  HistogramSnapshot compute_infer_histogram;  // one value per execution (not per request)
};

}  // namespace quiver
