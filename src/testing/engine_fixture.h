#pragma once
// TestEngineBuilder: an Engine over a fresh TempRepository, in explicit control mode with
// every model loaded at start and no polling, as the frontend and client tests want it:
//
//   engine_ = TestEngineBuilder("http")
//                 .WithIdentityModels(kAllTypes)
//                 .WithFakeModel("gated", fake, "max_batch_size: 8\n" + IoConfig("TYPE_FP32"))
//                 .Build();
//   ASSERT_TRUE(engine_);
//
// TestEngine owns the Engine and the repository it serves, and destroys the Engine first.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/data_type.h"
#include "engine/backends/identity_backend.h"
#include "engine/engine.h"
#include "testing/fake_backend.h"
#include "testing/infer_helpers.h"
#include "testing/temp_repository.h"

namespace quiver::testing {

// One tensor of a model config: `kind` is "input" or "output", `dims` e.g. "-1" or "-1, 3".
inline std::string TensorConfig(std::string_view kind, std::string_view name,
                                std::string_view config_type, std::string_view dims = "-1") {
  return std::string(kind) + " { name: \"" + std::string(name) + "\" data_type: " +
         std::string(config_type) + " dims: [ " + std::string(dims) + " ] }\n";
}

// The identity layout: INPUT0 -> OUTPUT0 of `config_type` ("TYPE_FP32"), dims [ -1 ].
inline std::string IoConfig(std::string_view config_type) {
  return TensorConfig("input", "INPUT0", config_type) +
         TensorConfig("output", "OUTPUT0", config_type);
}

// An Engine and the TempRepository it serves; used like a std::unique_ptr<Engine>.
class TestEngine {
 public:
  TestEngine() = default;
  TestEngine(std::unique_ptr<TempRepository> repo, std::unique_ptr<engine::Engine> engine)
      : repo_(std::move(repo)), engine_(std::move(engine)) {}
  TestEngine(TestEngine&&) = default;
  TestEngine& operator=(TestEngine&& other) noexcept {
    reset();
    repo_ = std::move(other.repo_);
    engine_ = std::move(other.engine_);
    return *this;
  }
  ~TestEngine() { reset(); }

  // Destroys the Engine, then the repository.
  void reset() {
    engine_.reset();
    repo_.reset();
  }
  engine::Engine& operator*() const { return *engine_; }
  engine::Engine* operator->() const { return engine_.get(); }
  engine::Engine* get() const { return engine_.get(); }
  explicit operator bool() const { return engine_ != nullptr; }
  // The repository; tests may write into it (then Load) while the Engine runs.
  TempRepository& repo() const { return *repo_; }

 private:
  std::unique_ptr<TempRepository> repo_;  // declared first: outlives engine_
  std::unique_ptr<engine::Engine> engine_;
};

class TestEngineBuilder {
 public:
  // `label` names the repository directory (see TempRepository).
  explicit TestEngineBuilder(std::string_view label = "engine")
      : repo_(std::make_unique<TempRepository>(label)),
        registry_(std::make_shared<engine::BackendRegistry>()) {
    registry_->Register("identity", std::make_shared<engine::IdentityBackend>());
  }

  // For each type, IdentityModelName(type): an identity model INPUT0 -> OUTPUT0 of that
  // type, dims [ -1 ], no batching, one CPU instance.
  TestEngineBuilder& WithIdentityModels(std::span<const DataType> types) {
    for (DataType type : types) {
      WithModel(IdentityModelName(type), "identity",
                "max_batch_size: 0\n" + IoConfig(DataTypeConfigName(type)));
    }
    return *this;
  }

  // identity_pair: INPUT0 (FP32) and INPUT1 (INT32) -> OUTPUT0, OUTPUT1, dims [ -1 ], no
  // batching; for tests that mix raw, typed and shared-memory tensors.
  TestEngineBuilder& WithIdentityPairModel() {
    return WithModel("identity_pair", "identity",
                     "max_batch_size: 0\n" + TensorConfig("input", "INPUT0", "TYPE_FP32") +
                         TensorConfig("input", "INPUT1", "TYPE_INT32") +
                         TensorConfig("output", "OUTPUT0", "TYPE_FP32") +
                         TensorConfig("output", "OUTPUT1", "TYPE_INT32"));
  }

  // Model `name` (version 1) of `backend` ("identity", or one given to WithBackend):
  // config.pbtxt is the name and backend lines followed by `body` (max_batch_size,
  // inputs, outputs, batching), plus one CPU instance unless `body` has an instance_group.
  TestEngineBuilder& WithModel(const std::string& name, std::string_view backend,
                               const std::string& body) {
    std::string config = "name: \"" + name + "\"\nbackend: \"" + std::string(backend) + "\"\n";
    config += body;
    if (body.find("instance_group") == std::string::npos) {
      config += "instance_group [ { count: 1 kind: KIND_CPU } ]\n";
    }
    repo_->WriteModel(name, config);
    return *this;
  }

  // Model `name` served by `fake` (as the backend "fake_<name>"); `body` as for WithModel.
  TestEngineBuilder& WithFakeModel(const std::string& name, std::shared_ptr<FakeBackend> fake,
                                   const std::string& body) {
    WithBackend("fake_" + name, std::move(fake));
    return WithModel(name, "fake_" + name, body);
  }

  // Registers `backend` under `name` (replacing what was there).
  TestEngineBuilder& WithBackend(const std::string& name,
                                 std::shared_ptr<engine::Backend> backend) {
    registry_->Register(name, std::move(backend));
    return *this;
  }

  // Another repository, searched before the temporary one (e.g. the shipped models/).
  TestEngineBuilder& WithRepository(std::filesystem::path path) {
    extra_repositories_.push_back(std::move(path));
    return *this;
  }

  // The models loaded at start ("*", every model, unless given).
  TestEngineBuilder& WithStartupModels(std::vector<std::string> models) {
    startup_models_ = std::move(models);
    return *this;
  }

  // The temporary repository, to write models the helpers above do not cover.
  TempRepository& repo() { return *repo_; }

  // Creates the Engine (the builder is spent). A failure is a gtest failure and an empty
  // TestEngine, so that fixtures write `engine_ = ....Build(); ASSERT_TRUE(engine_);`.
  TestEngine Build() {
    engine::EngineOptions o;
    o.model_repositories = extra_repositories_;
    o.model_repositories.push_back(repo_->path());
    o.control_mode = engine::ModelControlMode::kExplicit;
    o.startup_models = startup_models_;
    o.poll_interval = std::chrono::milliseconds(0);
    o.backends = registry_;
    auto created = engine::Engine::Create(std::move(o));
    if (!created.ok()) {
      ADD_FAILURE() << "engine: " << created.status().ToString();
      return TestEngine();
    }
    return TestEngine(std::move(repo_), std::move(created).value());
  }

 private:
  std::unique_ptr<TempRepository> repo_;
  std::shared_ptr<engine::BackendRegistry> registry_;
  std::vector<std::filesystem::path> extra_repositories_;
  std::vector<std::string> startup_models_{"*"};
};

}  // namespace quiver::testing
