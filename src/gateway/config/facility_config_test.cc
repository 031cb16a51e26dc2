#include "gateway/config/facility_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quiver::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(FacilityConfigTest, ReadsTheGatewaySectionAndUpstreams) {
  auto c = ParseFacilityConfig(R"(
gateway:
  http_port: 0
  grpc_address: 0.0.0.0
  balancer: least_request
  poll_interval_ms: 250
  upstream_max_in_flight: 8
  load_wait_ms: 1500
  outlier: {consecutive_failures: 2, latency_factor: 4.5}
  retry_budget: {min_retry_concurrency: 7}
upstreams:
  - url: grpc://127.0.0.1:8101
  - http://127.0.0.1:8100
tenants:
  - {name: alice, token: x}
)",
                               "f.yaml", "/base");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen.http_port, 0);
  EXPECT_EQ(c->listen.grpc_address, "0.0.0.0");
  EXPECT_EQ(c->listen.grpc_port, 8001);  // default kept
  EXPECT_EQ(c->router.balancer, "least_request");
  EXPECT_EQ(c->router.poll_interval, 250ms);
  EXPECT_EQ(c->router.upstream_max_in_flight, 8u);
  EXPECT_EQ(c->router.load_wait, 1500ms);
  EXPECT_EQ(c->router.outlier.consecutive_failures, 2u);
  EXPECT_DOUBLE_EQ(c->router.outlier.latency_factor, 4.5);
  EXPECT_EQ(c->router.retry_budget.min_retry_concurrency, 7u);
  EXPECT_THAT(c->upstreams, ElementsAre("grpc://127.0.0.1:8101", "http://127.0.0.1:8100"));
  ASSERT_TRUE(c->tenants.IsSequence());  // kept for the tenants' parser
  EXPECT_FALSE(c->autoscale);
  EXPECT_EQ(c->base, "/base");
}

TEST(FacilityConfigTest, EmptyFileIsAllDefaults) {
  auto c = ParseFacilityConfig("", "empty.yaml", ".");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->upstreams.empty());
  EXPECT_EQ(c->listen.http_port, 8000);
}

TEST(FacilityConfigTest, ErrorsNameTheFileAndTheKey) {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  for (const Case& c : {
           Case{"gatway: {}", "f.yaml: gatway: unknown key"},
           Case{"gateway: {http_port: 70000}", "gateway.http_port: expected a port"},
           Case{"gateway: {outlier: {latency_factr: 2}}", "gateway.outlier.latency_factr: unknown"},
           Case{"gateway: {poll_interval_ms: 0}", "gateway.poll_interval_ms"},
           Case{"gateway: {upstream_max_in_flight: -1}", "gateway.upstream_max_in_flight"},
           Case{"upstreams: [{uri: grpc://x:1}]", "upstreams[0].uri: unknown key"},
           Case{"upstreams: {url: x}", "upstreams: expected a list"},
           Case{"gateway: [1, 2]", "gateway: expected a mapping"},
           Case{"gateway: {http_port: [1", "f.yaml: not valid YAML"},
       }) {
    auto parsed = ParseFacilityConfig(c.yaml, "f.yaml", ".");
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.expected)) << c.yaml;
  }
}

TEST(FacilityConfigTest, MissingFileIsNotFound) {
  auto c = LoadFacilityConfig("/nonexistent/facility.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/facility.yaml"));
}

}  // namespace
}  // namespace quiver::gateway
