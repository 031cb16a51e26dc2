#include "bench/perf_load.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>

namespace quiver::bench {
namespace {

using std::chrono::milliseconds;

// An InferenceService for load tests. Held mode: Infer parks each call until the test
// completes it (deterministic concurrency checks). Inline mode: answers inside Infer.
// Failing mode: answers every call with an error, inline.
class FakeService final : public InferenceService {
 public:
  enum class Mode { kHeld, kInline, kFailing };
  explicit FakeService(Mode mode) : mode_(mode) {}

  bool Live() const override { return true; }
  bool Ready() const override { return true; }
  Result<ServerMetadata> GetServerMetadata() const override { return ServerMetadata{}; }
  Result<ModelMetadata> GetModelMetadata(std::string_view, std::string_view) const override {
    return ModelMetadata{};
  }
  Result<ModelConfig> GetModelConfig(std::string_view, std::string_view) const override {
    return ModelConfig{};
  }
  bool ModelReady(std::string_view, std::string_view) const override { return true; }
  Result<RepositoryIndex> Index() override { return RepositoryIndex{}; }
  Status Load(std::string_view) override { return Status::Ok(); }
  Status Unload(std::string_view) override { return Status::Ok(); }
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view,
                                                     std::string_view) const override {
    std::lock_guard lock(mutex_);
    ModelStatistics s;
    s.success = {calls_, calls_ * 1000};
    s.queue = {calls_, calls_ * 100};
    return std::vector<ModelStatistics>{s};
  }

  void Infer(InferRequest request, InferCallback done) override {
    {
      std::lock_guard lock(mutex_);
      ++calls_;
      ++outstanding_;
      max_outstanding_ = std::max(max_outstanding_, outstanding_);
      models_seen_.push_back(request.model);
      if (mode_ == Mode::kHeld) {
        held_.push_back(std::move(done));
        cv_.notify_all();
        return;
      }
      cv_.notify_all();
    }
    Complete(std::move(done));
  }

  // Held mode: answers the oldest parked call (on this thread).
  void CompleteOne() {
    InferCallback done;
    {
      std::lock_guard lock(mutex_);
      ASSERT_FALSE(held_.empty());
      done = std::move(held_.front());
      held_.pop_front();
    }
    Complete(std::move(done));
  }

  size_t held() const {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  size_t max_outstanding() const {
    std::lock_guard lock(mutex_);
    return max_outstanding_;
  }
  std::vector<std::string> models_seen() const {
    std::lock_guard lock(mutex_);
    return models_seen_;
  }
  // Blocks until at least `n` calls arrived (an event, not a sleep).
  void WaitForCalls(uint64_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return calls_ >= n; });
  }

 private:
  void Complete(InferCallback done) {
    {
      std::lock_guard lock(mutex_);
      --outstanding_;
    }
    if (mode_ == Mode::kFailing) {
      done(Status::Unavailable("fake: server down"));
    } else {
      done(InferResponse{});
    }
  }

  const Mode mode_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<InferCallback> held_;
  uint64_t calls_ = 0;
  size_t outstanding_ = 0;
  size_t max_outstanding_ = 0;
  std::vector<std::string> models_seen_;
};

std::vector<InferRequest> TwoRequests() {
  std::vector<InferRequest> r(2);
  r[0].model = "a";
  r[1].model = "b";
  return r;
}

TEST(ConcurrencyLoadTest, KeepsExactlyNOutstanding) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kHeld);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(3);
  service->WaitForCalls(3);
  EXPECT_EQ(service->held(), 3u);
  // Each completion sends the next request from the callback: still 3 out.
  // (The next send may come from the starter thread still leaving its loop: wait for it.)
  for (int i = 1; i <= 10; ++i) {
    service->CompleteOne();
    service->WaitForCalls(3 + i);
    EXPECT_EQ(service->held(), 3u);
  }
  EXPECT_EQ(service->max_outstanding(), 3u);
  EXPECT_EQ(load->TakeRecords().size(), 10u);
  EXPECT_EQ(load->TakeSent(), 13u);
  // Stopping: the 3 outstanding ones are waited for, and no new ones go out.
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  while (service->held() > 0) service->CompleteOne();
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
  EXPECT_EQ(load->outstanding(), 0u);
  EXPECT_EQ(load->TakeRecords().size(), 3u);
  // Requests go round-robin over the prepared ones: 13 sends, 7 of "a" and 6 of "b".
  const auto models = service->models_seen();
  ASSERT_EQ(models.size(), 13u);
  EXPECT_EQ(std::count(models.begin(), models.end(), "a"), 7);
  EXPECT_EQ(std::count(models.begin(), models.end(), "b"), 6);
}

