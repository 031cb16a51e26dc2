#include "gateway/tenants/tenant_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace quiver::gateway {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

TenantOptions Tenant(std::string name, double weight = 1, size_t max_in_flight = 0, double rate = 0,
                     double burst = 0) {
  TenantOptions t;
  t.name = std::move(name);
  t.token = t.name + "-token";
  t.weight = weight;
  t.max_in_flight = max_in_flight;
  t.rate = rate;
  t.burst = burst;
  return t;
}

// Records what the scheduler did with each request: started (in order) or rejected.
class Recorder {
 public:
  explicit Recorder(RequestScheduler& s) : s_(s) {}
  void Submit(const std::string& tenant) {
    s_.Submit(
        tenant, "m", [this, tenant] { started.push_back(tenant); },
        [this, tenant](Status st) {
          rejected.push_back({tenant, st});
        });
  }
  // Finishes the oldest started request that has not finished yet.
  void FinishOldest() {
    ASSERT_LT(finished_, started.size());
    s_.Finished(started[finished_++]);
  }
  size_t running() const { return started.size() - finished_; }

  std::vector<std::string> started;
  std::vector<std::pair<std::string, Status>> rejected;

 private:
  RequestScheduler& s_;
  size_t finished_ = 0;
};

TenantStats StatsOf(const RequestScheduler& s, const std::string& tenant) {
  for (const auto& st : s.Stats()) {
    if (st.tenant == tenant) return st;
  }
  ADD_FAILURE() << "no stats for " << tenant;
  return {};
}

class TenantSchedulerTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
};

TEST_F(TenantSchedulerTest, UnboundedCapacityStartsAtOnce) {
  auto s = MakeTenantScheduler({Tenant("alice")}, clock_);
  Recorder r(*s);
  for (int i = 0; i < 5; ++i) r.Submit("alice");
  EXPECT_EQ(r.started.size(), 5u);
  EXPECT_EQ(StatsOf(*s, "alice").admitted, 5u);
  EXPECT_EQ(StatsOf(*s, "alice").in_flight, 5u);
  for (int i = 0; i < 5; ++i) r.FinishOldest();
  EXPECT_EQ(StatsOf(*s, "alice").in_flight, 0u);
}

TEST_F(TenantSchedulerTest, InFlightLimitRejectsNamingTenantAndLimit) {
  auto s = MakeTenantScheduler({Tenant("alice", 1, /*max_in_flight=*/2)}, clock_);
  Recorder r(*s);
  r.Submit("alice");
  r.Submit("alice");
  r.Submit("alice");
  EXPECT_EQ(r.started.size(), 2u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].second.code(), StatusCode::kTooManyRequests);
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("'alice'"));
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("2 requests in flight"));
  r.FinishOldest();
  r.Submit("alice");  // room again
  EXPECT_EQ(r.started.size(), 3u);
  EXPECT_EQ(StatsOf(*s, "alice").in_flight_limited, 1u);
  EXPECT_EQ(StatsOf(*s, "alice").admitted, 3u);
}

TEST_F(TenantSchedulerTest, QueuedRequestsCountTowardsMaxInFlight) {
  auto s = MakeTenantScheduler({Tenant("alice", 1, 2)}, clock_);
  s->SetCapacity(1);
  Recorder r(*s);
  r.Submit("alice");  // starts
  r.Submit("alice");  // queues
  r.Submit("alice");  // over the limit: 1 in flight + 1 queued
  EXPECT_EQ(r.started.size(), 1u);
  EXPECT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(StatsOf(*s, "alice").queued, 1u);
}

TEST_F(TenantSchedulerTest, RateLimitFollowsTheTokenBucketOnTheClock) {
  auto s =
      MakeTenantScheduler({Tenant("alice", 1, 0, /*rate=*/10, /*burst=*/2), Tenant("bob")}, clock_);
  Recorder r(*s);
  r.Submit("alice");
  r.Submit("alice");
  r.Submit("alice");  // the burst of 2 is spent
  r.Submit("bob");    // other tenants are not affected
  EXPECT_EQ(r.started, (std::vector<std::string>{"alice", "alice", "bob"}));
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].second.code(), StatusCode::kTooManyRequests);
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("'alice'"));
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("10 requests/s"));

  clock_->Advance(milliseconds(100));  // one token back
  r.Submit("alice");
  r.Submit("alice");
  EXPECT_EQ(r.started.size(), 4u);
  EXPECT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(StatsOf(*s, "alice").rate_limited, 2u);
  EXPECT_EQ(StatsOf(*s, "alice").admitted, 3u);
}

