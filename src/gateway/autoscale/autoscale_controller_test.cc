#include "gateway/autoscale/autoscale_controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <utility>

namespace quiver::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using namespace std::chrono_literals;

// Records ScaleTo calls and obeys them at once (unless told to fail).
class FakeProvider : public ReplicaProvider {
 public:
  size_t Replicas(std::string_view model) const override {
    std::lock_guard guard(mutex_);
    auto it = replicas_.find(model);
    return it != replicas_.end() ? it->second : 0;
  }
  Status ScaleTo(std::string_view model, size_t n) override {
    std::lock_guard guard(mutex_);
    calls_.emplace_back(std::string(model), n);
    if (fail_) return Status::Unavailable("no room for another server");
    replicas_[std::string(model)] = n;
    return Status::Ok();
  }
  void Set(const std::string& model, size_t n) {
    std::lock_guard guard(mutex_);
    replicas_[model] = n;
  }
  void Fail(bool fail) {
    std::lock_guard guard(mutex_);
    fail_ = fail;
  }
  std::vector<std::pair<std::string, size_t>> calls() const {
    std::lock_guard guard(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, size_t, std::less<>> replicas_;
  std::vector<std::pair<std::string, size_t>> calls_;
  bool fail_ = false;
};

// `demand` concurrent requests on `ready` replicas of 10 slots, 100 requests per tick.
ModelLoad Sample(std::string model, uint64_t tick, uint64_t demand, uint64_t ready) {
  ModelLoad l;
  l.model = std::move(model);
  l.requests_total = 100 * tick;
  l.in_flight = std::min(demand, ready * 10);
  l.waiting = demand - l.in_flight;
  l.ready_replicas = ready;
  l.capacity = ready * 10;
  return l;
}

AutoscaleOptions Fast() {
  AutoscaleOptions o;
  o.min_replicas = 0;
  o.max_replicas = 8;
  o.target_utilisation = 0.5;
  o.scale_up_window = 0s;
  o.scale_down_window = 0s;
  o.cooldown = 0s;
  return o;
}

class AutoscaleControllerTest : public ::testing::Test {
 protected:
  std::unique_ptr<AutoscaleController> Make(std::map<std::string, AutoscaleOptions> models,
                                            std::shared_ptr<ReplicaProvider> provider) {
    AutoscaleControllerOptions o;
    o.interval = 5s;
    for (auto& [name, options] : models) o.models.emplace(name, options);
    return std::make_unique<AutoscaleController>(
        o,
        [this] {
          std::lock_guard guard(mutex_);
          ++loads_;
          cv_.notify_all();
          return load_;
        },
        std::move(provider), clock_);
  }
  void SetLoad(std::vector<ModelLoad> load) {
    std::lock_guard guard(mutex_);
    load_ = std::move(load);
  }
  // Waits for the controller's thread to have read the load `n` times (bounded, so a
  // broken controller fails the test instead of hanging it).
  bool WaitForLoads(int n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return loads_ >= n; });
  }
  void Tick(AutoscaleController& c) {
    clock_->Advance(5s);
    c.Tick();
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<FakeProvider> provider_ = std::make_shared<FakeProvider>();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<ModelLoad> load_;  // guarded by mutex_
  int loads_ = 0;                // guarded by mutex_
};

TEST_F(AutoscaleControllerTest, ScalesThroughTheProviderOnlyWhenTheCountDiffers) {
  auto c = Make({{"m", Fast()}}, provider_);
  provider_->Set("m", 2);
  SetLoad({Sample("m", 1, 10, 2)});
  Tick(*c);
  EXPECT_TRUE(provider_->calls().empty());
  EXPECT_EQ(c->DesiredReplicas("m"), 2u);

  SetLoad({Sample("m", 2, 30, 2)});  // u = 1.5 against 0.5: 6
  Tick(*c);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 6u)));
  EXPECT_EQ(c->DesiredReplicas("m"), 6u);

  SetLoad({Sample("m", 3, 30, 6)});  // now at target
  Tick(*c);
  EXPECT_EQ(provider_->calls().size(), 1u);
  EXPECT_EQ(c->ticks(), 3u);
}

TEST_F(AutoscaleControllerTest, ReplacesAReplicaThatDied) {
  auto c = Make({{"m", Fast()}}, provider_);
  provider_->Set("m", 2);
  SetLoad({Sample("m", 1, 10, 2)});
  Tick(*c);
  SetLoad({Sample("m", 2, 10, 2)});
  provider_->Set("m", 1);  // a server exited; the load still needs 2
  Tick(*c);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 2u)));
}

TEST_F(AutoscaleControllerTest, ScalesFromZeroOnTheFirstWaitingRequest) {
  auto c = Make({{"m", Fast()}}, provider_);
  SetLoad({Sample("m", 0, 1, 0)});  // one waiting, nothing ready, nothing running
  Tick(*c);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 1u)));
}

