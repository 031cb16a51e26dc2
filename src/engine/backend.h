#pragma once
// Backend: how a model version is executed. One BackendInstance per model instance
// (instance_group count); each is driven by one thread at a time.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "service/inference_service.h"

namespace quiver::engine {

// Where an instance runs.
enum class DeviceKind { kCpu, kGpu };

// Everything a backend needs to create one instance of a model version.
struct InstanceContext {
  const ModelConfig* config = nullptr;  // validated; outlives the instance
  std::filesystem::path version_dir;    // <repo>/<model>/<version>
  int64_t version = 0;
  int instance_index = 0;               // 0..count-1 across all groups
  DeviceKind device = DeviceKind::kCpu;
  int device_id = 0;                    // GPU index when device == kGpu
};

// Time spent in the three phases Triton reports, filled by the backend.
struct ComputeTimes {
  uint64_t input_ns = 0;
  uint64_t infer_ns = 0;
  uint64_t output_ns = 0;
};

// One execution: batched inputs (one tensor per provided model input, in any order,
// already validated against the config) and the outputs to produce.
struct BackendBatch {
  std::span<const Tensor> inputs;
  std::span<const std::string> requested_outputs;  // never empty
  int64_t batch_size = 0;                          // 0 when max_batch_size == 0
};

// A loaded, executable copy of a model version. Not thread-safe: the scheduler calls
// Execute from one thread at a time.
class BackendInstance {
 public:
  virtual ~BackendInstance() = default;
  // Produces exactly the requested outputs, in requested order, with a leading batch
  // dimension of batch.batch_size when the model batches. Errors are per batch.
  virtual Status Execute(const BackendBatch& batch, std::vector<Tensor>& outputs,
                         ComputeTimes& times) = 0;
};

// Creates instances for one backend kind ("pytorch", "identity", ...).
class Backend {
 public:
  virtual ~Backend() = default;
  // Checks config fields specific to this backend (called once per load).
  virtual Status ValidateConfig(const ModelConfig& config) const { return Status::Ok(); }
  virtual Result<std::unique_ptr<BackendInstance>> CreateInstance(
      const InstanceContext& context) const = 0;
};

// Backends by name. The Engine resolves `backend`/`platform` of a config here.
class BackendRegistry {
 public:
  void Register(std::string name, std::shared_ptr<const Backend> backend);
  // NOT_FOUND naming the backend and the known ones.
  Result<std::shared_ptr<const Backend>> Find(const std::string& name) const;

 private:
  std::map<std::string, std::shared_ptr<const Backend>> backends_;
};

}  // namespace quiver::engine