TEST_F(TenantSchedulerTest, UnknownTenantIsServedWithoutLimits) {
  auto s = MakeTenantScheduler({Tenant("alice", 1, 1)}, clock_);
  Recorder r(*s);
  for (int i = 0; i < 3; ++i) r.Submit("");
  EXPECT_EQ(r.started.size(), 3u);
  EXPECT_TRUE(r.rejected.empty());
  EXPECT_EQ(StatsOf(*s, "").admitted, 3u);
}

TEST_F(TenantSchedulerTest, CapacityQueuesAndFinishedStartsTheNext) {
  auto s = MakeTenantScheduler({Tenant("alice")}, clock_);
  s->SetCapacity(2);
  Recorder r(*s);
  for (int i = 0; i < 4; ++i) r.Submit("alice");
  EXPECT_EQ(r.started.size(), 2u);
  EXPECT_EQ(StatsOf(*s, "alice").queued, 2u);
  EXPECT_EQ(StatsOf(*s, "alice").admitted, 4u);

  clock_->Advance(milliseconds(5));
  r.FinishOldest();
  EXPECT_EQ(r.started.size(), 3u);
  EXPECT_EQ(StatsOf(*s, "alice").queue_ns_total, 5'000'000u);

  s->SetCapacity(0);  // unbounded: the rest start on this thread
  EXPECT_EQ(r.started.size(), 4u);
  EXPECT_EQ(StatsOf(*s, "alice").queued, 0u);
  EXPECT_EQ(StatsOf(*s, "alice").queue_ns_total, 10'000'000u);
}

TEST_F(TenantSchedulerTest, RaisingCapacityStartsQueuedRequests) {
  auto s = MakeTenantScheduler({}, clock_);
  s->SetCapacity(1);
  Recorder r(*s);
  for (int i = 0; i < 5; ++i) r.Submit("");
  EXPECT_EQ(r.started.size(), 1u);
  s->SetCapacity(3);
  EXPECT_EQ(r.started.size(), 3u);
  s->SetCapacity(1);  // lowering stops nothing, it only holds new starts
  r.FinishOldest();
  EXPECT_EQ(r.started.size(), 3u);
  r.FinishOldest();
  r.FinishOldest();
  EXPECT_EQ(r.started.size(), 4u);
}

TEST_F(TenantSchedulerTest, FullQueueRejects) {
  auto s =
      MakeTenantScheduler({Tenant("alice"), Tenant("bob")}, clock_, {.max_queued_per_tenant = 2});
  s->SetCapacity(1);
  Recorder r(*s);
  for (int i = 0; i < 4; ++i) r.Submit("alice");  // 1 runs, 2 queue, 1 refused
  r.Submit("bob");                                // bob's own queue has room
  EXPECT_EQ(r.started.size(), 1u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].first, "alice");
  EXPECT_EQ(r.rejected[0].second.code(), StatusCode::kTooManyRequests);
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("queue full"));
  EXPECT_THAT(r.rejected[0].second.message(), HasSubstr("'alice'"));
  EXPECT_EQ(StatsOf(*s, "alice").queue_rejected, 1u);
  EXPECT_EQ(StatsOf(*s, "alice").admitted, 3u);
  EXPECT_EQ(StatsOf(*s, "bob").queued, 1u);
}

