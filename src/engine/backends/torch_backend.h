#pragma once
// TorchBackend ("pytorch", config platform "pytorch_libtorch"): runs a TorchScript module
// with libtorch, following the conventions of Triton's PyTorch backend. No torch header
// is included here, so code that registers the backend does not compile against libtorch.
//
// Model file: <version_dir>/<default_model_filename>, "model.pt" when empty.
// Inputs: when every config input is named "<anything>__<N>" (INPUT__0, INPUT__1, ...)
//   input N is forward()'s N-th argument (after self); otherwise each config input binds to
//   the forward() argument of the same name. Unbound arguments must have defaults.
// Outputs: when every config output is named "<anything>__<N>", output N is element N of
//   the returned tuple/list (a single tensor is element 0); otherwise config order.
// Data types: BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64.
// reshape: an input with reshape is handed to forward() as [batch] + reshape.shape; an
//   output with reshape is returned as [batch] + dims.
// Parameters: INTRA_OP_THREAD_COUNT (a positive integer) calls at::set_num_threads at
//   instance creation. It is process-wide: the last model loaded decides for all models.
// Memory: creating an instance pins glibc malloc's thresholds once per process
//   (core/malloc_tuning.h; QUIVER_MALLOC_TUNING=off keeps glibc's defaults).
// GPU: instance kind KIND_GPU needs a build with QUIVER_WITH_CUDA (a CUDA libtorch).
//   Each GPU instance runs on its own CUDA stream and reuses its own pinned host buffers:
//   inputs are copied into them and on to the device, outputs back into them, all without
//   waiting, then one stream synchronize per batch; responses get copies in host memory.
//   compute_infer then includes the copies back to the host.

#include <memory>

#include "engine/backend.h"

namespace quiver::engine {

// Loads TorchScript modules. Stateless and thread-safe; each instance owns its own module.
class TorchBackend final : public Backend {
 public:
  // UNSUPPORTED for a tensor type libtorch cannot hold (UINT16/32/64, BYTES) or KIND_GPU
  // in a build without CUDA; INVALID_ARGUMENT for a malformed INTRA_OP_THREAD_COUNT.
  Status ValidateConfig(const ModelConfig& config) const override;
  // Loads the module and binds config tensors to forward()'s arguments and results.
  // INVALID_ARGUMENT when the file is missing or unreadable or a config input matches no
  // argument (the message lists forward()'s arguments); UNSUPPORTED for kGpu without CUDA.
  // The instance's Execute answers INTERNAL when forward() throws or returns a result that
  // does not match the config (type, count); on the CPU its outputs borrow libtorch's memory.
  Result<std::unique_ptr<BackendInstance>> CreateInstance(
      const InstanceContext& context) const override;
};

}  // namespace quiver::engine
