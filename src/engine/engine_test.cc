#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include "engine/backends/identity_backend.h"
#include "testing/infer_helpers.h"
#include "testing/temp_repository.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;

// Identity semantics, but CreateInstance fails for one chosen version: lets a test
// load a model whose versions succeed and fail independently.
class FlakyBackend final : public Backend {
 public:
  explicit FlakyBackend(int64_t bad_version) : bad_version_(bad_version) {}
  Result<std::unique_ptr<BackendInstance>> CreateInstance(
      const InstanceContext& context) const override {
    if (context.version == bad_version_) {
      return Status::Internal("weights of version " + std::to_string(bad_version_) +
                              " are corrupt");
    }
    return identity_.CreateInstance(context);
  }

 private:
  int64_t bad_version_;
  IdentityBackend identity_;
};

std::string IdentityConfig(const std::string& name, const std::string& backend = "identity",
                           const std::string& extra = "") {
  return "name: \"" + name + "\"\nbackend: \"" + backend +
         "\"\nmax_batch_size: 8\n"
         "input { name: \"IN\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
         "output { name: \"OUT\" data_type: TYPE_FP32 dims: [ -1 ] }\n" +
         extra;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<BackendRegistry>();
    registry_->Register("identity", std::make_shared<IdentityBackend>());
    registry_->Register("flaky", std::make_shared<FlakyBackend>(2));
  }
  void TearDown() override { engine_.reset(); }

  void Start(ModelControlMode mode = ModelControlMode::kNone,
             std::vector<std::string> startup = {}) {
    EngineOptions o;
    o.model_repositories = {repo_.path()};
    o.control_mode = mode;
    o.startup_models = std::move(startup);
    o.poll_interval = std::chrono::milliseconds(0);
    o.backends = registry_;
    auto e = Engine::Create(std::move(o));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }

  Result<InferResponse> Infer(const std::string& model, const std::string& version = "",
                              std::vector<float> values = {1, 2, 3}) {
    InferRequest r;
    r.model = model;
    r.version = version;
    r.id = "req";
    r.inputs = {MakeTensor<float>("IN", DataType::kFp32,
                                  {1, static_cast<int64_t>(values.size())}, values)};
    return quiver::testing::InferAndWait(*engine_, std::move(r));
  }

  quiver::testing::TempRepository repo_{"engine"};  // outlives engine_
  std::shared_ptr<BackendRegistry> registry_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, ServesIdentityAndDescribesIt) {
  repo_.WriteModel("id", IdentityConfig("id"), {1});
  Start();
  EXPECT_TRUE(engine_->Live());
  EXPECT_TRUE(engine_->Ready());
  EXPECT_TRUE(engine_->ModelReady("id", ""));
  EXPECT_TRUE(engine_->ModelReady("id", "1"));
  auto r = Infer("id");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "id");
  EXPECT_EQ(r->version, "1");
  EXPECT_EQ(r->id, "req");
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_EQ(r->outputs[0].name, "OUT");
  EXPECT_EQ(r->outputs[0].shape, (Shape{1, 3}));
  EXPECT_EQ(r->outputs[0].data_as<float>()[2], 3.0f);

  auto meta = engine_->GetModelMetadata("id", "");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->versions, std::vector<std::string>{"1"});
  EXPECT_EQ(meta->platform, "identity");
  ASSERT_EQ(meta->inputs.size(), 1u);
  EXPECT_EQ(meta->inputs[0].shape, (Shape{-1, -1}));
  EXPECT_EQ(meta->inputs[0].datatype, DataType::kFp32);
  auto config = engine_->GetModelConfig("id", "1");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->max_batch_size(), 8);
}