TEST_F(TenantSchedulerTest, RejectAllFailsQueuedRequestsOnly) {
  auto s = MakeTenantScheduler({Tenant("alice"), Tenant("bob")}, clock_);
  s->SetCapacity(1);
  Recorder r(*s);
  r.Submit("alice");
  r.Submit("alice");
  r.Submit("bob");
  s->RejectAll(Status::Unavailable("shutting down"));
  EXPECT_EQ(r.started.size(), 1u);
  ASSERT_EQ(r.rejected.size(), 2u);
  for (const auto& [tenant, st] : r.rejected) {
    EXPECT_EQ(st, Status::Unavailable("shutting down"));
  }
  EXPECT_EQ(StatsOf(*s, "alice").queued, 0u);
  EXPECT_EQ(StatsOf(*s, "alice").in_flight, 1u);
  r.FinishOldest();  // the running one ends normally and starts nothing
  EXPECT_EQ(r.started.size(), 1u);
  r.Submit("bob");
  EXPECT_EQ(r.started.size(), 2u);
}

// Capacity 2 finishes 2 requests per round; greedy sends 10 per round, polite 1 (half the
// capacity). Queues are unbounded here, so only the order of service decides: a FIFO would
// give polite 1/11 of the throughput and an ever longer wait; WFQ gives it all it asks.
TEST_F(TenantSchedulerTest, GreedyTenantCannotStarveAPoliteOne) {
  auto s = MakeTenantScheduler({Tenant("greedy"), Tenant("polite")}, clock_,
                               {.max_queued_per_tenant = 1'000'000});
  s->SetCapacity(2);
  Recorder r(*s);
  const size_t warmup = 20, rounds = 200;
  size_t mark = 0, polite_most_queued = 0;
  for (size_t round = 0; round < warmup + rounds; ++round) {
    if (round == warmup) mark = r.started.size();
    for (int i = 0; i < 10; ++i) r.Submit("greedy");
    r.Submit("polite");
    polite_most_queued = std::max(polite_most_queued, StatsOf(*s, "polite").queued);
    r.FinishOldest();
    r.FinishOldest();
  }
  std::map<std::string, size_t> served;
  for (size_t i = mark; i < r.started.size(); ++i) ++served[r.started[i]];
  const double polite_share =
      static_cast<double>(served["polite"]) / static_cast<double>(r.started.size() - mark);
  EXPECT_GE(polite_share, 0.40) << served["polite"] << " of " << r.started.size() - mark;
  EXPECT_LE(polite_most_queued, 1u);               // polite never waits behind greedy's backlog
  EXPECT_GT(StatsOf(*s, "greedy").queued, 1000u);  // greedy's excess waits in its own queue
  EXPECT_TRUE(r.rejected.empty());
}

TEST_F(TenantSchedulerTest, BackloggedTenantsShareByWeight) {
  auto s = MakeTenantScheduler({Tenant("heavy", 2), Tenant("light", 1)}, clock_,
                               {.max_queued_per_tenant = 1'000'000});
  s->SetCapacity(3);
  Recorder r(*s);
  size_t mark = 0;
  for (int round = 0; round < 320; ++round) {
    if (round == 20) mark = r.started.size();
    for (int i = 0; i < 5; ++i) {
      r.Submit("light");  // light first: arrival order must not decide
      r.Submit("heavy");
    }
    for (int i = 0; i < 3; ++i) r.FinishOldest();
  }
  std::map<std::string, size_t> served;
  for (size_t i = mark; i < r.started.size(); ++i) ++served[r.started[i]];
  ASSERT_GT(served["light"], 0u);
  const double ratio = static_cast<double>(served["heavy"]) / static_cast<double>(served["light"]);
  EXPECT_NEAR(ratio, 2.0, 0.1) << served["heavy"] << " : " << served["light"];
}

TEST_F(TenantSchedulerTest, AnIdleTenantBanksNoCredit) {
  auto s = MakeTenantScheduler({Tenant("a"), Tenant("b")}, clock_);
  s->SetCapacity(1);
  Recorder r(*s);
  for (int i = 0; i < 100; ++i) r.Submit("a");
  for (int i = 0; i < 50; ++i) r.FinishOldest();  // a alone for 50 turns; b idle
  for (int i = 0; i < 10; ++i) r.Submit("b");
  const size_t mark = r.started.size();
  for (int i = 0; i < 10; ++i) r.FinishOldest();
  size_t b = 0;
  for (size_t i = mark; i < r.started.size(); ++i) b += r.started[i] == "b" ? 1 : 0;
  EXPECT_EQ(r.started.size() - mark, 10u);
  EXPECT_GE(b, 4u);  // b gets its half now...
  EXPECT_LE(b, 6u);  // ...not the 10 turns it "missed"
}

