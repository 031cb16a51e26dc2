#include "gateway/tenants/tenant_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TenantMetricsTest, RendersEveryOutcomeAndGaugePerTenant) {
  TenantStats alice;
  alice.tenant = "alice";
  alice.admitted = 7;
  alice.rate_limited = 2;
  alice.in_flight_limited = 1;
  alice.queue_rejected = 3;
  alice.in_flight = 4;
  alice.queued = 5;
  std::string out;
  RenderTenantMetrics({alice}, 9, out);
  const char* expected[] = {
      "# TYPE quiver_gateway_tenant_requests_total counter\n",
      "quiver_gateway_tenant_requests_total{tenant=\"alice\",outcome=\"admitted\"} 7\n",
      "quiver_gateway_tenant_requests_total{tenant=\"alice\",outcome=\"rate_limited\"} 2\n",
      "quiver_gateway_tenant_requests_total{tenant=\"alice\",outcome=\"in_flight_limited\"} 1\n",
      "quiver_gateway_tenant_requests_total{tenant=\"alice\",outcome=\"queue_full\"} 3\n",
      "quiver_gateway_tenant_requests_total{tenant=\"\",outcome=\"unauthenticated\"} 9\n",
      "# TYPE quiver_gateway_tenant_in_flight gauge\n",
      "quiver_gateway_tenant_in_flight{tenant=\"alice\"} 4\n",
      "# TYPE quiver_gateway_tenant_queued gauge\n",
      "quiver_gateway_tenant_queued{tenant=\"alice\"} 5\n",
  };
  for (const char* line : expected) EXPECT_THAT(out, HasSubstr(line));
  EXPECT_THAT(out, Not(HasSubstr("tenant=\"alice\",outcome=\"unauthenticated\"")));
}

TEST(TenantMetricsTest, EscapesLabelsAndSamplesUnauthenticatedOnce) {
  TenantStats odd, anonymous;
  odd.tenant = "a\"b\\c";
  anonymous.admitted = 1;
  std::string out;
  RenderTenantMetrics({odd, anonymous}, 2, out);
  EXPECT_THAT(out, HasSubstr("{tenant=\"a\\\"b\\\\c\",outcome=\"admitted\"} 0\n"));
  const std::string unauth = "outcome=\"unauthenticated\"";
  const size_t first = out.find(unauth);
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(out.find(unauth, first + 1), std::string::npos);
}

TEST(TenantMetricsTest, NothingWithoutTenantsOrRefusals) {
  std::string out;
  RenderTenantMetrics({}, 0, out);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace quiver::gateway
