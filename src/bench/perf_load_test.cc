#include "bench/perf_load.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "testing/fake_inference_service.h"

namespace quiver::bench {
namespace {

using std::chrono::milliseconds;

using FakeService = quiver::testing::FakeInferenceService;

// A fake for load tests. kHold: Infer parks each call until the test completes it
// (deterministic concurrency checks). kAnswer: answers inside Infer. kUnavailable: fails
// every call, inline. Its statistics count one success (1 us) and one queue (0.1 us) per
// call.
std::shared_ptr<FakeService> MakeService(FakeService::Mode mode) {
  auto service = std::make_shared<FakeService>(mode);
  FakeService* self = service.get();  // the function is owned by the fake
  service->set_statistics_fn([self](std::string_view, std::string_view)
                                 -> Result<std::vector<ModelStatistics>> {
    const uint64_t calls = static_cast<uint64_t>(self->calls());
    ModelStatistics s;
    s.success = {calls, calls * 1000};
    s.queue = {calls, calls * 100};
    return std::vector<ModelStatistics>{s};
  });
  return service;
}

// The model of every request the fake received, in order.
std::vector<std::string> ModelsSeen(const FakeService& service) {
  std::vector<std::string> models;
  for (const InferRequest& r : service.requests()) models.push_back(r.model);
  return models;
}

std::vector<InferRequest> TwoRequests() {
  std::vector<InferRequest> r(2);
  r[0].model = "a";
  r[1].model = "b";
  return r;
}

TEST(ConcurrencyLoadTest, KeepsExactlyNOutstanding) {
  auto service = MakeService(FakeService::Mode::kHold);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(3);
  service->WaitForCalls(3);
  EXPECT_EQ(service->held(), 3u);
  // Each completion sends the next request from the callback: still 3 out.
  // (The next send may come from the starter thread still leaving its loop: wait for it.)
  for (int i = 1; i <= 10; ++i) {
    EXPECT_TRUE(service->ReleaseOne());
    service->WaitForCalls(3 + i);
    EXPECT_EQ(service->held(), 3u);
  }
  EXPECT_EQ(service->peak_outstanding(), 3);
  EXPECT_EQ(load->TakeRecords().size(), 10u);
  EXPECT_EQ(load->TakeSent(), 13u);
  // Stopping: the 3 outstanding ones are waited for, and no new ones go out.
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  while (service->held() > 0) EXPECT_TRUE(service->ReleaseOne());
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
  EXPECT_EQ(load->outstanding(), 0u);
  EXPECT_EQ(load->TakeRecords().size(), 3u);
  // Requests go round-robin over the prepared ones: 13 sends, 7 of "a" and 6 of "b".
  const auto models = ModelsSeen(*service);
  ASSERT_EQ(models.size(), 13u);
  EXPECT_EQ(std::count(models.begin(), models.end(), "a"), 7);
  EXPECT_EQ(std::count(models.begin(), models.end(), "b"), 6);
}

TEST(ConcurrencyLoadTest, ALevelCanFollowAnother) {
  auto service = MakeService(FakeService::Mode::kHold);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(1);
  service->WaitForCalls(1);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(service->ReleaseOne());
  ASSERT_TRUE(load->Stop(milliseconds(0)).ok());
  load->Start(2);
  service->WaitForCalls(3);
  EXPECT_EQ(service->held(), 2u);
  EXPECT_TRUE(service->ReleaseOne());
  service->WaitForCalls(4);
  EXPECT_EQ(service->held(), 2u);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  while (service->held() > 0) EXPECT_TRUE(service->ReleaseOne());
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
}

TEST(ConcurrencyLoadTest, EachSlotKeepsItsService) {
  // One service per slot (perf_analyzer: one connection per synchronous thread).
  auto a = MakeService(FakeService::Mode::kHold);
  auto b = MakeService(FakeService::Mode::kHold);
  auto load = ConcurrencyLoad::Create({a, b}, TwoRequests());
  load->Start(2);
  a->WaitForCalls(1);
  b->WaitForCalls(1);
  for (uint64_t i = 2; i <= 5; ++i) {
    EXPECT_TRUE(a->ReleaseOne());
    a->WaitForCalls(i);  // the completion on `a` sends the next request on `a`
  }
  EXPECT_EQ(ModelsSeen(*a).size(), 5u);
  EXPECT_EQ(ModelsSeen(*b).size(), 1u);
  EXPECT_EQ(load->Stop(milliseconds(0)).code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(a->ReleaseOne());
  EXPECT_TRUE(b->ReleaseOne());
  EXPECT_TRUE(load->Stop(milliseconds(0)).ok());
}

TEST(ConcurrencyLoadTest, InlineCompletionsDoNotRecurse) {
  // A service that answers inside Infer: each slot becomes a loop on its own thread.
  auto service = MakeService(FakeService::Mode::kAnswer);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(2);
  service->WaitForCalls(100'000);  // deep recursion would have overflowed the stack
  ASSERT_TRUE(load->Stop(milliseconds(10'000)).ok());
  EXPECT_LE(service->peak_outstanding(), 2);
  EXPECT_GE(load->TakeRecords().size(), 100'000u);
  EXPECT_TRUE(load->error().ok());
}

TEST(ConcurrencyLoadTest, ErrorsStopTheSlotAndAreKept) {
  auto service = MakeService(FakeService::Mode::kUnavailable);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  load->Start(2);
  ASSERT_TRUE(load->Stop(milliseconds(10'000)).ok());
  EXPECT_EQ(load->error().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(load->TakeRecords().empty());
  EXPECT_EQ(load->TakeSent(), 2u);  // no retry, no next request
}

TEST(RequestRateLoadTest, SendsOnScheduleWithAFakeClock) {
  auto service = MakeService(FakeService::Mode::kAnswer);
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
  auto service = MakeService(FakeService::Mode::kAnswer);
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
  auto service = MakeService(FakeService::Mode::kUnavailable);
  auto load = ConcurrencyLoad::Create({service}, TwoRequests());
  ProfileConfig config;
  config.interval = milliseconds(1);
  auto r = ProfileLevel(*load, 2, config, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quiver::bench
