#include "gateway/tenants/tenant_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<TenantOptions> Tenants() {
  TenantOptions alice, bob;
  alice.name = "alice";
  alice.token = "alice-secret-1";
  bob.name = "bob";
  bob.token = "bob-secret-22";
  return {alice, bob};
}

TEST(TenantRegistryTest, MapsEachTokenToItsTenant) {
  auto auth = MakeAuthenticator(Tenants());
  auto a = auth("alice-secret-1");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, "alice");
  auto b = auth("bob-secret-22");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "bob");
}

TEST(TenantRegistryTest, MissingTokenIsUnauthenticated) {
  auto r = MakeAuthenticator(Tenants())("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r.status().message(), "missing bearer token");
}

TEST(TenantRegistryTest, WrongTokensAreUnauthenticatedAndNeverEchoed) {
  auto registry = std::make_shared<const TenantRegistry>(Tenants());
  auto auth = MakeAuthenticator(registry);
  // Prefixes, extensions and same-length near misses of a real token all fail.
  for (std::string bad : {"alice-secret-", "alice-secret-11", "alice-secret-2", "Alice-secret-1",
                          "x", "bob-secret-22 "}) {
    auto r = auth(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), "unknown token");
    EXPECT_THAT(r.status().ToString(), Not(HasSubstr(bad)));
  }
  EXPECT_EQ(registry->unauthenticated(), 6u);
  EXPECT_TRUE(auth("bob-secret-22").ok());
  EXPECT_EQ(registry->unauthenticated(), 6u);
}

TEST(TenantRegistryTest, NoTenantsAuthenticatesNobody) {
  auto r = MakeAuthenticator(std::vector<TenantOptions>{})("anything");
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abcabc", "abc"));  // wraps b: lengths still differ
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace quiver::gateway
