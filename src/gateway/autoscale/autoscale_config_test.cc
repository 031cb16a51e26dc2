#include "gateway/autoscale/autoscale_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Result<AutoscaleConfig> Parse(const std::string& yaml, const std::filesystem::path& base = "/f") {
  return ParseAutoscaleConfig(YAML::Load(yaml)["autoscale"], base);
}

// The message of a failed parse ("" if it succeeded, so that EXPECT_THAT fails readably).
std::string Error(const std::string& yaml) {
  Result<AutoscaleConfig> r = Parse(yaml);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(AutoscaleConfigTest, AbsentOrEmptySectionGivesDefaults) {
  for (const char* yaml : {"gateway: {}", "autoscale:", "autoscale: {}"}) {
    Result<AutoscaleConfig> r = Parse(yaml);
    ASSERT_TRUE(r.ok()) << yaml << ": " << r.status().ToString();
    EXPECT_EQ(r->provider, AutoscaleProviderKind::kNone);
    EXPECT_EQ(r->interval, 5000ms);
    EXPECT_TRUE(r->models.empty());
  }
}

TEST(AutoscaleConfigTest, ParsesTheContractExample) {
  Result<AutoscaleConfig> r = Parse(R"(
autoscale:
  provider: local
  interval_ms: 2000
  model_repository: ../models
  models:
    emj_gnn: {min_replicas: 0, max_replicas: 4, target_queue_ms: 50,
              target_utilisation: 0.7, scale_up_window_s: 15,
              scale_down_window_s: 300, cooldown_s: 60}
    emj_dnn: {max_replicas: 2, cooldown_s: 1.5}
    emj_event:
)",
                                    "/srv/facility");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->provider, AutoscaleProviderKind::kLocal);
  EXPECT_EQ(AutoscaleProviderName(r->provider), "local");
  EXPECT_EQ(r->interval, 2000ms);
  EXPECT_EQ(r->model_repository, std::filesystem::path("/srv/models"));
  ASSERT_EQ(r->models.size(), 3u);
  const AutoscaleOptions& gnn = r->models.at("emj_gnn");
  EXPECT_EQ(gnn.min_replicas, 0u);
  EXPECT_EQ(gnn.max_replicas, 4u);
  EXPECT_DOUBLE_EQ(gnn.target_queue_ms, 50);
  EXPECT_DOUBLE_EQ(gnn.target_utilisation, 0.7);
  EXPECT_EQ(gnn.scale_up_window, 15s);
  EXPECT_EQ(gnn.scale_down_window, 300s);
  EXPECT_EQ(gnn.cooldown, 60s);
  EXPECT_EQ(r->models.at("emj_dnn").max_replicas, 2u);
  EXPECT_EQ(r->models.at("emj_dnn").cooldown, 1500ms);
  EXPECT_EQ(r->models.at("emj_event").max_replicas, AutoscaleOptions{}.max_replicas);

  const AutoscaleControllerOptions c = r->ControllerOptions();
  EXPECT_EQ(c.interval, 2000ms);
  EXPECT_EQ(c.models.size(), 3u);
}

TEST(AutoscaleConfigTest, KeepsAnAbsoluteRepository) {
  Result<AutoscaleConfig> r = Parse("autoscale: {provider: local, model_repository: /models}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->model_repository, std::filesystem::path("/models"));
}

TEST(AutoscaleConfigTest, RejectsUnknownKeysNamingThePath) {
  EXPECT_EQ(Error("autoscale: {providr: local}"), "autoscale.providr: unknown key");
  EXPECT_EQ(Error("autoscale: {models: {m: {max_replica: 3}}}"),
            "autoscale.models.m.max_replica: unknown key");
}

TEST(AutoscaleConfigTest, RejectsWrongTypesAndRanges) {
  EXPECT_EQ(Error("autoscale: {provider: aws}"),
            "autoscale.provider: expected none, local or kubernetes");
  EXPECT_EQ(Error("autoscale: {interval_ms: 0}"),
            "autoscale.interval_ms: expected an integer >= 1");
  EXPECT_EQ(Error("autoscale: {interval_ms: fast}"),
            "autoscale.interval_ms: expected an integer >= 1");
  EXPECT_EQ(Error("autoscale: {models: {m: {max_replicas: 0}}}"),
            "autoscale.models.m.max_replicas: expected an integer >= 1");
  EXPECT_EQ(Error("autoscale: {models: {m: {min_replicas: -1}}}"),
            "autoscale.models.m.min_replicas: expected an integer >= 0");
  EXPECT_EQ(Error("autoscale: {models: {m: {min_replicas: 1.5}}}"),
            "autoscale.models.m.min_replicas: expected an integer >= 0");
  EXPECT_EQ(Error("autoscale: {models: {m: {target_utilisation: 1.5}}}"),
            "autoscale.models.m.target_utilisation: expected a number in [0, 1]");
  EXPECT_EQ(Error("autoscale: {models: {m: {cooldown_s: [1]}}}"),
            "autoscale.models.m.cooldown_s: expected a number >= 0 (seconds)");
  EXPECT_EQ(Error("autoscale: {models: [m]}"), "autoscale.models: expected a map of model names");
  EXPECT_EQ(Error("autoscale: [local]"), "autoscale: expected a map");
}

TEST(AutoscaleConfigTest, RejectsInconsistentOptions) {
  EXPECT_EQ(Error("autoscale: {models: {m: {min_replicas: 5, max_replicas: 2}}}"),
            "autoscale.models.m.min_replicas: must be <= max_replicas (2)");
  EXPECT_THAT(Error("autoscale: {models: {m: {target_queue_ms: 0, target_utilisation: 0}}}"),
              HasSubstr("autoscale.models.m: "));
  EXPECT_EQ(Error("autoscale: {provider: local}"),
            "autoscale.model_repository: required when provider is local");
}

// The manifests' facility.yaml (deploy/k8s/base) must be one the gateway accepts.
TEST(AutoscaleConfigTest, AcceptsTheKubernetesFacilityFile) {
  const std::filesystem::path file =
      std::filesystem::path(QUIVER_SOURCE_DIR) / "deploy/k8s/base/gateway/facility.yaml";
  const YAML::Node root = YAML::LoadFile(file.string());
  Result<AutoscaleConfig> r = ParseAutoscaleConfig(root["autoscale"], file.parent_path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->provider, AutoscaleProviderKind::kKubernetes);
  EXPECT_EQ(r->models.count("emj_gnn"), 1u);
}

}  // namespace
}  // namespace quiver::gateway
