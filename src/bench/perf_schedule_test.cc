#include "bench/perf_schedule.h"

#include <gtest/gtest.h>

#include <vector>

namespace quiver::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

TEST(PerfScheduleTest, ConstantRateIsEvenlySpacedWithoutDrift) {
  RequestSchedule s(3.0, Distribution::kConstant, 1);
  EXPECT_EQ(s.next(), nanoseconds(0));
  std::vector<nanoseconds> offsets;
  for (int i = 0; i < 3000; ++i) {
    s.Advance();
    offsets.push_back(s.next());
  }
  EXPECT_EQ(offsets[0], nanoseconds(333'333'333));
  EXPECT_EQ(offsets[1], nanoseconds(666'666'667));
  EXPECT_EQ(offsets[2], nanoseconds(1'000'000'000));
  EXPECT_EQ(offsets.back(), nanoseconds(1'000'000'000'000));  // request 3000 at exactly 1000 s
  EXPECT_EQ(s.index(), 3000u);
}

TEST(PerfScheduleTest, PoissonIsSeededAndHasTheRightMean) {
  RequestSchedule a(1000.0, Distribution::kPoisson, 42);
  RequestSchedule b(1000.0, Distribution::kPoisson, 42);
  RequestSchedule c(1000.0, Distribution::kPoisson, 43);
  bool differs = false;
  nanoseconds previous{0};
  for (int i = 0; i < 20000; ++i) {
    a.Advance();
    b.Advance();
    c.Advance();
    ASSERT_EQ(a.next(), b.next());
    ASSERT_GE(a.next(), previous);  // non-decreasing
    previous = a.next();
    differs = differs || a.next() != c.next();
  }
  EXPECT_TRUE(differs);
  // 20,000 gaps of mean 1 ms: 20 s, within a few standard deviations (sqrt(20000) ms).
  const double seconds = static_cast<double>(a.next().count()) * 1e-9;
  EXPECT_NEAR(seconds, 20.0, 0.6);
}

TEST(PerfPaceTest, SendsWhatIsDueAndSaysWhenToWake) {
  RequestSchedule s(1000.0, Distribution::kConstant, 1);  // one per ms
  const TimePoint start{milliseconds(100)};
  int sent = 0;
  auto send = [&](bool) { ++sent; };

  // At the start only request 0 is due.
  PaceResult r = Pace(s, start, start, milliseconds(1), send);
  EXPECT_EQ(r.sent, 1u);
  EXPECT_EQ(r.delayed, 0u);
  EXPECT_EQ(r.wake_at, start + milliseconds(1));

  // Woken a little early: nothing due yet, same wake-up time.
  r = Pace(s, start, start + std::chrono::microseconds(900), milliseconds(1), send);
  EXPECT_EQ(r.sent, 0u);
  EXPECT_EQ(r.wake_at, start + milliseconds(1));

  // Woken on time.
  r = Pace(s, start, start + milliseconds(1), milliseconds(1), send);
  EXPECT_EQ(r.sent, 1u);
  EXPECT_EQ(r.delayed, 0u);
  EXPECT_EQ(r.wake_at, start + milliseconds(2));
  EXPECT_EQ(sent, 2);
}

TEST(PerfPaceTest, CatchesUpAfterAStallAndCountsTheLateOnes) {
  RequestSchedule s(1000.0, Distribution::kConstant, 1);
  const TimePoint start{};
  std::vector<bool> delayed;
  auto send = [&](bool d) { delayed.push_back(d); };
  // The sender wakes 5.5 ms late: requests 0..5 are due; 0..4 are more than 1 ms late.
  const PaceResult r =
      Pace(s, start, start + std::chrono::microseconds(5500), milliseconds(1), send);
  EXPECT_EQ(r.sent, 6u);
  EXPECT_EQ(r.delayed, 5u);
  EXPECT_EQ(delayed, (std::vector<bool>{true, true, true, true, true, false}));
  EXPECT_EQ(r.wake_at, start + milliseconds(6));
  EXPECT_EQ(s.index(), 6u);
}

}  // namespace
}  // namespace quiver::bench
