#include "frontend/http_router.h"

#include <gtest/gtest.h>

namespace quiver::frontend {
namespace {

TEST(HttpRouteTest, ParsesEveryEndpoint) {
  struct Case {
    const char* target;
    HttpRoute::Kind kind;
    const char* model;
    const char* version;
    const char* action;
    const char* region;
  };
  const Case cases[] = {
      {"/v2", HttpRoute::kServerMetadata, "", "", "", ""},
      {"/v2/health/live", HttpRoute::kHealth, "", "", "live", ""},
      {"/v2/health/ready?verbose=1", HttpRoute::kHealth, "", "", "ready", ""},
      {"/v2/models/stats", HttpRoute::kStatsAll, "", "", "", ""},
      {"/v2/models/m", HttpRoute::kModel, "m", "", "", ""},
      {"/v2/models/m/versions/12", HttpRoute::kModel, "m", "12", "", ""},
      {"/v2/models/m/ready", HttpRoute::kModel, "m", "", "ready", ""},
      {"/v2/models/m/versions/3/infer", HttpRoute::kModel, "m", "3", "infer", ""},
      {"/v2/models/m/config", HttpRoute::kModel, "m", "", "config", ""},
      {"/v2/models/m/versions/1/stats", HttpRoute::kModel, "m", "1", "stats", ""},
      {"/v2/models/a%20b%2Fc/infer", HttpRoute::kModel, "a b/c", "", "infer", ""},
      {"/v2/models/m/generate", HttpRoute::kUnsupported, "m", "", "generate", ""},
      {"/v2/models/m/trace/setting", HttpRoute::kUnsupported, "m", "", "trace", ""},
      {"/v2/repository/index", HttpRoute::kRepoIndex, "", "", "", ""},
      {"/v2/repository/models/m/load", HttpRoute::kRepoControl, "m", "", "load", ""},
      {"/v2/repository/models/m/unload", HttpRoute::kRepoControl, "m", "", "unload", ""},
      {"/v2/repository/r/index", HttpRoute::kRepoNamed, "", "", "", ""},
      {"/v2/systemsharedmemory/status", HttpRoute::kSystemShm, "", "", "status", ""},
      {"/v2/systemsharedmemory/unregister", HttpRoute::kSystemShm, "", "", "unregister", ""},
      {"/v2/systemsharedmemory/region/r1/register", HttpRoute::kSystemShm, "", "", "register",
       "r1"},
      {"/v2/cudasharedmemory/region/r1/status", HttpRoute::kCudaShm, "", "", "status", "r1"},
      {"/v2/trace/setting", HttpRoute::kUnsupported, "", "", "trace", ""},
      {"/v2/logging", HttpRoute::kUnsupported, "", "", "logging", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    HttpRoute r = ParseRoute(c.target);
    EXPECT_EQ(r.kind, c.kind);
    EXPECT_EQ(r.model, c.model);
    EXPECT_EQ(r.version, c.version);
    EXPECT_EQ(r.action, c.action);
    EXPECT_EQ(r.region, c.region);
  }
}

TEST(HttpRouteTest, RejectsWhatTritonDoesNotRoute) {
  for (const char* target :
       {"", "v2", "/", "/v2/", "/v3", "/v2/models", "/v2/models/", "/v2/models//ready",
        "/v2/models/m/versions/x", "/v2/models/m/versions/-1/infer", "/v2/models/m/versions",
        "/v2/models/m/infer/more", "/v2/health", "/v2/health/dead",
        "/v2/systemsharedmemory/region/r", "/v2/systemsharedmemory/region/r/delete",
        "/v2/repository/models/m/reload", "/v2/models/m%zz/infer", "/v2/models/m%2"}) {
    EXPECT_EQ(ParseRoute(target).kind, HttpRoute::kNotFound) << target;
  }
}

TEST(HttpRouteTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%2Fb%2f%41"), "a/b/A");
  EXPECT_EQ(PercentDecode("plain"), "plain");
  EXPECT_FALSE(PercentDecode("%").has_value());
  EXPECT_FALSE(PercentDecode("%4").has_value());
  EXPECT_FALSE(PercentDecode("%G1").has_value());
}

}  // namespace
}  // namespace quiver::frontend
