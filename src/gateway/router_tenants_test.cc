// The Router with the tenants' scheduler: limits answer the client through the Router, and
// when upstream capacity is short the queued requests reach the upstream in fair order.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "gateway/router.h"
#include "gateway/tenants/tenant_scheduler.h"
#include "testing/engine_fixture.h"
#include "testing/fake_inference_service.h"
#include "testing/infer_helpers.h"

namespace quiver::gateway {
namespace {

using testing::FakeInferenceService;
using ::testing::HasSubstr;

class RouterTenantsTest : public ::testing::Test {
 protected:
  // One upstream "a" with model m, holding every request until the test releases it; its
  // capacity is `max_in_flight` requests at once.
  void Start(std::vector<TenantOptions> tenants, size_t max_in_flight) {
    testing::TestEngineBuilder builder("router_tenants");
    builder.WithModel("m", "identity", "max_batch_size: 0\n" + testing::IoConfig("TYPE_FP32"));
    builder.WithStartupModels({"m"});
    engine_ = builder.Build();
    ASSERT_TRUE(engine_);
    fake_ = std::make_unique<FakeInferenceService>(*engine_);  // holds
    RouterOptions options;
    options.start_poller = false;
    options.upstream_max_in_flight = max_in_flight;
    options.factory = [this](const std::string&) -> Result<std::shared_ptr<InferenceService>> {
      return std::shared_ptr<InferenceService>(fake_.get(), [](InferenceService*) {});
    };
    auto created =
        Router::Create(std::move(options), clock_, MakeTenantScheduler(std::move(tenants), clock_));
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    router_ = std::move(created).value();
    ASSERT_TRUE(router_->AddUpstream("a").ok());
  }

  void Send(const std::string& tenant, const std::string& id) {
    InferRequest r;
    r.model = "m";
    r.id = id;
    r.tenant = tenant;
    std::vector<float> values{1, 2, 3};
    r.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {3}, values));
    router_->Infer(std::move(r), [this, id](Result<InferResponse> result) {
      {
        std::lock_guard lock(mutex_);
        results_.emplace(id, result.status());
      }
      counter_.Add(std::move(result));
    });
  }
  Status ResultOf(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = results_.find(id);
    return it == results_.end() ? Status::Unknown("no result") : it->second;
  }
  static TenantOptions Tenant(std::string name, size_t max_in_flight = 0) {
    TenantOptions t;
    t.name = std::move(name);
    t.token = t.name + "-token";
    t.max_in_flight = max_in_flight;
    return t;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  testing::TestEngine engine_;
  std::unique_ptr<FakeInferenceService> fake_;
  testing::CallbackCounter counter_;
  std::mutex mutex_;
  std::map<std::string, Status> results_;  // guarded by mutex_
  std::unique_ptr<Router> router_;         // declared last: destroyed first
};

TEST_F(RouterTenantsTest, ALimitedTenantGetsTooManyRequestsAndTheUpstreamNothing) {
  Start({Tenant("alice", /*max_in_flight=*/1)}, 64);
  Send("alice", "a1");
  fake_->WaitForHeld(1);
  Send("alice", "a2");  // refused at once, inline
  counter_.Wait(1);
  EXPECT_EQ(ResultOf("a2").code(), StatusCode::kTooManyRequests);
  EXPECT_THAT(ResultOf("a2").message(), HasSubstr("'alice'"));
  EXPECT_EQ(fake_->calls(), 1);
  ASSERT_TRUE(fake_->ReleaseOne());
  counter_.Wait(2);
  EXPECT_TRUE(ResultOf("a1").ok()) << ResultOf("a1").ToString();
}

TEST_F(RouterTenantsTest, QueuedRequestsReachTheUpstreamInFairOrder) {
  Start({Tenant("greedy"), Tenant("polite")}, /*max_in_flight=*/1);
  for (int i = 0; i < 5; ++i) Send("greedy", "g" + std::to_string(i));
  fake_->WaitForHeld(1);  // g0 at the upstream, g1..g4 queued at the gateway
  Send("polite", "p0");
  for (int i = 0; i < 6; ++i) {  // one at a time: capacity 1
    fake_->WaitForHeld(1);
    ASSERT_TRUE(fake_->ReleaseOne());
  }
  counter_.Wait(6);
  std::vector<std::string> order;
  for (const auto& r : fake_->requests()) order.push_back(r.id);
  // FIFO would send p0 last; fair queueing sends it within one turn of greedy's queue.
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order[0], "g0");
  EXPECT_TRUE(order[1] == "p0" || order[2] == "p0") << ::testing::PrintToString(order);
  for (const auto& id : {"g0", "g1", "g2", "g3", "g4", "p0"}) EXPECT_TRUE(ResultOf(id).ok()) << id;
}

}  // namespace
}  // namespace quiver::gateway