TEST_F(EngineTest, UnknownModelAndVersion) {
  repo_.WriteModel("id", IdentityConfig("id"), {1});
  Start();
  // Codes and texts as Triton's (core ModelLifeCycle::GetModel).
  auto nope = Infer("nope");
  EXPECT_EQ(nope.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(nope.status().message(), "Request for unknown model: 'nope' is not found");
  auto seven = Infer("id", "7");
  EXPECT_EQ(seven.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(seven.status().message(), "Request for unknown model: 'id' version 7 is not found");
  EXPECT_EQ(Infer("id", "0").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Infer("id", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(engine_->ModelReady("nope", ""));
  EXPECT_EQ(engine_->GetModelMetadata("nope", "").status().code(), StatusCode::kNotFound);
}

TEST_F(EngineTest, InvalidRequestIsRejectedBeforeTheBackend) {
  repo_.WriteModel("id", IdentityConfig("id"), {1});
  Start();
  InferRequest r;
  r.model = "id";
  std::vector<double> v = {1.0};
  r.inputs = {MakeTensor<double>("IN", DataType::kFp64, {1, 1}, v)};
  std::promise<Status> p;
  engine_->Infer(std::move(r), [&](Result<InferResponse> res) { p.set_value(res.status()); });
  Status s = p.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("FP64"), std::string::npos) << s.message();
}

TEST_F(EngineTest, BrokenModelDoesNotAffectOthers) {
  repo_.WriteModel("good", IdentityConfig("good"), {1});
  repo_.WriteModel("bad", "name: \"bad\"\nmax_batch_size: -3\n", {1});
  repo_.WriteModel("nobackend", IdentityConfig("nobackend", "tensorflow"), {1});
  Start();
  EXPECT_TRUE(Infer("good").ok());
  EXPECT_FALSE(engine_->Ready());
  EXPECT_FALSE(engine_->ModelReady("bad", ""));
  auto index = engine_->Index();
  ASSERT_TRUE(index.ok());
  std::map<std::string, RepositoryEntry> by_name;
  for (const auto& e : *index) by_name[e.name] = e;
  EXPECT_EQ(by_name["good"].state, "READY");
  EXPECT_EQ(by_name["bad"].state, "UNAVAILABLE");
  EXPECT_NE(by_name["bad"].reason.find("max_batch_size"), std::string::npos)
      << by_name["bad"].reason;
  EXPECT_NE(by_name["nobackend"].reason.find("tensorflow"), std::string::npos)
      << by_name["nobackend"].reason;
  // As Triton: no loaded version is NOT_FOUND ("has no available versions"), with our reason.
  auto bad = Infer("bad");
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find(
                "Request for unknown model: 'bad' has no available versions"),
            std::string::npos)
      << bad.status().message();
}

TEST_F(EngineTest, VersionsLoadIndependently) {
  repo_.WriteModel("m", IdentityConfig("m", "flaky", "version_policy { all { } }\n"), {1, 2, 3});
  Start();
  EXPECT_TRUE(engine_->ModelReady("m", "1"));
  EXPECT_FALSE(engine_->ModelReady("m", "2"));
  EXPECT_TRUE(engine_->ModelReady("m", "3"));
  auto r = Infer("m");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, "3");
  auto bad = Infer("m", "2");
  EXPECT_EQ(bad.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(bad.status().message().find(
                "Request for unknown model: 'm' version 2 is not at ready state"),
            std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("corrupt"), std::string::npos);
  auto index = engine_->Index();
  ASSERT_TRUE(index.ok());
  int unavailable = 0;
  for (const auto& e : *index) {
    if (e.version == "2") {
      ++unavailable;
      EXPECT_NE(e.reason.find("corrupt"), std::string::npos);
    }
  }
  EXPECT_EQ(unavailable, 1);
}

TEST_F(EngineTest, VersionPolicyLatestTwo) {
  repo_.WriteModel(
      "m", IdentityConfig("m", "identity", "version_policy { latest { num_versions: 2 } }\n"),
      {1, 2, 3});
  Start();
  EXPECT_FALSE(engine_->ModelReady("m", "1"));
  EXPECT_TRUE(engine_->ModelReady("m", "2"));
  EXPECT_TRUE(engine_->ModelReady("m", "3"));
  auto meta = engine_->GetModelMetadata("m", "");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->versions, (std::vector<std::string>{"2", "3"}));
}

TEST_F(EngineTest, ExplicitLoadAndUnload) {
  repo_.WriteModel("a", IdentityConfig("a"), {1});
  repo_.WriteModel("b", IdentityConfig("b"), {1});
  Start(ModelControlMode::kExplicit, {"a"});
  EXPECT_TRUE(engine_->ModelReady("a", ""));
  EXPECT_FALSE(engine_->ModelReady("b", ""));
  EXPECT_EQ(Infer("b").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(engine_->Load("b").ok());
  EXPECT_TRUE(Infer("b").ok());
  ASSERT_TRUE(engine_->Unload("a").ok());
  auto gone = Infer("a");
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(gone.status().message(), "Request for unknown model: 'a' is not found");
  // As Triton: unloading what is not loaded succeeds; loading what the repository does not
  // have is INTERNAL "failed to poll".
  EXPECT_TRUE(engine_->Unload("a").ok());
  EXPECT_TRUE(engine_->Unload("zzz").ok());
  Status missing = engine_->Load("zzz");
  EXPECT_EQ(missing.code(), StatusCode::kInternal);
  EXPECT_NE(missing.message().find("failed to load 'zzz', failed to poll from model repository"),
            std::string::npos)
      << missing.message();
  auto index = engine_->Index();
  ASSERT_TRUE(index.ok());
  bool a_listed = false;
  for (const auto& e : *index) {
    if (e.name == "a") {
      a_listed = true;
      EXPECT_EQ(e.state, "UNAVAILABLE");
    }
  }
  EXPECT_TRUE(a_listed);
}

TEST_F(EngineTest, LoadUnloadNeedExplicitMode) {
  repo_.WriteModel("a", IdentityConfig("a"), {1});
  Start(ModelControlMode::kNone);
  // As Triton (LoadUnloadModel): UNAVAILABLE, with its words.
  for (Status s : {engine_->Load("a"), engine_->Unload("a")}) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_EQ(s.message(), "explicit model load / unload is not allowed if polling is enabled");
  }
}

TEST_F(EngineTest, PollPicksUpNewVersionDuringTraffic) {
  repo_.WriteModel("m", IdentityConfig("m"), {1});
  repo_.WriteModel("other", IdentityConfig("other"), {1});
  Start(ModelControlMode::kPoll);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, successes{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      const std::string model = t % 2 ? "m" : "other";
      while (!stop.load()) {
        auto r = Infer(model);
        (r.ok() ? successes : failures)++;
      }
    });
  }
  // Traffic is flowing before the repository changes and still flows after (waiting on
  // the counters, not on time: on a loaded machine the clients may start late).
  const auto wait_for_successes = [&](int n) {
    while (successes.load() < n && failures.load() == 0) std::this_thread::yield();
  };
  wait_for_successes(4);
  repo_.AddVersion("m", 2);
  ASSERT_TRUE(engine_->Poll().ok());
  EXPECT_TRUE(engine_->ModelReady("m", "2"));
  fs::remove_all(repo_.path() / "m" / "1");
  ASSERT_TRUE(engine_->Poll().ok());
  EXPECT_FALSE(engine_->ModelReady("m", "1"));
  repo_.WriteModel("late", IdentityConfig("late"), {1});
  ASSERT_TRUE(engine_->Poll().ok());
  EXPECT_TRUE(engine_->ModelReady("late", ""));
  wait_for_successes(successes.load() + 4);
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(successes.load(), 8);
  auto r = Infer("m");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, "2");
  fs::remove_all(repo_.path() / "late");
  ASSERT_TRUE(engine_->Poll().ok());
  EXPECT_EQ(Infer("late").status().code(), StatusCode::kNotFound);
}