TEST_F(AutoscaleControllerTest, LeavesUnconfiguredModelsAlone) {
  auto c = Make({{"m", Fast()}}, provider_);
  provider_->Set("m", 1);
  SetLoad({Sample("m", 1, 5, 1), Sample("other", 1, 500, 0)});
  Tick(*c);
  SetLoad({Sample("m", 2, 5, 1), Sample("other", 2, 500, 0)});
  Tick(*c);
  EXPECT_TRUE(provider_->calls().empty());
  EXPECT_EQ(c->DesiredReplicas("other"), std::nullopt);
  ASSERT_EQ(c->States().size(), 1u);
  EXPECT_EQ(c->States()[0].model, "m");
}

TEST_F(AutoscaleControllerTest, ConfiguredModelMissingFromTheLoadIsIdle) {
  AutoscaleOptions o = Fast();
  o.min_replicas = 1;
  auto c = Make({{"m", o}}, provider_);
  provider_->Set("m", 3);
  Tick(*c);  // the Router knows nothing of "m": no traffic
  Tick(*c);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 1u)));
  EXPECT_TRUE(c->States()[0].decision.idle);
}

TEST_F(AutoscaleControllerTest, IdleModelsOnTheSameServersDoNotDiluteTheSignal) {
  // Run the same trace of "busy" alone, and beside "idle" loaded on the same two servers.
  auto run = [&](bool with_idle) {
    auto provider = std::make_shared<FakeProvider>();
    provider->Set("busy", 2);
    provider->Set("idle", 2);
    std::map<std::string, AutoscaleOptions> models{{"busy", Fast()}};
    if (with_idle) models.emplace("idle", Fast());
    auto c = Make(models, provider);
    std::vector<size_t> busy;
    const uint64_t demand[] = {10, 30, 30, 30};
    for (uint64_t t = 0; t < 4; ++t) {
      const size_t ready = provider->Replicas("busy");
      std::vector<ModelLoad> load{Sample("busy", t + 1, demand[t], ready)};
      if (with_idle) load.push_back(Sample("idle", 0, 0, 2));  // same servers, no traffic
      SetLoad(load);
      Tick(*c);
      busy.push_back(*c->DesiredReplicas("busy"));
    }
    return std::make_pair(busy, with_idle ? c->DesiredReplicas("idle") : std::nullopt);
  };
  const std::vector<size_t> alone = run(false).first;
  const auto [shared, idle] = run(true);
  EXPECT_THAT(alone, ElementsAre(2u, 6u, 6u, 6u));
  EXPECT_EQ(shared, alone);
  EXPECT_EQ(idle, 0u);  // and the idle model goes to its min_replicas
}

TEST_F(AutoscaleControllerTest, KeepsAFailedScaleAndRetriesIt) {
  auto c = Make({{"m", Fast()}}, provider_);
  provider_->Fail(true);
  SetLoad({Sample("m", 0, 1, 0)});
  Tick(*c);
  ASSERT_EQ(c->States().size(), 1u);
  EXPECT_EQ(c->States()[0].last_scale.code(), StatusCode::kUnavailable);
  provider_->Fail(false);
  Tick(*c);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 1u), Pair("m", 1u)));
  EXPECT_TRUE(c->States()[0].last_scale.ok());
  EXPECT_EQ(provider_->Replicas("m"), 1u);
}

TEST_F(AutoscaleControllerTest, WithoutAProviderOnlyPublishesDecisions) {
  auto c = Make({{"m", Fast()}}, nullptr);
  SetLoad({Sample("m", 1, 10, 2)});
  Tick(*c);
  EXPECT_EQ(c->DesiredReplicas("m"), 2u);  // taken from the ready replicas at first
  SetLoad({Sample("m", 2, 30, 2)});
  Tick(*c);
  EXPECT_EQ(c->DesiredReplicas("m"), 6u);
  SetLoad({Sample("m", 3, 30, 2)});  // KEDA/HPA still starting pods: the decision stands
  Tick(*c);
  EXPECT_EQ(c->DesiredReplicas("m"), 6u);
  EXPECT_EQ(c->States()[0].current, 6u);
}

TEST_F(AutoscaleControllerTest, ThreadTicksOncePerIntervalOfTheClock) {
  auto c = Make({{"m", Fast()}}, provider_);
  SetLoad({Sample("m", 0, 1, 0)});
  c->Start();
  ASSERT_TRUE(WaitForLoads(1));  // the first tick is immediate
  clock_->Advance(5s);
  ASSERT_TRUE(WaitForLoads(2));
  c->Stop();
  c->Stop();  // idempotent
  // Exactly two ticks: the clock did not reach the third deadline.
  EXPECT_EQ(c->ticks(), 2u);
  EXPECT_EQ(loads_, 2);
  EXPECT_THAT(provider_->calls(), ElementsAre(Pair("m", 1u)));
}

}  // namespace
}  // namespace quiver::gateway
