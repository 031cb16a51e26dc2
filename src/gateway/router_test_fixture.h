#pragma once
// RouterTest: a Router (no poller thread; tests call PollOnce) over in-process upstreams,
// each an Engine with identity models behind a FakeInferenceService that counts requests
// and can fail or hold them. Shared by the Router's and the admin API's tests.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gateway/router.h"
#include "testing/engine_fixture.h"
#include "testing/fake_inference_service.h"
#include "testing/infer_helpers.h"

namespace quiver::gateway {

using testing::FakeInferenceService;

// An upstream: an Engine with identity models, behind a fake that counts and can fail or
// hold requests.
struct TestUpstream {
  testing::TestEngine engine;
  std::unique_ptr<FakeInferenceService> fake;
};

class RouterTest : public ::testing::Test {
 protected:
  // Models named in `loaded` are loaded at start; `unloaded` are only in the repository.
  void AddServer(const std::string& url, std::vector<std::string> loaded,
                 std::vector<std::string> unloaded = {}) {
    testing::TestEngineBuilder builder("router");
    std::vector<std::string> all = loaded;
    all.insert(all.end(), unloaded.begin(), unloaded.end());
    for (const auto& m : all) {
      builder.WithModel(m, "identity", "max_batch_size: 0\n" + testing::IoConfig("TYPE_FP32"));
    }
    builder.WithStartupModels(loaded);
    auto& up = servers_[url];
    up.engine = builder.Build();
    ASSERT_TRUE(up.engine);
    up.fake = std::make_unique<FakeInferenceService>(*up.engine);
    up.fake->set_mode(FakeInferenceService::Mode::kAnswer);
  }

  void MakeRouter(RouterOptions options = {}) {
    options.start_poller = false;
    options.factory = [this](const std::string& url) -> Result<std::shared_ptr<InferenceService>> {
      auto it = servers_.find(url);
      if (it == servers_.end()) return Status::InvalidArgument("no test server " + url);
      return std::shared_ptr<InferenceService>(it->second.fake.get(), [](InferenceService*) {});
    };
    auto created = Router::Create(std::move(options), clock_, nullptr);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    router_ = std::move(created).value();
  }

  static InferRequest Request(const std::string& model, std::string id = "") {
    InferRequest r;
    r.model = model;
    r.id = std::move(id);
    std::vector<float> values{1, 2, 3};
    r.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {3}, values));
    return r;
  }

  FakeInferenceService& fake(const std::string& url) { return *servers_.at(url).fake; }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::map<std::string, TestUpstream> servers_;
  std::unique_ptr<Router> router_;  // declared last: destroyed before the servers
};

}  // namespace quiver::gateway