TEST_F(EngineTest, PollReloadsChangedConfig) {
  repo_.WriteModel("m", IdentityConfig("m"), {1});
  Start(ModelControlMode::kPoll);
  EXPECT_EQ(engine_->GetModelConfig("m", "")->max_batch_size(), 8);
  repo_.Write("m/config.pbtxt",
              IdentityConfig("m").replace(IdentityConfig("m").find("max_batch_size: 8"), 17,
                                          "max_batch_size: 4"));
  ASSERT_TRUE(engine_->Poll().ok());
  EXPECT_EQ(engine_->GetModelConfig("m", "")->max_batch_size(), 4);
  // A broken edit keeps the loaded version serving and reports the error.
  repo_.Write("m/config.pbtxt", "max_batch_size: [");
  EXPECT_FALSE(engine_->Poll().ok());
  EXPECT_TRUE(Infer("m").ok());
  EXPECT_FALSE(engine_->Ready());
}

TEST_F(EngineTest, StatisticsCountRequests) {
  repo_.WriteModel("id", IdentityConfig("id"), {1});
  Start();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Infer("id").ok());
  auto stats = engine_->GetStatistics("id", "");
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].name, "id");
  EXPECT_EQ((*stats)[0].version, "1");
  EXPECT_EQ((*stats)[0].success.count, 5u);
  EXPECT_EQ((*stats)[0].inference_count, 5u);
  EXPECT_EQ(engine_->GetStatistics("nope", "").status().code(), StatusCode::kNotFound);
  auto all = engine_->GetStatistics("", "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

// Many threads infer while others load, unload and poll; run under TSan in CI.
TEST_F(EngineTest, ConcurrentTrafficAndLifecycleStress) {
  repo_.WriteModel("steady",
                   IdentityConfig("steady", "identity",
                                  "dynamic_batching { max_queue_delay_microseconds: 50 }\n"
                                  "instance_group [ { count: 2 } ]\n"),
                   {1});
  repo_.WriteModel("churn", IdentityConfig("churn"), {1});
  Start(ModelControlMode::kExplicit, {"*"});
  std::atomic<int> steady_failures{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        std::vector<float> v = {static_cast<float>(t), static_cast<float>(i)};
        auto r = Infer(t % 3 == 2 ? "churn" : "steady", "", v);
        if (t % 3 != 2) {
          if (!r.ok() || r->outputs[0].data_as<float>()[1] != static_cast<float>(i)) {
            steady_failures++;
          }
        } else if (!r.ok()) {
          EXPECT_TRUE(r.status().code() == StatusCode::kNotFound ||
                      r.status().code() == StatusCode::kUnavailable)
              << r.status().ToString();
        }
      }
      done++;
    });
  }
  threads.emplace_back([&] {
    while (done.load() < 6) {
      (void)engine_->Unload("churn");
      (void)engine_->Load("churn");
      (void)engine_->Index();
      (void)engine_->GetStatistics("", "");
    }
  });
  for (auto& th : threads) th.join();
  EXPECT_EQ(steady_failures.load(), 0);
}

}  // namespace
}  // namespace quiver::engine
