#include "bench/perf_load.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>

namespace quiver::bench {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Request-rate mode: a request sent more than this after its due time counts as delayed.
constexpr auto kDelayTolerance = std::chrono::milliseconds(1);

}  // namespace

LoadGenerator::LoadGenerator(std::vector<std::shared_ptr<InferenceService>> services,
                             std::vector<InferRequest> requests)
    : services_(std::move(services)), requests_(std::move(requests)) {}

std::vector<RequestRecord> LoadGenerator::TakeRecords() {
  std::vector<RequestRecord> out;
  std::lock_guard lock(mutex_);
  out.swap(records_);
  return out;
}

Status LoadGenerator::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void LoadGenerator::Send(size_t lane, bool delayed, std::function<void(bool ok)> done) {
  const uint64_t i = next_request_.fetch_add(1, std::memory_order_relaxed);
  InferRequest request = requests_[i % requests_.size()];  // shares the tensor bytes
  outstanding_.fetch_add(1, std::memory_order_acq_rel);
  sent_.fetch_add(1, std::memory_order_relaxed);
  const int64_t send_ns = NowNs();
  services_[lane % services_.size()]->Infer(
      std::move(request), [self = shared_from_this(), send_ns, delayed,
                           done = std::move(done)](Result<InferResponse> result) {
        const int64_t end_ns = NowNs();
        const bool ok = result.ok();
        {
          std::lock_guard lock(self->mutex_);
          if (ok) {
            self->records_.push_back({send_ns, end_ns, delayed});
          } else if (self->error_.ok()) {
            self->error_ = result.status();
          }
        }
        done(ok);  // may send the next request: outstanding never dips to 0 in between
        if (self->outstanding_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard lock(self->mutex_);
          self->idle_cv_.notify_all();
        }
      });
}

Status LoadGenerator::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const bool idle = idle_cv_.wait_for(
      lock, timeout, [this] { return outstanding_.load(std::memory_order_acquire) == 0; });
  if (idle) return Status::Ok();
  return Status::DeadlineExceeded(std::to_string(outstanding()) + " requests still outstanding " +
                                  std::to_string(timeout.count()) + " ms after the load stopped");
}

// ---- ConcurrencyLoad ----

std::shared_ptr<ConcurrencyLoad> ConcurrencyLoad::Create(
    std::vector<std::shared_ptr<InferenceService>> services, std::vector<InferRequest> requests) {
  return std::make_shared<ConcurrencyLoad>(std::move(services), std::move(requests));
}

void ConcurrencyLoad::Start(double concurrency) {
  const auto n = static_cast<size_t>(std::max(1.0, concurrency));
  stopping_.store(false, std::memory_order_release);
  // Slots outlive levels: a completion of the previous level may still be leaving one.
  while (slots_.size() < n) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->lane = slots_.size() - 1;
  }
  for (size_t i = 0; i < n; ++i) {
    starters_.emplace_back([this, slot = slots_[i].get()] { Kick(*slot); });
  }
}

void ConcurrencyLoad::Kick(Slot& slot) {
  if (slot.pending.fetch_add(1, std::memory_order_acq_rel) > 0) return;  // its loop sends it
  do {
    Send(slot.lane, /*delayed=*/false, [this, &slot](bool ok) {
      if (ok && !stopping_.load(std::memory_order_acquire)) Kick(slot);
    });
  } while (slot.pending.fetch_sub(1, std::memory_order_acq_rel) > 1);
}

Status ConcurrencyLoad::Stop(std::chrono::milliseconds timeout) {
  stopping_.store(true, std::memory_order_release);
  for (std::thread& t : starters_) t.join();
  starters_.clear();
  return WaitIdle(timeout);
}

ConcurrencyLoad::~ConcurrencyLoad() {
  stopping_.store(true, std::memory_order_release);
  for (std::thread& t : starters_) {
    // The last reference may go in a completion running on a starter thread.
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else {
      t.join();
    }
  }
}

// ---- RequestRateLoad ----

std::shared_ptr<RequestRateLoad> RequestRateLoad::Create(
    std::vector<std::shared_ptr<InferenceService>> services, std::vector<InferRequest> requests,
    Distribution distribution, uint64_t seed, std::shared_ptr<Clock> clock) {
  return std::make_shared<RequestRateLoad>(std::move(services), std::move(requests), distribution,
                                           seed, std::move(clock));
}

RequestRateLoad::~RequestRateLoad() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // the last reference went in a completion on the sender thread
  } else {
    thread_.join();
  }
}

void RequestRateLoad::Start(double rate) {
  {
    std::lock_guard lock(mutex_);
    stop_ = false;
  }
  thread_ = std::thread([this, rate] { Run(rate); });
}

void RequestRateLoad::Run(double rate) {
  RequestSchedule schedule(rate, distribution_, seed_);
  const auto start = clock_->Now();
  size_t lane = 0;
  std::unique_lock lock(mutex_);
  while (!stop_) {
    const PaceResult r = Pace(schedule, start, clock_->Now(), kDelayTolerance,
                              [&](bool delayed) { Send(lane++, delayed, [](bool) {}); });
    if (stop_) break;
    clock_->WaitUntil(cv_, lock, r.wake_at);
  }
}

Status RequestRateLoad::Stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return WaitIdle(timeout);
}

// ---- ProfileLevel ----

Result<LevelResult> ProfileLevel(LoadGenerator& load, double level, const ProfileConfig& config,
                                 const ServerStatsFn& stats) {
  auto server_now = [&]() -> std::optional<ServerCounters> {
    if (!stats) return std::nullopt;
    auto c = stats();
    if (!c.ok()) return std::nullopt;
    return *c;
  };
  load.TakeRecords();  // completions of an earlier level
  std::optional<ServerCounters> server_start = server_now();
  int64_t window_start = NowNs();
  load.TakeSent();
  load.Start(level);

  std::vector<RequestRecord> pending;
  std::deque<Window> windows;
  std::vector<WindowPoint> points;
  bool stable = false;
  int trials = 0;
  Status failure;
  while (trials < config.max_trials) {
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(
        std::chrono::nanoseconds(window_start) + config.interval));
    Window w;
    w.start_ns = window_start;
    w.end_ns = NowNs();
    std::optional<ServerCounters> server_end = server_now();
    std::vector<RequestRecord> fresh = load.TakeRecords();
    pending.insert(pending.end(), fresh.begin(), fresh.end());
    AssignRecords(pending, w);
    w.sent = load.TakeSent();
    if (server_start && server_end) {
      w.server = Delta(*server_end, *server_start);
      w.has_server = true;
    }
    ++trials;
    failure = load.error();
    if (!failure.ok()) break;
    points.push_back(PointOf(w, config.batch, config.percentile));
    windows.push_back(std::move(w));
    if (windows.size() > 3) windows.pop_front();
    if (IsStable(points, config.stability)) {
      stable = true;
      break;
    }
    window_start = windows.back().end_ns;
    server_start = server_end;
  }
  const Status stopped = load.Stop(config.drain_timeout);
  if (!failure.ok()) return failure;
  if (!stopped.ok()) return stopped;
  const std::vector<Window> last(windows.begin(), windows.end());
  LevelResult r = MergeWindows(last, level, config.batch, config.percentile);
  r.stable = stable;
  r.windows = trials;
  return r;
}

}  // namespace quiver::bench
