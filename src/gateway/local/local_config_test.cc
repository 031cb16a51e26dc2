#include "gateway/local/local_config.h"

#include <gtest/gtest.h>

#include "testing/temp_repository.h"

namespace quiver::gateway {
namespace {

class LocalConfigTest : public ::testing::Test {
 protected:
  LocalConfigTest() {
    dir_.MakeDir("models");
    dir_.MakeDir("etc");
    dir_.MakeDir("models/m1");
    dir_.MakeDir("models/m2");
  }
  Result<std::vector<ServerSpec>> Servers(const std::string& yaml) {
    return ParseLocalServers(YAML::Load(yaml)["servers"], dir_.path() / "etc");
  }
  static std::string Error(const Status& s) { return s.message(); }
  testing::TempRepository dir_{"localcfg"};
};

TEST_F(LocalConfigTest, ParsesServersWithPathsRelativeToTheFile) {
  auto servers = Servers(R"(
servers:
  - name: a
    model_repository: ../models
    models: [m1, m2]
    args: [--exit-timeout-secs, "5"]
  - model_repository: )" +
                         (dir_.path() / "models").string() + R"(
)");
  ASSERT_TRUE(servers.ok()) << servers.status().ToString();
  ASSERT_EQ(servers->size(), 2u);
  const ServerSpec& a = (*servers)[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.model_repository, dir_.path() / "models");
  EXPECT_EQ(a.models, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(a.args, (std::vector<std::string>{"--exit-timeout-secs", "5"}));
  EXPECT_EQ((*servers)[1].name, "s2");  // default name: s<index+1>
  EXPECT_TRUE((*servers)[1].models.empty());
}

TEST_F(LocalConfigTest, AbsentOrNullIsNoServers) {
  auto absent = Servers("gateway: {}\n");
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->empty());
  auto null = Servers("servers:\n");
  ASSERT_TRUE(null.ok());
  EXPECT_TRUE(null->empty());
}

TEST_F(LocalConfigTest, ErrorsNameTheKeyPath) {
  struct Case {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"servers: {a: 1}", "servers: expected a list"},
      {"servers: [3]", "servers[0]: expected a map"},
      {"servers: [{model_repository: ../models, modles: [x]}]", "servers[0].modles: unknown key"},
      {"servers: [{name: a}]", "servers[0].model_repository: missing"},
      {"servers: [{model_repository: ../nowhere}]", "servers[0].model_repository: no directory"},
      {"servers: [{model_repository: ../models, models: m1}]",
       "servers[0].models: expected a list of strings"},
      {"servers: [{model_repository: ../models, models: [m1, m3]}]",
       "servers[0].models[1]: no model 'm3' in "},
      {"servers: [{model_repository: ../models, args: [[x]]}]",
       "servers[0].args[0]: expected a string"},
      {"servers: [{model_repository: ../models}, {name: s1, model_repository: ../models}]",
       "servers[1].name: 's1' is used twice"},
      {"servers: [{name: ../x, model_repository: ../models}]", "servers[0].name: use letters"},
  };
  for (const auto& c : cases) {
    auto r = Servers(c.yaml);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(Error(r.status()).rfind(c.error, 0), 0u) << c.yaml << " -> " << Error(r.status());
  }
}

TEST(PrometheusConfigTest, DefaultsAndValues) {
  auto absent = ParsePrometheus(YAML::Load("{}")["prometheus"]);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->enabled);
  EXPECT_EQ(absent->port, 9090);
  auto set = ParsePrometheus(YAML::Load("prometheus: {enabled: true, port: 0}")["prometheus"]);
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->enabled);
  EXPECT_EQ(set->port, 0);
}

TEST(PrometheusConfigTest, Errors) {
  struct Case {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"prometheus: [1]", "prometheus: expected a map"},
      {"prometheus: {enabled: yes please}", "prometheus.enabled: expected true or false"},
      {"prometheus: {port: 70000}", "prometheus.port: expected a port number"},
      {"prometheus: {port: x}", "prometheus.port: expected a port number"},
      {"prometheus: {address: 0.0.0.0}", "prometheus.address: unknown key"},
  };
  for (const auto& c : cases) {
    auto r = ParsePrometheus(YAML::Load(c.yaml)["prometheus"]);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(c.error, 0), 0u)
        << c.yaml << " -> " << r.status().message();
  }
}

}  // namespace
}  // namespace quiver::gateway