TEST(ConcurrencyLoadTest, ALevelCanFollowAnother) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kHeld);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(1);
  service->WaitForCalls(1);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  service->CompleteOne();
  ASSERT_TRUE(load->Stop(milliseconds(0)).ok());
  load->Start(2);
  service->WaitForCalls(3);
  EXPECT_EQ(service->held(), 2u);
  service->CompleteOne();
  service->WaitForCalls(4);
  EXPECT_EQ(service->held(), 2u);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  while (service->held() > 0) service->CompleteOne();
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
}

TEST(ConcurrencyLoadTest, EachSlotKeepsItsService) {
  // One service per slot (perf_analyzer: one connection per synchronous thread).
  auto a = std::make_shared<FakeService>(FakeService::Mode::kHeld);
  auto b = std::make_shared<FakeService>(FakeService::Mode::kHeld);
  auto load = ConcurrencyLoad::Create({a, b}, TwoRequests());
  load->Start(2);
  a->WaitForCalls(1);
  b->WaitForCalls(1);
  for (uint64_t i = 2; i <= 5; ++i) {
    a->CompleteOne();
    a->WaitForCalls(i);  // the completion on `a` sends the next request on `a`
  }
  EXPECT_EQ(a->models_seen().size(), 5u);
  EXPECT_EQ(b->models_seen().size(), 1u);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  a->CompleteOne();
  b->CompleteOne();
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
}

TEST(ConcurrencyLoadTest, InlineCompletionsDoNotRecurse) {
  // A service that answers inside Infer: each slot becomes a loop on its own thread.
  auto service = std::make_shared<FakeService>(FakeService::Mode::kInline);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(2);
  service->WaitForCalls(100'000);  // deep recursion would have overflowed the stack
  ASSERT_TRUE(load->Stop(milliseconds(10'000)).ok());
  EXPECT_LE(service->max_outstanding(), 2u);
  EXPECT_GE(load->TakeRecords().size(), 100'000u);
  EXPECT_TRUE(load->error().ok());
}

TEST(ConcurrencyLoadTest, ErrorsStopTheSlotAndAreKept) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kFailing);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(2);
  ASSERT_TRUE(load->Stop(milliseconds(10'000)).ok());
  EXPECT_EQ(load->error().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(load->TakeRecords().empty());
  EXPECT_EQ(load->TakeSent(), 2u);  // no retry, no next request
}

TEST(RequestRateLoadTest, SendsOnScheduleWithAFakeClock) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kInline);
  auto clock = std::make_shared<ManualClock>();
  auto load = RequestRateLoad::Create({service}, TwoRequests(), Distribution::kConstant, 1, clock);
  load->Start(1000);         // one per ms
  service->WaitForCalls(1);  // request 0, due at the start
  clock->Advance(milliseconds(10));
  service->WaitForCalls(11);  // requests 1..10, due at 1..10 ms
  ASSERT_TRUE(load->Stop(milliseconds(10'000)).ok());
  const auto records = load->TakeRecords();
  ASSERT_EQ(records.size(), 11u);
  // Sent at 10 ms: requests due at 1..8 ms were more than 1 ms late.
  const auto delayed = std::count_if(records.begin(), records.end(),
                                     [](const RequestRecord& r) { return r.delayed; });
  EXPECT_EQ(delayed, 8);
}

TEST(ProfileLevelTest, MeasuresWindowsAndServerDeltas) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kInline);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  ProfileConfig config;
  config.batch = 4;
  config.interval = milliseconds(20);
  config.max_trials = 3;
  ServerStatsFn stats = [&]() -> Result<ServerCounters> {
    auto s = service->GetStatistics("", "");
    return SumStatistics(*s);
  };
  auto r = ProfileLevel(*load, 1, config, stats);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->level, 1);
  EXPECT_GE(r->windows, 1);
  EXPECT_LE(r->windows, 3);
  EXPECT_GT(r->request_count, 0u);
  EXPECT_GT(r->infer_per_sec, 0);
  EXPECT_TRUE(r->has_server);
  EXPECT_GT(r->server.success.count, 0u);
  EXPECT_EQ(AverageNs(r->server.queue), 100u);
}

TEST(ProfileLevelTest, ARequestErrorEndsTheLevel) {
  auto service = std::make_shared<FakeService>(FakeService::Mode::kFailing);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  ProfileConfig config;
  config.interval = milliseconds(1);
  auto r = ProfileLevel(*load, 2, config, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quiver::bench
