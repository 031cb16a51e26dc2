#include "bench/perf_options.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

namespace quiver::bench {
namespace {

TEST(PerfRangeTest, StartOnlyIsOneLevel) {
  auto r = ParseRange("--concurrency-range", "4", true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->start, 4);
  EXPECT_EQ(r->end, 4);
  EXPECT_EQ(r->step, 1);
  EXPECT_EQ(ExpandRange(*r, 10), (std::vector<double>{4}));
}

TEST(PerfRangeTest, StartEndStep) {
  auto r = ParseRange("--concurrency-range", "1:8:3", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ExpandRange(*r, 10), (std::vector<double>{1, 4, 7}));
  auto all = ParseRange("--concurrency-range", "1:4", true);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ExpandRange(*all, 10), (std::vector<double>{1, 2, 3, 4}));
}

TEST(PerfRangeTest, FractionalRatesDoNotDrift) {
  auto r = ParseRange("--request-rate-range", "0.1:1.0:0.1", false);
  ASSERT_TRUE(r.ok());
  const auto levels = ExpandRange(*r, 100);
  ASSERT_EQ(levels.size(), 10u);  // 1.0 is included despite 0.1 not being exact
  EXPECT_DOUBLE_EQ(levels.back(), 1.0);
}

TEST(PerfRangeTest, OpenEndCountsLevels) {
  auto r = ParseRange("--concurrency-range", "2:0:2", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ExpandRange(*r, 3), (std::vector<double>{2, 4, 6}));
}

TEST(PerfRangeTest, RejectsMalformed) {
  for (const char* bad : {"", "a", "1:2:3:4", "0", "1:2:0", "4:2", "1.5", "-1", "1::2"}) {
    auto r = ParseRange("--concurrency-range", bad, true);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("--concurrency-range"), std::string::npos);
    }
  }
  EXPECT_TRUE(ParseRange("--request-rate-range", "1.5", false).ok());
  EXPECT_FALSE(ParseRange("--request-rate-range", "nan", false).ok());
}

TEST(PerfShapeTest, ParsesNameAndDims) {
  auto s = ParseShapeFlag("INPUT0:3,224,224");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->first, "INPUT0");
  EXPECT_EQ(s->second, (Shape{3, 224, 224}));
  // The last ':' separates: names may contain ':'.
  auto colon = ParseShapeFlag("ns:in:4");
  ASSERT_TRUE(colon.ok());
  EXPECT_EQ(colon->first, "ns:in");
  for (const char* bad : {"INPUT0", "INPUT0:", ":4", "INPUT0:0", "INPUT0:2,,3", "INPUT0:-1"}) {
    EXPECT_FALSE(ParseShapeFlag(bad).ok()) << bad;
  }
}

TEST(PerfEndpointTest, DefaultsAndForms) {
  auto d = ParseEndpoint("", PerfProtocol::kGrpc);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->host, "localhost");
  EXPECT_EQ(d->port, 8001);
  auto h = ParseEndpoint("127.0.0.1:9000", PerfProtocol::kHttp);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->host, "127.0.0.1");
  EXPECT_EQ(h->port, 9000);
  auto no_port = ParseEndpoint("example.org", PerfProtocol::kGrpc);
  ASSERT_TRUE(no_port.ok());
  EXPECT_EQ(no_port->host, "example.org");
  EXPECT_EQ(no_port->port, 8001);
  auto v6 = ParseEndpoint("[::1]:8000", PerfProtocol::kHttp);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8000);
  for (const char* bad :
       {":8000", "host:", "host:0", "host:70000", "::1:8000", "[::1", "h/p:1", "grpc://host:1"}) {
    EXPECT_FALSE(ParseEndpoint(bad, PerfProtocol::kHttp).ok()) << bad;
  }
}

