#include "engine/model_version.h"

#include <spdlog/spdlog.h>

#include "engine/input_validator.h"

namespace quiver::engine {

ModelVersion::ModelVersion(std::shared_ptr<const ModelConfig> config, int64_t version,
                           std::string fingerprint)
    : config_(std::move(config)),
      version_(version),
      version_string_(std::to_string(version)),
      fingerprint_(std::move(fingerprint)) {}

ModelVersion::~ModelVersion() { Retire(); }

std::shared_ptr<ModelVersion> ModelVersion::Failed(std::shared_ptr<const ModelConfig> config,
                                                   int64_t version, Status error) {
  std::shared_ptr<ModelVersion> v(new ModelVersion(std::move(config), version, ""));
  v->load_error_ = std::move(error);
  return v;
}

std::shared_ptr<ModelVersion> ModelVersion::Load(std::shared_ptr<const ModelConfig> config,
                                                 const std::filesystem::path& model_dir,
                                                 int64_t version, std::string fingerprint,
                                                 const BackendRegistry& backends,
                                                 std::shared_ptr<Clock> clock,
                                                 bool hold_for_waiters) {
  std::shared_ptr<ModelVersion> v(new ModelVersion(config, version, std::move(fingerprint)));
  auto fail = [&](Status s) {
    v->load_error_ = s.WithContext("failed to load model '" + config->name() + "' version " +
                                   v->version_string_);
    spdlog::error("{}", v->load_error_.message());
    return v;
  };
  auto backend = backends.Find(config->backend());
  if (!backend.ok()) return fail(backend.status());
  if (Status s = (*backend)->ValidateConfig(*config); !s.ok()) return fail(s);

  std::vector<std::unique_ptr<BackendInstance>> instances;
  int index = 0;
  for (const auto& group : config->instance_group()) {
    const bool gpu = group.kind() == inference::ModelInstanceGroup::KIND_GPU;
    std::vector<int> devices(group.gpus().begin(), group.gpus().end());
    if (!gpu || devices.empty()) devices = {0};
    for (int device : devices) {
      for (int i = 0; i < group.count(); ++i) {
        InstanceContext context;
        context.config = config.get();
        context.version_dir = model_dir / v->version_string_;
        context.version = version;
        context.instance_index = index++;
        context.device = gpu ? DeviceKind::kGpu : DeviceKind::kCpu;
        context.device_id = device;
        auto instance = (*backend)->CreateInstance(context);
        if (!instance.ok()) return fail(instance.status());
        instances.push_back(std::move(instance).value());
      }
    }
  }
  if (instances.empty()) return fail(Status::InvalidArgument("no instances configured"));
  SchedulerOptions options = SchedulerOptions::FromConfig(*config, v->version_string_);
  options.hold_for_waiters = hold_for_waiters;
  v->scheduler_ =
      std::make_unique<Scheduler>(std::move(options), std::move(instances), std::move(clock));
  spdlog::info("loaded model '{}' version {} ({} instance(s), backend {})", config->name(),
               version, index, config->backend());
  return v;
}

bool ModelVersion::TryInfer(InferRequest& request, InferCallback& done) {
  entering_.fetch_add(1);
  if (retired_.load()) {
    if (entering_.fetch_sub(1) == 1) {
      std::lock_guard lock(retire_mutex_);
      retire_cv_.notify_all();
    }
    return false;
  }
  if (!load_error_.ok()) {
    done(Status::Unavailable(load_error_.message()));
  } else {
    auto batch = ValidateInferRequest(*config_, version_string_, request);
    if (!batch.ok()) {
      done(batch.status());
    } else {
      scheduler_->Enqueue(std::move(request), *batch, std::move(done));
    }
  }
  if (entering_.fetch_sub(1) == 1 && retired_.load()) {
    std::lock_guard lock(retire_mutex_);
    retire_cv_.notify_all();
  }
  return true;
}

void ModelVersion::Retire() {
  retired_.store(true);
  {
    std::unique_lock lock(retire_mutex_);
    retire_cv_.wait(lock, [&] { return entering_.load() == 0; });
  }
  if (scheduler_) scheduler_->Shutdown();
}

ModelStatistics ModelVersion::Statistics() const {
  if (scheduler_) return scheduler_->Statistics();
  ModelStatistics s;
  s.name = model();
  s.version = version_string_;
  return s;
}

size_t ModelVersion::PendingCount() const {
  return scheduler_ ? scheduler_->PendingCount() : 0;
}

}  // namespace quiver::engine