TEST_F(TenantSchedulerTest, CallbacksRunOutsideTheLock) {
  auto s = MakeTenantScheduler({Tenant("alice")}, clock_);
  int nested_started = 0;
  size_t tenants_seen = 0;
  // Re-entering a scheduler that held its (non-recursive) mutex would deadlock here.
  s->Submit(
      "alice", "m",
      [&] {
        tenants_seen = s->Stats().size();
        s->Submit(
            "alice", "m", [&] { ++nested_started; }, [](Status) {});
      },
      [](Status) { ADD_FAILURE() << "rejected"; });
  EXPECT_EQ(nested_started, 1);
  EXPECT_EQ(tenants_seen, 1u);
  EXPECT_EQ(StatsOf(*s, "alice").in_flight, 2u);

  // A reject callback may call in as well.
  auto limited = MakeTenantScheduler({Tenant("bob", 1, 1)}, clock_);
  Recorder r(*limited);
  r.Submit("bob");
  int rejects = 0;
  limited->Submit(
      "bob", "m", [] {},
      [&](Status) {
        ++rejects;
        r.FinishOldest();  // re-enters Finished from inside the reject
        r.Submit("bob");
      });
  EXPECT_EQ(rejects, 1);
  EXPECT_EQ(r.started.size(), 2u);
}

// A start that fails at once calls Finished, which starts the next queued request: with
// 100k queued this must be a loop, not a 100k-deep recursion.
TEST_F(TenantSchedulerTest, StartsThatFinishInlineDoNotRecurse) {
  auto s = MakeTenantScheduler({}, clock_, {.max_queued_per_tenant = 200'000});
  s->SetCapacity(1);
  int blocker_started = 0;
  s->Submit(
      "", "m", [&] { ++blocker_started; }, [](Status) {});
  int started = 0;
  for (int i = 0; i < 100'000; ++i) {
    s->Submit(
        "", "m",
        [&] {
          ++started;
          s->Finished("");
        },
        [](Status) {});
  }
  EXPECT_EQ(started, 0);
  s->Finished("");  // the blocker ends: the whole queue drains on this thread
  EXPECT_EQ(blocker_started, 1);
  EXPECT_EQ(started, 100'000);
  EXPECT_EQ(StatsOf(*s, "").in_flight, 0u);
}

TEST_F(TenantSchedulerTest, ConcurrentSubmitAndFinishKeepCountsExact) {
  auto s = MakeTenantScheduler({Tenant("a"), Tenant("b", 2)}, Clock::System(),
                               {.max_queued_per_tenant = 1'000'000});
  s->SetCapacity(4);
  std::atomic<int> started{0}, rejected{0};
  // Each start finishes on the spot, from whichever thread runs it.
  auto submit = [&](const std::string& tenant) {
    s->Submit(
        tenant, "m",
        [&, tenant] {
          ++started;
          s->Finished(tenant);
        },
        [&](Status) { ++rejected; });
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) submit(t % 2 ? "a" : "b");
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(started.load(), 8000);
  EXPECT_EQ(rejected.load(), 0);
  EXPECT_EQ(StatsOf(*s, "a").admitted + StatsOf(*s, "b").admitted, 8000u);
  EXPECT_EQ(StatsOf(*s, "a").in_flight + StatsOf(*s, "b").in_flight, 0u);
}

TEST(PassThroughSchedulerTest, StartsEverythingAtOnce) {
  auto s = MakePassThroughScheduler();
  s->SetCapacity(1);
  Recorder r(*s);
  for (int i = 0; i < 3; ++i) r.Submit("");
  EXPECT_EQ(r.started.size(), 3u);
  r.FinishOldest();
  EXPECT_TRUE(s->Stats().empty());
}

}  // namespace
}  // namespace quiver::gateway
