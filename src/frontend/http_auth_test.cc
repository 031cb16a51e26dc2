// Bearer-token authentication of the HTTP frontend (the gateway's tenants), over real
// sockets with a FakeInferenceService that records each request's tenant.

#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <utility>

#include "frontend/authenticator.h"
#include "frontend/http_server.h"
#include "frontend/http_test_client.h"
#include "testing/fake_inference_service.h"

namespace quiver::frontend {
namespace {

using testing::TestClient;
using testing::TestResponse;

const std::string kBody =
    R"({"id":"e","inputs":[{"name":"X","shape":[2],"datatype":"INT8","data":[1,2]}]})";

class HttpAuthTest : public ::testing::Test {
 protected:
  void Start(bool auth) {
    HttpServerOptions o;
    o.port = 0;
    o.threads = 2;
    if (auth) {
      o.authenticator = [this](std::string_view token) -> Result<std::string> {
        ++auth_calls_;
        if (token.empty()) return Status(StatusCode::kUnauthenticated, "missing bearer token");
        if (token == "alice-token") return std::string("alice");
        if (token == "bob-token") return std::string("bob");
        return Status(StatusCode::kUnauthenticated, "unknown token");
      };
    }
    o.extension_prefix = "/v2/gateway/";  // as the gateway's admin API
    o.extension = [](std::string_view, std::string_view, std::string_view) {
      return std::pair<int, std::string>(200, "{}");
    };
    server_ = std::make_unique<HttpServer>(service_, shm_, o);
    ASSERT_TRUE(server_->Start().ok());
  }
  TestResponse Infer(TestClient& c, const std::string& authorization) {
    if (authorization.empty()) return c.Post("/v2/models/m/infer", kBody);
    return c.Post("/v2/models/m/infer", kBody, {{"Authorization", authorization}});
  }

  quiver::testing::FakeInferenceService service_;  // echoes, inline
  SharedMemoryManager shm_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> auth_calls_{0};
};

TEST_F(HttpAuthTest, InferenceCarriesTheAuthenticatedTenant) {
  Start(true);
  TestClient c(server_->port());
  EXPECT_EQ(Infer(c, "Bearer alice-token").status, 200);
  EXPECT_EQ(Infer(c, "bearer   bob-token ").status, 200);  // scheme case-insensitive
  auto requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].tenant, "alice");
  EXPECT_EQ(requests[1].tenant, "bob");
}

TEST_F(HttpAuthTest, MissingOrWrongTokenIs401WithoutTheToken) {
  Start(true);
  TestClient c(server_->port());
  TestResponse missing = Infer(c, "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.body, R"({"error":"missing bearer token"})");
  EXPECT_EQ(missing.Header("www-authenticate"), "Bearer");
  EXPECT_EQ(Infer(c, "Basic YWxpY2U6cHc=").body, R"({"error":"missing bearer token"})");
  TestResponse wrong = Infer(c, "Bearer not-a-token-xyz");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body, R"({"error":"unknown token"})");
  EXPECT_EQ(wrong.body.find("not-a-token-xyz"), std::string::npos);
  EXPECT_TRUE(wrong.keep_alive);  // a refusal does not cost the connection
  EXPECT_EQ(Infer(c, "Bearer alice-token").status, 200);
  EXPECT_EQ(service_.calls(), 1);  // refused requests never reach the service
}

TEST_F(HttpAuthTest, EveryEndpointButHealthNeedsAToken) {
  Start(true);
  TestClient c(server_->port());
  EXPECT_EQ(c.Get("/v2/health/live").status, 200);
  EXPECT_EQ(c.Get("/v2/health/ready").status, 200);
  EXPECT_EQ(auth_calls_.load(), 0);  // health is not even looked at
  for (const char* path :
       {"/v2", "/v2/models/m", "/v2/models/m/ready", "/v2/models/m/config", "/v2/models/m/stats",
        "/v2/models/stats", "/v2/systemsharedmemory/status", "/v2/no/such/path"}) {
    EXPECT_EQ(c.Get(path).status, 401) << path;
  }
  EXPECT_EQ(c.Get("/v2/gateway/upstreams").status, 401);  // an extension
  for (const char* path : {"/v2/repository/index", "/v2/repository/models/m/load",
                           "/v2/systemsharedmemory/region/r/unregister", "/v2/gateway/upstreams"}) {
    EXPECT_EQ(c.Post(path, "{}").status, 401) << path;
  }
  const std::vector<std::pair<std::string, std::string>> token = {
      {"Authorization", "Bearer alice-token"}};
  EXPECT_EQ(c.Request("GET", "/v2", {}, token).status, 200);
  EXPECT_EQ(c.Request("GET", "/v2/models/stats", {}, token).status, 200);
  EXPECT_EQ(c.Request("GET", "/v2/gateway/upstreams", {}, token).status, 200);
}

TEST_F(HttpAuthTest, AuthOffNeedsNoTokenAndTenantIsEmpty) {
  Start(false);
  TestClient c(server_->port());
  EXPECT_EQ(Infer(c, "").status, 200);
  EXPECT_EQ(Infer(c, "Bearer alice-token").status, 200);  // ignored: nobody checks it
  EXPECT_EQ(c.Get("/v2").status, 200);
  auto requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].tenant, "");
  EXPECT_EQ(requests[1].tenant, "");
}

TEST(BearerTokenTest, TakesTheTokenOfTheBearerScheme) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("BEARER \tabc.def-1  "), "abc.def-1");
  EXPECT_EQ(BearerToken(""), "");
  EXPECT_EQ(BearerToken("Bearer"), "");
  EXPECT_EQ(BearerToken("Bearer   "), "");
  EXPECT_EQ(BearerToken("Bearerabc"), "");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bear abcdef"), "");
}

}  // namespace
}  // namespace quiver::frontend
