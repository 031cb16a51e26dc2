#include "gateway/admin_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/router_test_fixture.h"

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using testing::InferAndWait;

TEST_F(RouterTest, AdminApiListsAddsAndRemovesUpstreams) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  auto listed = HandleAdmin(*router_, "GET", "/v2/gateway/upstreams", "");
  EXPECT_EQ(listed.status, 200);
  EXPECT_THAT(listed.json, HasSubstr(R"("url":"a")"));
  EXPECT_THAT(listed.json, HasSubstr(R"("ready_models":["m"])"));

  auto added = HandleAdmin(*router_, "POST", "/v2/gateway/upstreams", R"({"url": "b"})");
  EXPECT_EQ(added.status, 200) << added.json;
  EXPECT_EQ(router_->Upstreams().size(), 2u);
  EXPECT_EQ(HandleAdmin(*router_, "POST", "/v2/gateway/upstreams", R"({"url": "b"})").status,
            400);  // already there
  EXPECT_EQ(HandleAdmin(*router_, "POST", "/v2/gateway/upstreams", "{nope").status, 400);

  auto removed = HandleAdmin(*router_, "DELETE", "/v2/gateway/upstreams?url=b", "");
  EXPECT_EQ(removed.status, 200) << removed.json;
  EXPECT_EQ(router_->Upstreams().size(), 1u);
  EXPECT_EQ(HandleAdmin(*router_, "DELETE", "/v2/gateway/upstreams?url=b", "").status, 404);

  ASSERT_TRUE(InferAndWait(*router_, Request("m")).ok());
  auto models = HandleAdmin(*router_, "GET", "/v2/gateway/models", "");
  EXPECT_THAT(models.json, HasSubstr(R"("model":"m")"));
  EXPECT_THAT(models.json, HasSubstr(R"("succeeded":1)"));
  auto rollout = HandleAdmin(*router_, "POST", "/v2/gateway/models/m/rollout", "");
  EXPECT_EQ(rollout.status, 200) << rollout.json;
  EXPECT_THAT(rollout.json, HasSubstr("a: version(s) 1 ready"));
  EXPECT_EQ(HandleAdmin(*router_, "POST", "/v2/gateway/models/zz/rollout", "").status, 404);
  EXPECT_EQ(HandleAdmin(*router_, "GET", "/v2/gateway/nothing", "").status, 404);
  EXPECT_EQ(HandleAdmin(*router_, "PUT", "/v2/gateway/upstreams", "").status, 405);
  // Bytes that are not UTF-8 end up in the error message: replaced, never a throw.
  auto odd = HandleAdmin(*router_, "DELETE", "/v2/gateway/upstreams?url=%FF%FE", "");
  EXPECT_EQ(odd.status, 404);
  EXPECT_THAT(odd.json, HasSubstr("error"));
  EXPECT_EQ(HandleAdmin(*router_, "POST", "/v2/gateway/models/%FF/rollout", "").status, 404);
}

}  // namespace
}  // namespace quiver::gateway
