#include "gateway/tenants/tenant_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Result<std::vector<TenantOptions>> Parse(const std::string& yaml,
                                         const std::filesystem::path& base = ".") {
  return ParseTenants(YAML::Load(yaml)["tenants"], base);
}

// The message of a parse that must fail.
std::string Error(const std::string& yaml) {
  auto r = Parse(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(TenantConfigTest, ParsesEveryKey) {
  auto r = Parse(R"(
tenants:
  - name: alice
    token: s3cret
    weight: 2.5
    max_in_flight: 8
    rate: 100
    burst: 20
  - {name: bob, token: other}
)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  const auto& a = (*r)[0];
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.token, "s3cret");
  EXPECT_DOUBLE_EQ(a.weight, 2.5);
  EXPECT_EQ(a.max_in_flight, 8u);
  EXPECT_DOUBLE_EQ(a.rate, 100);
  EXPECT_DOUBLE_EQ(a.burst, 20);
  const auto& b = (*r)[1];  // defaults
  EXPECT_DOUBLE_EQ(b.weight, 1.0);
  EXPECT_EQ(b.max_in_flight, 0u);
  EXPECT_DOUBLE_EQ(b.rate, 0);
}

TEST(TenantConfigTest, AbsentOrEmptyMeansNoTenants) {
  auto absent = Parse("gateway: {}");
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->empty());
  auto empty = Parse("tenants: []");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto null = Parse("tenants:");
  ASSERT_TRUE(null.ok());
  EXPECT_TRUE(null->empty());
}

TEST(TenantConfigTest, TokenFileIsItsFirstLineRelativeToBase) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("quiver_tenant_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "secrets");
  std::ofstream(dir / "secrets" / "alice") << "  from-file-token \r\nsecond line\n";
  auto r = Parse("tenants: [{name: alice, token_file: secrets/alice}]", dir);
  auto missing = Parse("tenants: [{name: alice, token_file: secrets/nobody}]", dir);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].token, "from-file-token");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("tenants[0].token_file: cannot read"));
  EXPECT_THAT(missing.status().message(), HasSubstr("secrets/nobody"));
}

TEST(TenantConfigTest, ErrorsNameTheKeyPath) {
  EXPECT_EQ(Error("tenants: [{name: a, token: x}, {name: b, token: y, rate: -1}]"),
            "tenants[1].rate: expected a number >= 0");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, burst: lots}]"),
            "tenants[0].burst: expected a number >= 0");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, weight: 0}]"),
            "tenants[0].weight: expected a number > 0");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, rate: .inf}]"),
            "tenants[0].rate: expected a number >= 0");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, max_in_flight: 1.5}]"),
            "tenants[0].max_in_flight: expected an integer >= 0");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, max_in_flight: -3}]"),
            "tenants[0].max_in_flight: expected an integer >= 0");
  EXPECT_EQ(Error("tenants: {name: a}"), "tenants: expected a list");
  EXPECT_THAT(Error("tenants: [alice]"), HasSubstr("tenants[0]: expected a map"));
  EXPECT_EQ(Error("tenants: [{token: x}]"), "tenants[0].name: required");
  EXPECT_EQ(Error("tenants: [{name: '', token: x}]"),
            "tenants[0].name: expected a non-empty string");
}

TEST(TenantConfigTest, UnknownKeysAreRejected) {
  EXPECT_THAT(Error("tenants: [{name: a, token: x, wieght: 2}]"),
              HasSubstr("tenants[0]: unknown key 'wieght'"));
}

TEST(TenantConfigTest, ExactlyOneOfTokenAndTokenFile) {
  EXPECT_EQ(Error("tenants: [{name: a}]"), "tenants[0]: token or token_file is required");
  EXPECT_EQ(Error("tenants: [{name: a, token: x, token_file: f}]"),
            "tenants[0]: give token or token_file, not both");
  EXPECT_EQ(Error("tenants: [{name: a, token: ''}]"), "tenants[0].token: empty token");
  EXPECT_THAT(Error("tenants: [{name: a, token: 'has space'}]"), HasSubstr("tenants[0].token:"));
}

TEST(TenantConfigTest, DuplicatesAreRejectedWithoutQuotingTokens) {
  EXPECT_THAT(Error("tenants: [{name: a, token: x}, {name: a, token: y}]"),
              HasSubstr("tenants[1].name: duplicate name 'a'"));
  const std::string dup =
      Error("tenants: [{name: a, token: topsecret}, {name: b, token: topsecret}]");
  EXPECT_THAT(dup, HasSubstr("tenants[1]: the same token as tenants[0]"));
  EXPECT_THAT(dup, Not(HasSubstr("topsecret")));
}

}  // namespace
}  // namespace quiver::gateway
