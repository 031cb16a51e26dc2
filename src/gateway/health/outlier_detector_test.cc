#include "gateway/health/outlier_detector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

namespace quiver::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

class OutlierDetectorTest : public ::testing::Test {
 protected:
  static OutlierOptions Options() {
    OutlierOptions o;
    o.consecutive_failures = 3;
    o.latency_factor = 3.0;
    o.min_samples = 5;
    o.min_peers = 2;
    o.latency_floor = 5ms;
    o.ewma_alpha = 0.5;
    o.base_ejection = 10s;
    o.max_ejection = 60s;
    o.backoff_reset_after = 300s;
    o.max_ejected_fraction = 0.5;
    return o;
  }
  void Fail(std::string_view u, int n) {
    for (int i = 0; i < n; ++i) (void)detector_.Report(u, "m", false, 0ms);
  }
  void Succeed(std::string_view u, int n, Clock::Duration latency = 10ms,
               std::string_view model = "m") {
    for (int i = 0; i < n; ++i) (void)detector_.Report(u, model, true, latency);
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  OutlierDetector detector_{clock_, Options()};

  void SetUp() override {
    for (const char* u : {"a", "b", "c", "d"}) detector_.Add(u);
  }
};

TEST_F(OutlierDetectorTest, EjectsAfterConsecutiveFailuresOnly) {
  Fail("a", 2);
  Succeed("a", 1);  // breaks the series
  Fail("a", 2);
  EXPECT_TRUE(detector_.Available("a"));
  EXPECT_TRUE(detector_.Report("a", "m", false, 0ms));
  EXPECT_FALSE(detector_.Available("a"));
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kEjected);
  EXPECT_EQ(detector_.LastEjectionReason("a"), EjectionReason::kConsecutiveFailures);
  EXPECT_TRUE(detector_.Available("b"));
  EXPECT_TRUE(detector_.Available("never-seen"));
}

TEST_F(OutlierDetectorTest, IsReadmittedAfterTheEjectionTimeAndASuccessfulProbe) {
  Fail("a", 3);
  clock_->Advance(9s);
  EXPECT_THAT(detector_.ProbesDue(), IsEmpty());
  detector_.ReportProbe("a", true);  // too early: ignored
  EXPECT_FALSE(detector_.Available("a"));

  clock_->Advance(1s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kProbing);
  EXPECT_FALSE(detector_.Available("a"));  // no traffic before the probe says so
  EXPECT_THAT(detector_.ProbesDue(), ElementsAre("a"));
  detector_.ReportProbe("a", true);
  EXPECT_TRUE(detector_.Available("a"));
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kAvailable);
  EXPECT_THAT(detector_.ProbesDue(), IsEmpty());
}

TEST_F(OutlierDetectorTest, EjectionTimeBacksOffExponentiallyUpToTheMaximum) {
  Fail("a", 3);  // 10 s
  clock_->Advance(10s);
  detector_.ReportProbe("a", false);  // 20 s
  clock_->Advance(19s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kEjected);
  clock_->Advance(1s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kProbing);
  detector_.ReportProbe("a", false);  // 40 s
  clock_->Advance(40s);
  detector_.ReportProbe("a", false);  // 80 s, capped at 60 s
  clock_->Advance(59s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kEjected);
  clock_->Advance(1s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kProbing);
  detector_.ReportProbe("a", true);
  EXPECT_TRUE(detector_.Available("a"));

  // Ejected again soon after: the series goes on (60 s, the cap).
  clock_->Advance(1s);
  Fail("a", 3);
  clock_->Advance(59s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kEjected);
  clock_->Advance(1s);
  detector_.ReportProbe("a", true);

  // After a long healthy spell the series starts again at the base time.
  clock_->Advance(300s);
  Fail("a", 3);
  clock_->Advance(10s);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kProbing);
}

TEST_F(OutlierDetectorTest, ReportsAboutAnEjectedUpstreamChangeNothing) {
  Fail("a", 3);
  clock_->Advance(10s);
  // Requests sent before the ejection come back late and fail: the probe decides, not they.
  EXPECT_FALSE(detector_.Report("a", "m", false, 0ms));
  Succeed("a", 10);
  EXPECT_EQ(detector_.Health("a"), UpstreamHealth::kProbing);
}

