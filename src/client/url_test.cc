#include "client/url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quiver::client {
namespace {

using ::testing::HasSubstr;

TEST(UrlTest, ParsesRemoteUrlsWithAndWithoutPort) {
  auto grpc = ParseUrl("grpc://server.example:9001");
  ASSERT_TRUE(grpc.ok());
  EXPECT_EQ(grpc->scheme, Scheme::kGrpc);
  EXPECT_EQ(grpc->host, "server.example");
  EXPECT_EQ(grpc->port, 9001);

  auto http = ParseUrl("http://127.0.0.1/");
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->scheme, Scheme::kHttp);
  EXPECT_EQ(http->host, "127.0.0.1");
  EXPECT_EQ(http->port, 8000);
  EXPECT_EQ(ParseUrl("grpc://h")->port, 8001);
}

TEST(UrlTest, ParsesIpv6Literals) {
  auto url = ParseUrl("grpc://[::1]:8123");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 8123);
  EXPECT_EQ(ParseUrl("http://[::1]")->port, 8000);
}

TEST(UrlTest, ParsesLocalRepositories) {
  auto url = ParseUrl("local:///srv/models");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, Scheme::kLocal);
  EXPECT_EQ(url->path, "/srv/models");
  EXPECT_EQ(ParseUrl("local://models")->path, "models");
}

TEST(UrlTest, RejectsMalformedUrlsWithAReason) {
  struct Case {
    const char* url;
    const char* why;
  };
  for (const Case& c : {Case{"127.0.0.1:8001", "expected scheme://"},
                        Case{"ftp://h:1", "unknown URL scheme 'ftp'"},
                        Case{"grpc://:8001", "empty host"},
                        Case{"grpc://h:", "empty port"},
                        Case{"grpc://h:0", "1..65535"},
                        Case{"grpc://h:70000", "1..65535"},
                        Case{"grpc://h:80x", "not a number"},
                        Case{"http://h:8000/v2/models", "no path"},
                        Case{"grpc://[::1", "unclosed"},
                        Case{"local://", "needs a model repository"}}) {
    auto url = ParseUrl(c.url);
    ASSERT_FALSE(url.ok()) << c.url;
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument) << c.url;
    EXPECT_THAT(url.status().message(), HasSubstr(c.why)) << c.url;
    EXPECT_THAT(url.status().message(), HasSubstr(c.url)) << c.url;
  }
}

}  // namespace
}  // namespace quiver::client