TEST(PerfTargetTest, PlainHostPortSpeaksTheGivenProtocol) {
  auto grpc = ParseRemoteTarget("127.0.0.1:9001", PerfProtocol::kGrpc);
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->protocol, PerfProtocol::kGrpc);
  EXPECT_EQ(grpc->endpoint.host, "127.0.0.1");
  EXPECT_EQ(grpc->endpoint.port, 9001);
  auto http = ParseRemoteTarget("127.0.0.1:9000", PerfProtocol::kHttp);
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->protocol, PerfProtocol::kHttp);
  EXPECT_EQ(http->endpoint.port, 9000);
  // Without -i, perf_analyzer's default: HTTP, port 8000.
  auto plain = ParseRemoteTarget("example.org", std::nullopt);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->protocol, PerfProtocol::kHttp);
  EXPECT_EQ(plain->endpoint.port, 8000);
  // The unbracketed-IPv6 check of the plain form stays.
  auto v6 = ParseRemoteTarget("::1:8000", std::nullopt);
  ASSERT_FALSE(v6.ok());
  EXPECT_NE(v6.status().message().find("brackets"), std::string::npos);
}

TEST(PerfTargetTest, SchemeChoosesTheProtocol) {
  auto grpc = ParseRemoteTarget("grpc://127.0.0.1:9001", std::nullopt);
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->protocol, PerfProtocol::kGrpc);
  EXPECT_EQ(grpc->endpoint.host, "127.0.0.1");
  EXPECT_EQ(grpc->endpoint.port, 9001);
  auto grpc_default = ParseRemoteTarget("grpc://example.org/", std::nullopt);
  ASSERT_TRUE(grpc_default.ok());
  EXPECT_EQ(grpc_default->endpoint.host, "example.org");
  EXPECT_EQ(grpc_default->endpoint.port, 8001);
  auto http = ParseRemoteTarget("http://[::1]:9000", std::nullopt);
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  EXPECT_EQ(http->protocol, PerfProtocol::kHttp);
  EXPECT_EQ(http->endpoint.host, "::1");
  EXPECT_EQ(http->endpoint.port, 9000);
  // An -i that agrees is fine.
  auto agree = ParseRemoteTarget("grpc://h:1", PerfProtocol::kGrpc);
  ASSERT_TRUE(agree.ok());
  EXPECT_EQ(agree->protocol, PerfProtocol::kGrpc);
  EXPECT_TRUE(ParseRemoteTarget("http://h:1", PerfProtocol::kHttp).ok());
}

TEST(PerfTargetTest, SchemeContradictingProtocolIsAnError) {
  auto grpc_http = ParseRemoteTarget("grpc://127.0.0.1:8001", PerfProtocol::kHttp);
  ASSERT_FALSE(grpc_http.ok());
  EXPECT_EQ(grpc_http.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(grpc_http.status().message().find("-u grpc://127.0.0.1:8001"), std::string::npos)
      << grpc_http.status().message();
  EXPECT_NE(grpc_http.status().message().find("-i http"), std::string::npos);
  auto http_grpc = ParseRemoteTarget("http://127.0.0.1:8000", PerfProtocol::kGrpc);
  ASSERT_FALSE(http_grpc.ok());
  EXPECT_NE(http_grpc.status().message().find("-i grpc"), std::string::npos);
}

TEST(PerfTargetTest, RejectsBadUrls) {
  for (const char* bad : {"grpc://", "grpc://:8001", "grpc://h:", "grpc://h:0", "http://h:70000",
                          "http://h:1/v2", "grpc://[::1", "tcp://h:1", "local:///srv/models"}) {
    auto t = ParseRemoteTarget(bad, std::nullopt);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(t.status().message().find("-u"), std::string::npos) << t.status().message();
    }
  }
}

// Parses a perf_analyzer-style command line into a plan.
Result<PerfPlan> Plan(std::vector<std::string> args) {
  CLI::App app;
  PerfOptions options;
  AddPerfFlags(app, options);
  std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector
  app.parse(args);
  return MakePerfPlan(options);
}