TEST_F(OutlierDetectorTest, EjectsAnUpstreamFarSlowerThanItsPeers) {
  Succeed("a", 5, 10ms);
  Succeed("b", 5, 12ms);
  Succeed("c", 5, 11ms);
  Succeed("d", 4, 100ms);
  EXPECT_TRUE(detector_.Available("d"));  // 4 samples: not yet judged
  EXPECT_TRUE(detector_.Report("d", "m", true, 100ms));
  EXPECT_FALSE(detector_.Available("d"));
  EXPECT_EQ(detector_.LastEjectionReason("d"), EjectionReason::kLatency);
}

TEST_F(OutlierDetectorTest, LatencyIsComparedPerModel) {
  // d is slow on a model that is slow everywhere, fast on another: not an outlier.
  Succeed("a", 5, 100ms, "big");
  Succeed("b", 5, 110ms, "big");
  Succeed("a", 5, 1ms, "small");
  Succeed("b", 5, 1ms, "small");
  Succeed("d", 10, 120ms, "big");
  EXPECT_TRUE(detector_.Available("d"));
}

TEST_F(OutlierDetectorTest, NoLatencyEjectionWithoutEnoughPeersOrBelowTheFloor) {
  Succeed("a", 5, 10ms);
  Succeed("d", 10, 100ms);  // one peer only (min_peers 2)
  EXPECT_TRUE(detector_.Available("d"));

  Succeed("a", 5, 1ms, "n");
  Succeed("b", 5, 1ms, "n");
  Succeed("c", 5, 1ms, "n");
  Succeed("d", 10, 4ms, "n");  // 4x the median, but under the 5 ms floor
  EXPECT_TRUE(detector_.Available("d"));
}

TEST_F(OutlierDetectorTest, NeverEjectsMoreThanTheAllowedFraction) {
  // 4 upstreams, at most half out at once.
  Fail("a", 3);
  Fail("b", 3);
  Fail("c", 3);
  EXPECT_FALSE(detector_.Available("a"));
  EXPECT_FALSE(detector_.Available("b"));
  EXPECT_TRUE(detector_.Available("c"));
  // Once one is back, the next failure of c ejects it.
  clock_->Advance(10s);
  detector_.ReportProbe("a", true);
  Fail("c", 1);
  EXPECT_FALSE(detector_.Available("c"));
}

TEST_F(OutlierDetectorTest, AtLeastOneUpstreamMayBeEjected) {
  OutlierDetector single(clock_, Options());
  single.Add("only");
  for (int i = 0; i < 3; ++i) (void)single.Report("only", "m", false, 0ms);
  EXPECT_FALSE(single.Available("only"));
}

TEST_F(OutlierDetectorTest, RemoveForgetsTheHistory) {
  Fail("a", 3);
  detector_.Remove("a");
  EXPECT_TRUE(detector_.Available("a"));
  Fail("a", 2);
  EXPECT_TRUE(detector_.Available("a"));
}

TEST_F(OutlierDetectorTest, ConcurrentReportsProbesAndQueries) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string u(1, static_cast<char>('a' + t));
      for (int i = 0; i < 2000; ++i) {
        (void)detector_.Report(u, "m", i % 3 != 0, std::chrono::milliseconds(1 + i % 5));
        (void)detector_.Available(u);
        for (const std::string& p : detector_.ProbesDue()) detector_.ReportProbe(p, true);
        if (t == 0 && i % 100 == 0) clock_->Advance(1s);
      }
    });
  }
  for (auto& t : threads) t.join();
  clock_->Advance(120s);
  for (const std::string& p : detector_.ProbesDue()) detector_.ReportProbe(p, true);
  for (const char* u : {"a", "b", "c", "d"}) EXPECT_TRUE(detector_.Available(u)) << u;
}

}  // namespace
}  // namespace quiver::gateway
