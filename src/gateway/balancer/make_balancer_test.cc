#include "gateway/balancer/make_balancer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace quiver::gateway {
namespace {

TEST(MakeBalancerTest, KnowsP2cByItsNamesAndTheDefault) {
  for (const char* name : {"", "p2c", "least_request"}) {
    Result<std::unique_ptr<Balancer>> b = MakeBalancer(name);
    ASSERT_TRUE(b.ok()) << name;
    std::vector<std::string> one = {"a"};
    EXPECT_EQ((*b)->Choose("m", one).value(), "a");
  }
}

TEST(MakeBalancerTest, AnUnknownPolicyIsInvalidArgumentNamingIt) {
  Result<std::unique_ptr<Balancer>> b = MakeBalancer("round_robin");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(b.status().message(), ::testing::HasSubstr("'round_robin'"));
}

}  // namespace
}  // namespace quiver::gateway