TEST(PerfPlanTest, TokenFromTheFlagElseTheEnvironment) {
  ::unsetenv("QUIVER_TOKEN");
  EXPECT_EQ(Plan({"-m", "m"})->token, "");
  EXPECT_EQ(Plan({"-m", "m", "--token", "flag-t0ken"})->token, "flag-t0ken");
  ::setenv("QUIVER_TOKEN", "env-t0ken", 1);
  EXPECT_EQ(Plan({"-m", "m"})->token, "env-t0ken");
  EXPECT_EQ(Plan({"-m", "m", "--token", "flag-t0ken"})->token, "flag-t0ken");
  ::setenv("QUIVER_TOKEN", "two words", 1);
  auto bad = Plan({"-m", "m"});
  ::unsetenv("QUIVER_TOKEN");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(bad.status().message().starts_with("--token")) << bad.status().message();
  EXPECT_EQ(bad.status().message().find("two words"), std::string::npos);
}

TEST(PerfPlanTest, PerfAnalyzerCommandLine) {
  auto p = Plan({"-m",
                 "simple_mlp",
                 "-u",
                 "127.0.0.1:8001",
                 "-i",
                 "grpc",
                 "-b",
                 "64",
                 "--concurrency-range",
                 "1:4",
                 "--measurement-interval",
                 "500",
                 "-f",
                 "r.csv",
                 "--shape",
                 "INPUT0:4",
                 "--shared-memory",
                 "system",
                 "-s",
                 "5",
                 "-r",
                 "7",
                 "--percentile",
                 "95"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->model, "simple_mlp");
  EXPECT_EQ(p->protocol, PerfProtocol::kGrpc);
  EXPECT_EQ(p->endpoint.port, 8001);
  EXPECT_EQ(p->batch, 64);
  EXPECT_EQ(p->mode, LoadMode::kConcurrency);
  EXPECT_EQ(p->levels, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(p->measurement_interval_ms, 500u);
  EXPECT_EQ(p->csv_file, "r.csv");
  EXPECT_EQ(p->shapes.at("INPUT0"), (Shape{4}));
  EXPECT_TRUE(p->shared_memory);
  EXPECT_DOUBLE_EQ(p->stability, 0.05);
  EXPECT_EQ(p->max_trials, 7);
  EXPECT_EQ(p->percentile, 95);
  EXPECT_EQ(p->connections, 1u);  // gRPC: one channel per 6 concurrent requests
}

TEST(PerfPlanTest, Defaults) {
  auto p = Plan({"-m", "identity_fp32"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->protocol, PerfProtocol::kHttp);
  EXPECT_EQ(p->endpoint.host, "localhost");
  EXPECT_EQ(p->endpoint.port, 8000);
  EXPECT_EQ(p->levels, (std::vector<double>{1}));
  EXPECT_EQ(p->measurement_interval_ms, 5000u);
  EXPECT_DOUBLE_EQ(p->stability, 0.10);
  EXPECT_EQ(p->max_trials, 10);
  EXPECT_EQ(p->input_data, InputDataKind::kRandom);
  EXPECT_EQ(p->connections, 1u);
}

TEST(PerfPlanTest, LocalRepositoryGoesThroughTheClient) {
  auto p = Plan({"-m", "simple_mlp", "-u", "local:///srv/models"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->local);
  EXPECT_EQ(p->client_url, "local:///srv/models");
  auto shm = Plan({"-m", "m", "-u", "local:///srv/models", "--shared-memory", "system"});
  ASSERT_FALSE(shm.ok());
  EXPECT_NE(shm.status().message().find("--shared-memory"), std::string::npos);
  auto empty = Plan({"-m", "m", "-u", "local://"});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
}

TEST(PerfPlanTest, ClientFlagMakesTheUrl) {
  auto grpc = Plan({"-m", "m", "-i", "grpc", "-u", "10.0.0.1:9001", "--client"});
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->client_url, "grpc://10.0.0.1:9001");
  EXPECT_FALSE(grpc->local);
  auto v6 = Plan({"-m", "m", "-u", "[::1]:8000", "--client"});
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->client_url, "http://[::1]:8000");
  auto bare = Plan({"-m", "m", "-u", "10.0.0.1:9001"});
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->client_url.empty());
}

TEST(PerfPlanTest, UrlSchemeAndProtocolFlag) {
  // perf_analyzer's form: plain host:port, -i chooses.
  auto plain = Plan({"-m", "m", "-u", "127.0.0.1:8001", "-i", "grpc"});
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->protocol, PerfProtocol::kGrpc);
  EXPECT_EQ(plain->endpoint.port, 8001);
  EXPECT_EQ(Plan({"-m", "m", "-u", "127.0.0.1:8000"})->protocol, PerfProtocol::kHttp);
  // A grpc:// URL without -i speaks gRPC (it used to speak HTTP to the gRPC port).
  auto grpc = Plan({"-m", "m", "-u", "grpc://127.0.0.1:8001"});
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->protocol, PerfProtocol::kGrpc);
  EXPECT_EQ(grpc->endpoint.host, "127.0.0.1");
  EXPECT_EQ(grpc->endpoint.port, 8001);
  EXPECT_EQ(grpc->connections, 1u);  // gRPC's channel rule, not HTTP's
  auto http = Plan({"-m", "m", "-u", "http://127.0.0.1:8000", "-i", "http"});
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->protocol, PerfProtocol::kHttp);
  // An explicit -i that contradicts the scheme, even -i http (the default's value).
  auto clash = Plan({"-m", "m", "-u", "grpc://127.0.0.1:8001", "-i", "http"});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("-i http"), std::string::npos);
  EXPECT_NE(clash.status().message().find("grpc://127.0.0.1:8001"), std::string::npos);
  EXPECT_FALSE(Plan({"-m", "m", "-u", "http://127.0.0.1:8000", "-i", "grpc"}).ok());
  // --client keeps the URL's protocol.
  auto client = Plan({"-m", "m", "-u", "grpc://10.0.0.1:9001", "--client"});
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->client_url, "grpc://10.0.0.1:9001");
  auto bad = Plan({"-m", "m", "-u", "grcp://h:1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("grcp"), std::string::npos);
}

TEST(PerfPlanTest, RequestRateMode) {
  auto p = Plan({"-m", "m", "--request-rate-range", "100:300:100", "--request-distribution",
                 "poisson", "--input-data", "data.json"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mode, LoadMode::kRequestRate);
  EXPECT_EQ(p->levels, (std::vector<double>{100, 200, 300}));
  EXPECT_EQ(p->distribution, Distribution::kPoisson);
  EXPECT_EQ(p->input_data, InputDataKind::kFile);
  EXPECT_EQ(p->input_file, "data.json");
}

TEST(PerfPlanTest, RejectsInconsistentFlags) {
  EXPECT_FALSE(Plan({"-m", "m", "--concurrency-range", "1", "--request-rate-range", "5"}).ok());
  EXPECT_FALSE(Plan({"-m", "m", "--concurrency-range", "1:0"}).ok());  // needs -l
  EXPECT_TRUE(Plan({"-m", "m", "--concurrency-range", "1:0", "-l", "10"}).ok());
  EXPECT_FALSE(Plan({"-m", "m", "-b", "0"}).ok());
  EXPECT_FALSE(Plan({"-m", "m", "--percentile", "100"}).ok());
  EXPECT_FALSE(Plan({"-m", "m", "--shape", "X"}).ok());
  EXPECT_THROW(Plan({"-m", "m", "-i", "tcp"}), CLI::ValidationError);
  EXPECT_THROW(Plan({"-m", "m", "--shared-memory", "cuda"}), CLI::ValidationError);
}

TEST(PerfPlanTest, HttpConnectionsFollowConcurrency) {
  auto p = Plan({"-m", "m", "--concurrency-range", "2:16:2"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->connections, 16u);
  auto g = Plan({"-m", "m", "-i", "grpc", "--concurrency-range", "2:16:2"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->connections, 3u);
  auto explicit_count = Plan({"-m", "m", "--connections", "5"});
  ASSERT_TRUE(explicit_count.ok());
  EXPECT_EQ(explicit_count->connections, 5u);
}

}  // namespace
}  // namespace quiver::bench
