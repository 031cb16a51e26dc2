#pragma once
// The load of `quiver perf` and the measurement loop over it.
//
// ConcurrencyLoad keeps exactly N requests outstanding: each completion sends the next
// request from the completing callback (no extra thread hand-off), so the server always
// sees N in flight, as with perf_analyzer's concurrency mode (whose default synchronous
// mode runs N threads that each send, wait and send again). RequestRateLoad sends on a
// timetable (perf_schedule.h) from one thread, whatever the completions do.
//
// Neither retries: a failed request stops the measurement with its error (a load generator
// that retried silently would report a server that fails as a fast one).
//
// Both record every completion (send and end time, steady clock) for the profiler, which
// cuts contiguous windows, checks stability and merges the stable windows (perf_stats.h).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/perf_schedule.h"
#include "bench/perf_stats.h"
#include "core/clock.h"
#include "service/inference_service.h"

namespace quiver::bench {

// Thread-safe. Create with std::make_shared (callbacks keep the generator alive).
class LoadGenerator : public std::enable_shared_from_this<LoadGenerator> {
 public:
  virtual ~LoadGenerator() = default;

  // Starts sending at `level` (a concurrency or a rate). Not while running.
  virtual void Start(double level) = 0;
  // Stops sending and waits up to `timeout` for the outstanding requests (their
  // completions are still recorded). DEADLINE_EXCEEDED when some are still out.
  virtual Status Stop(std::chrono::milliseconds timeout) = 0;

  // Completions recorded since the last call.
  std::vector<RequestRecord> TakeRecords();
  // Requests sent since the last call.
  uint64_t TakeSent() { return sent_.exchange(0, std::memory_order_relaxed); }
  // The first error a request returned; OK while none.
  Status error() const;
  // Requests sent but not completed.
  uint64_t outstanding() const { return outstanding_.load(std::memory_order_acquire); }

 protected:
  // `services`: at least one; requests are spread over them (see Send).
  LoadGenerator(std::vector<std::shared_ptr<InferenceService>> services,
                std::vector<InferRequest> requests);

  // Sends the next request (round-robin over the prepared ones) through
  // services[lane % services.size()]; `done` runs after the completion was recorded, with
  // whether it succeeded.
  void Send(size_t lane, bool delayed, std::function<void(bool ok)> done);
  // Blocks until nothing is outstanding or `timeout` passes.
  Status WaitIdle(std::chrono::milliseconds timeout);

 private:
  const std::vector<std::shared_ptr<InferenceService>> services_;
  const std::vector<InferRequest> requests_;
  std::atomic<uint64_t> next_request_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> outstanding_{0};

  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::vector<RequestRecord> records_;  // guarded by mutex_
  Status error_;                        // guarded by mutex_
};

class ConcurrencyLoad final : public LoadGenerator {
 public:
  // Slot i (one of the N outstanding requests) always uses services[i % size]: with one
  // single-connection HTTP service per slot, each slot has its own connection and I/O
  // thread, as each of perf_analyzer's synchronous threads has its own connection.
  static std::shared_ptr<ConcurrencyLoad> Create(
      std::vector<std::shared_ptr<InferenceService>> services, std::vector<InferRequest> requests);
  ~ConcurrencyLoad() override;
  void Start(double concurrency) override;
  Status Stop(std::chrono::milliseconds timeout) override;

  ConcurrencyLoad(std::vector<std::shared_ptr<InferenceService>> services,
                  std::vector<InferRequest> requests)
      : LoadGenerator(std::move(services), std::move(requests)) {}

 private:
  struct Slot {
    size_t lane = 0;  // which service
    // Pending sends: a completion that arrives while this slot's loop runs (inline
    // completion, or a transport thread racing the loop) is sent by that loop instead of
    // recursing. At most 2: a slot has one request out at a time.
    std::atomic<int> pending{0};
  };
  void Kick(Slot& slot);

  std::vector<std::unique_ptr<Slot>> slots_;  // grown in Start, before any send
  // One thread per slot sends its first request and exits at once over a remote
  // transport; over a service that completes inline it becomes that slot's synchronous
  // loop until Stop (so Start never blocks).
  std::vector<std::thread> starters_;
  std::atomic<bool> stopping_{false};
};

class RequestRateLoad final : public LoadGenerator {
 public:
  // Requests go round-robin over `services`.
  static std::shared_ptr<RequestRateLoad> Create(
      std::vector<std::shared_ptr<InferenceService>> services, std::vector<InferRequest> requests,
      Distribution distribution, uint64_t seed, std::shared_ptr<Clock> clock = Clock::System());
  ~RequestRateLoad() override;
  void Start(double rate) override;
  Status Stop(std::chrono::milliseconds timeout) override;

  RequestRateLoad(std::vector<std::shared_ptr<InferenceService>> services,
                  std::vector<InferRequest> requests, Distribution distribution, uint64_t seed,
                  std::shared_ptr<Clock> clock)
      : LoadGenerator(std::move(services), std::move(requests)),
        distribution_(distribution),
        seed_(seed),
        clock_(std::move(clock)) {}

 private:
  void Run(double rate);

  const Distribution distribution_;
  const uint64_t seed_;
  const std::shared_ptr<Clock> clock_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mutex_
  std::thread thread_;
};

// How a level is measured.
struct ProfileConfig {
  int64_t batch = 1;
  std::chrono::milliseconds interval{5000};
  double stability = 0.10;
  int max_trials = 10;
  int percentile = -1;
  std::chrono::milliseconds drain_timeout{30000};
};

// The server's cumulative counters for the model; an error means "not available".
using ServerStatsFn = std::function<Result<ServerCounters>()>;

// Runs `load` at `level` in contiguous windows of config.interval until the last 3 are
// stable or config.max_trials windows have passed; merges the last (up to) 3 windows.
// `stats` may be empty (no server statistics). Returns the first request error, if any.
Result<LevelResult> ProfileLevel(LoadGenerator& load, double level, const ProfileConfig& config,
                                 const ServerStatsFn& stats);

}  // namespace quiver::bench
