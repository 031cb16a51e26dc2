#include "engine/backends/torch_backend.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/Stream.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/script.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/malloc_tuning.h"
#include "engine/model_config.h"

namespace quiver::engine {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t ElapsedNs(Clock::time_point from, Clock::time_point to) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

constexpr std::string_view kThreadCountParameter = "INTRA_OP_THREAD_COUNT";
constexpr std::string_view kDefaultModelFilename = "model.pt";

// The libtorch element type of a config data type; nullopt when libtorch has none.
std::optional<at::ScalarType> ScalarTypeFor(inference::DataType type) {
  switch (type) {
    case inference::TYPE_BOOL:
      return at::kBool;
    case inference::TYPE_UINT8:
      return at::kByte;
    case inference::TYPE_INT8:
      return at::kChar;
    case inference::TYPE_INT16:
      return at::kShort;
    case inference::TYPE_INT32:
      return at::kInt;
    case inference::TYPE_INT64:
      return at::kLong;
    case inference::TYPE_FP16:
      return at::kHalf;
    case inference::TYPE_BF16:
      return at::kBFloat16;
    case inference::TYPE_FP32:
      return at::kFloat;
    case inference::TYPE_FP64:
      return at::kDouble;
    default:
      return std::nullopt;
  }
}

// N for a name ending in "__<N>" (decimal digits only); nullopt otherwise.
std::optional<size_t> IndexSuffix(std::string_view name) {
  const size_t pos = name.rfind("__");
  if (pos == std::string_view::npos || pos + 2 == name.size()) return std::nullopt;
  size_t index = 0;
  const char* first = name.data() + pos + 2;
  const char* last = name.data() + name.size();
  auto [end, ec] = std::from_chars(first, last, index);
  if (ec != std::errc() || end != last || *first == '+' || *first == '-') return std::nullopt;
  return index;
}

// libtorch bounds its own intra-op threads but not OpenBLAS's pool (Debian's torch calls
// OpenBLAS for matrix products), whose idle threads spin in sched_yield. Next to other busy
// threads (gRPC, other instances, other processes) that spinning took the server's
// simple_mlp throughput from ~84k to ~2.3k infer/s in one measurement here. So BLAS gets
// as many threads as torch's intra-op setting; found at run time, so that a libtorch built
// on another BLAS (or none) is unaffected.
void MatchBlasThreadsToTorch() {
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(std::max(1, at::get_num_threads()));
  }
}

// A one-line summary of a libtorch exception: no C++ backtrace, and for TorchScript
// interpreter failures the final "SomeError: what went wrong" line instead of the
// TorchScript traceback.
std::string TorchMessage(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string_view text = c10_error ? c10_error->what_without_backtrace() : e.what();
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  if (lines.empty()) return "unknown libtorch error";
  if (lines.size() > 1 && lines.front().find("TorchScript interpreter") != std::string_view::npos) {
    return std::string(lines.back());
  }
  return std::string(lines.front());
}

// Replaces one -1 in `shape` so that it holds `elements`; false when impossible.
bool ResolveShape(Shape& shape, int64_t elements) {
  int64_t known = 1;
  int64_t* wildcard = nullptr;
  for (int64_t& d : shape) {
    if (d == -1 && wildcard == nullptr) {
      wildcard = &d;
    } else if (d < 0) {
      return false;
    } else {
      known *= d;
    }
  }
  if (wildcard == nullptr) return known == elements;
  if (known == 0 || elements % known != 0) return false;
  *wildcard = elements / known;
  return true;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// `elements` elements of `dtype` in pinned (page-locked) host memory, as a view of `buffer`,
// which is reallocated only when too small and otherwise reused batch after batch. Copies
// between pinned memory and a GPU can be asynchronous; from pageable memory the CUDA driver
// stages the bytes itself and the copy blocks until it is done.
at::Tensor Staging(at::Tensor& buffer, at::ScalarType dtype, int64_t elements) {
  if (!buffer.defined() || buffer.scalar_type() != dtype || buffer.numel() < elements) {
    buffer = at::empty({std::max<int64_t>(elements, 1)},
                       at::TensorOptions().dtype(dtype).pinned_memory(true));
  }
  return buffer.narrow(0, 0, elements);
}

// Waits for a GPU instance's stream when a batch ends, unless Wait() already did: a batch
// that fails half-way (an invalid second input, forward() throwing) may still have copies in
// flight that read or write the staging buffers, which the next batch reuses.
class StreamDrain {
 public:
  explicit StreamDrain(std::optional<c10::Stream> stream) : stream_(stream) {}
  StreamDrain(const StreamDrain&) = delete;
  StreamDrain& operator=(const StreamDrain&) = delete;
  ~StreamDrain() {
    if (!stream_) return;
    try {
      stream_->synchronize();
    } catch (...) {  // a CUDA error; it fails the next batch too
    }
  }
  void Wait() {
    if (!stream_) return;
    const c10::Stream stream = *stream_;
    stream_.reset();
    stream.synchronize();
  }

 private:
  std::optional<c10::Stream> stream_;
};

// A config input and the forward() argument it feeds.
struct InputBinding {
  std::string name;
  size_t slot = 0;  // forward() argument index, self excluded
  DataType datatype = DataType::kInvalid;
  at::ScalarType dtype = at::kFloat;
  std::optional<Shape> reshape;  // backend shape without the batch dimension
};

// A config output and the element of forward()'s result it comes from.
struct OutputBinding {
  std::string name;
  size_t index = 0;  // element of the returned tuple/list
  DataType datatype = DataType::kInvalid;
  at::ScalarType dtype = at::kFloat;
  std::optional<Shape> dims;  // wire shape without the batch dimension, when reshaped
};

class TorchInstance final : public BackendInstance {
 public:
  TorchInstance(std::string model, torch::jit::Module module, bool batching,
                std::vector<InputBinding> inputs, std::vector<OutputBinding> outputs,
                std::vector<std::string> arg_names, std::vector<c10::IValue> arg_template,
                std::vector<bool> arg_has_default, at::Device device,
                std::optional<c10::Stream> stream)
      : model_(std::move(model)),
        module_(std::move(module)),
        batching_(batching),
        inputs_(std::move(inputs)),
        outputs_(std::move(outputs)),
        arg_names_(std::move(arg_names)),
        arg_template_(std::move(arg_template)),
        arg_has_default_(std::move(arg_has_default)),
        device_(device),
        stream_(stream),
        input_staging_(inputs_.size()) {}

  Status Execute(const BackendBatch& batch, std::vector<Tensor>& outputs,
                 ComputeTimes& times) override {
    try {
      return ExecuteOrThrow(batch, outputs, times);
    } catch (const std::exception& e) {
      return Status::Internal("model '" + model_ + "': forward() failed: " + TorchMessage(e));
    } catch (...) {
      return Status::Internal("model '" + model_ + "': forward() threw a non-standard exception");
    }
  }

 private:
  // An output on its way to the response: in host memory, or (`staged`) in this instance's
  // pinned staging buffer, valid only until the next batch.
  struct HostOutput {
    const OutputBinding* binding;
    at::Tensor value;
    bool staged;
  };

  // On a GPU instance everything below is queued on the instance's stream without waiting:
  // inputs go host -> pinned staging (memcpy) -> device, forward() launches its kernels,
  // outputs go device -> pinned staging; then one wait for the stream, and each output is
  // copied from staging into fresh host memory for the response.
  Status ExecuteOrThrow(const BackendBatch& batch, std::vector<Tensor>& outputs,
                        ComputeTimes& times) {
    c10::InferenceMode inference_mode;
    // A GPU instance's ops run on its device ("the current device" of ops that allocate)
    // and its stream; a CPU instance changes neither.
    c10::OptionalStreamGuard stream_guard;
    if (stream_) stream_guard.reset_stream(*stream_);
    StreamDrain drain(stream_);
    const Clock::time_point t0 = Clock::now();
    std::vector<c10::IValue> args = arg_template_;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const InputBinding& binding = inputs_[i];
      const Tensor* tensor = FindInput(batch, binding.name);
      if (tensor == nullptr) {
        if (arg_has_default_[binding.slot]) continue;  // template holds the default
        return Status::InvalidArgument("model '" + model_ + "': input '" + binding.name +
                                       "' is required (forward() argument '" +
                                       arg_names_[binding.slot] + "' has no default)");
      }
      auto wrapped = Wrap(binding, input_staging_[i], *tensor);
      if (!wrapped.ok()) return wrapped.status();
      args[binding.slot] = std::move(wrapped).value();
    }
    const Clock::time_point t1 = Clock::now();
    c10::IValue result = module_.forward(std::move(args));
    Clock::time_point t2 = Clock::now();

    const size_t count = batch.requested_outputs.size();
    if (output_staging_.size() < count) output_staging_.resize(count);
    std::vector<HostOutput> host;
    host.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      const std::string& requested = batch.requested_outputs[k];
      const OutputBinding* binding = FindOutput(requested);
      if (binding == nullptr) {
        return Status::InvalidArgument("model '" + model_ + "' has no output '" + requested + "'");
      }
      auto value = Select(*binding, result);
      if (!value.ok()) return value.status();
      host.push_back(ToHost(*binding, output_staging_[k], std::move(value).value()));
    }
    if (stream_) {
      // The one wait of the batch. infer_ns then covers the kernels and the copies back to
      // host memory (telling them apart would take CUDA events).
      drain.Wait();
      t2 = Clock::now();
    }

    outputs.clear();
    outputs.reserve(count);
    for (HostOutput& out : host) {
      auto tensor = ToResponse(out);
      if (!tensor.ok()) return tensor.status();
      outputs.push_back(std::move(tensor).value());
    }
    const Clock::time_point t3 = Clock::now();
    times.input_ns = ElapsedNs(t0, t1);
    times.infer_ns = ElapsedNs(t1, t2);
    times.output_ns = ElapsedNs(t2, t3);
    return Status::Ok();
  }

  static const Tensor* FindInput(const BackendBatch& batch, const std::string& name) {
    for (const Tensor& t : batch.inputs) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  const OutputBinding* FindOutput(const std::string& name) const {
    for (const OutputBinding& o : outputs_) {
      if (o.name == name) return &o;
    }
    return nullptr;
  }

  // The request's bytes as a libtorch tensor on the instance's device. On the CPU they are
  // not copied: the tensor's storage holds a reference to the Buffer, so an output that
  // aliases an input (a model returning its argument or a view of it) keeps the request's
  // memory alive. On a GPU they go through `staging` (pinned) and are copied to the device
  // asynchronously; the request's memory is no longer read once Wrap returns.
  Result<c10::IValue> Wrap(const InputBinding& binding, at::Tensor& staging,
                           const Tensor& tensor) const {
    if (tensor.datatype != binding.datatype) {
      return Status::InvalidArgument("model '" + model_ + "': input '" + binding.name + "' is " +
                                     std::string(DataTypeName(tensor.datatype)) + ", expected " +
                                     std::string(DataTypeName(binding.datatype)));
    }
    Shape shape;
    if (binding.reshape) {
      if (batching_) shape.push_back(tensor.shape.empty() ? 0 : tensor.shape[0]);
      shape.insert(shape.end(), binding.reshape->begin(), binding.reshape->end());
      if (!ResolveShape(shape, ElementCount(tensor.shape))) {
        return Status::InvalidArgument("model '" + model_ + "': input '" + binding.name +
                                       "' of shape " + ShapeToString(tensor.shape) +
                                       " cannot be reshaped to " + (batching_ ? "[batch]+" : "") +
                                       ShapeToString(*binding.reshape));
      }
    } else {
      shape = tensor.shape;
    }
    const size_t element_size = c10::elementSize(binding.dtype);
    const int64_t elements = ElementCount(shape);
    if (elements < 0 || static_cast<size_t>(elements) * element_size != tensor.data.size()) {
      return Status::InvalidArgument("model '" + model_ + "': input '" + binding.name + "' has " +
                                     std::to_string(tensor.data.size()) + " bytes, shape " +
                                     ShapeToString(shape) + " needs " +
                                     std::to_string(elements * static_cast<int64_t>(element_size)));
    }
    const auto options = at::TensorOptions().dtype(binding.dtype);
    if (stream_) {
      // The memcpy into pinned memory also aligns misaligned request bytes.
      at::Tensor pinned = Staging(staging, binding.dtype, elements).view(shape);
      if (elements > 0) std::memcpy(pinned.data_ptr(), tensor.data.data(), tensor.data.size());
      at::Tensor on_device = at::empty(shape, options.device(device_));
      on_device.copy_(pinned, /*non_blocking=*/true);
      return c10::IValue(std::move(on_device));
    }
    void* data = const_cast<std::byte*>(tensor.data.data());  // forward() does not write inputs
    at::Tensor wrapped;
    if (reinterpret_cast<uintptr_t>(data) % element_size != 0 || elements == 0) {
      // Misaligned bytes (e.g. inside a network message) would be undefined behaviour for
      // libtorch's kernels: copy them into an aligned tensor.
      wrapped = at::empty(shape, options);
      if (elements > 0) std::memcpy(wrapped.data_ptr(), data, tensor.data.size());
    } else {
      wrapped = torch::from_blob(
          data, shape, [keep = tensor.data](void*) {}, options);
    }
    return c10::IValue(std::move(wrapped));
  }

  // Element `binding.index` of forward()'s result, checked against the binding.
  Result<at::Tensor> Select(const OutputBinding& binding, const c10::IValue& result) const {
    at::Tensor value;
    size_t count = 1;
    if (result.isTensor()) {
      if (binding.index == 0) value = result.toTensor();
    } else if (result.isTuple()) {
      const auto& elements = result.toTupleRef().elements();
      count = elements.size();
      if (binding.index < count) {
        const c10::IValue& element = elements[binding.index];
        if (!element.isTensor()) return NotATensor(binding, element);
        value = element.toTensor();
      }
    } else if (result.isList()) {
      const c10::List<c10::IValue> list = result.toList();
      count = list.size();
      if (binding.index < count) {
        const c10::IValue element = list.get(binding.index);
        if (!element.isTensor()) return NotATensor(binding, element);
        value = element.toTensor();
      }
    } else {
      return NotATensor(binding, result);
    }
    if (binding.index >= count) {
      return Status::Internal("model '" + model_ + "': output '" + binding.name + "' is element " +
                              std::to_string(binding.index) + " of forward()'s result, which has " +
                              std::to_string(count) + " element(s)");
    }
    if (value.scalar_type() != binding.dtype) {
      return Status::Internal("model '" + model_ + "': output '" + binding.name + "' should be " +
                              std::string(DataTypeName(binding.datatype)) + " (" +
                              std::string(c10::toString(binding.dtype)) +
                              ") but forward() returned " +
                              std::string(c10::toString(value.scalar_type())));
    }
    return value;
  }

  // A host tensor is made contiguous; a tensor on the instance's GPU is queued for copying
  // into `staging` (pinned) on the instance's stream, to be read only after the stream is
  // drained. A tensor on another device (a model that moves its result) is copied at once.
  HostOutput ToHost(const OutputBinding& binding, at::Tensor& staging, at::Tensor value) const {
    if (value.is_cpu()) return {&binding, value.contiguous(), false};
    if (!stream_ || value.device() != device_) {
      return {&binding, value.to(at::kCPU).contiguous(), false};
    }
    at::Tensor pinned = Staging(staging, value.scalar_type(), value.numel()).view(value.sizes());
    pinned.copy_(value, /*non_blocking=*/true);
    return {&binding, std::move(pinned), true};
  }

  // The response tensor: borrows a host output's memory, or copies a staged one (the staging
  // buffer belongs to the next batch).
  Result<Tensor> ToResponse(HostOutput& out) const {
    const OutputBinding& binding = *out.binding;
    const at::Tensor& value = out.value;
    Shape shape(value.sizes().begin(), value.sizes().end());
    if (binding.dims) {
      const int64_t elements = value.numel();
      Shape wire;
      if (batching_) wire.push_back(shape.empty() ? 0 : shape[0]);
      wire.insert(wire.end(), binding.dims->begin(), binding.dims->end());
      if (!ResolveShape(wire, elements)) {
        return Status::Internal("model '" + model_ + "': output '" + binding.name + "' of shape " +
                                ShapeToString(shape) + " cannot be reshaped to its dims " +
                                ShapeToString(*binding.dims));
      }
      shape = std::move(wire);
    }
    Buffer data;
    if (out.staged) {
      data = Buffer::Copy(value.data_ptr(), value.nbytes());
    } else {
      auto holder = std::make_shared<const at::Tensor>(std::move(out.value));
      data = Buffer::Borrow(holder->data_ptr(), holder->nbytes(), holder);
    }
    return Tensor{binding.name, binding.datatype, std::move(shape), std::move(data)};
  }

  Status NotATensor(const OutputBinding& binding, const c10::IValue& value) const {
    return Status::Internal("model '" + model_ + "': output '" + binding.name +
                            "': forward() returned " + value.tagKind() +
                            ", expected a tensor (or a tuple/list of tensors)");
  }

  const std::string model_;
  torch::jit::Module module_;
  const bool batching_;
  const std::vector<InputBinding> inputs_;
  const std::vector<OutputBinding> outputs_;
  const std::vector<std::string> arg_names_;     // forward() arguments, self excluded
  const std::vector<c10::IValue> arg_template_;  // defaults, None where there is none
  const std::vector<bool> arg_has_default_;
  const at::Device device_;
  // GPU instances only: the instance's own stream (instances on one device then overlap;
  // on the default stream they would serialise), and its pinned staging buffers, one per
  // input binding and one per position in the requested outputs, grown on demand.
  const std::optional<c10::Stream> stream_;
  std::vector<at::Tensor> input_staging_;
  std::vector<at::Tensor> output_staging_;
};

// The INTRA_OP_THREAD_COUNT parameter: 0 when absent, -1 when malformed.
int ThreadCountParameter(const ModelConfig& config) {
  auto it = config.parameters().find(std::string(kThreadCountParameter));
  if (it == config.parameters().end()) return 0;
  const std::string& text = it->second.string_value();
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n <= 0) return -1;
  return n;
}

}  // namespace

Status TorchBackend::ValidateConfig(const ModelConfig& config) const {
  auto check = [&](const std::string& kind, const std::string& name, inference::DataType type) {
    if (ScalarTypeFor(type)) return Status::Ok();
    return Status::Unsupported("model '" + config.name() + "': " + kind + " '" + name + "' has " +
                               inference::DataType_Name(type) +
                               ", which the pytorch backend does not support");
  };
  for (const auto& in : config.input()) {
    QUIVER_RETURN_IF_ERROR(check("input", in.name(), in.data_type()));
  }
  for (const auto& out : config.output()) {
    QUIVER_RETURN_IF_ERROR(check("output", out.name(), out.data_type()));
  }
  if (ThreadCountParameter(config) < 0) {
    return Status::InvalidArgument("model '" + config.name() + "': parameter " +
                                   std::string(kThreadCountParameter) +
                                   " must be a positive integer");
  }
#ifndef QUIVER_WITH_CUDA
  for (const auto& group : config.instance_group()) {
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      return Status::Unsupported("model '" + config.name() +
                                 "': this build has no CUDA libtorch; set instance_group kind: "
                                 "KIND_CPU");
    }
  }
#endif
  return Status::Ok();
}

Result<std::unique_ptr<BackendInstance>> TorchBackend::CreateInstance(
    const InstanceContext& context) const {
  if (context.config == nullptr) return Status::Internal("pytorch backend: no model config");
  const ModelConfig& config = *context.config;
  QUIVER_RETURN_IF_ERROR(ValidateConfig(config));

  at::Device device(at::kCPU);
  std::optional<c10::Stream> stream;
  if (context.device == DeviceKind::kGpu) {
#ifdef QUIVER_WITH_CUDA
    if (!at::hasCUDA() || context.device_id < 0 ||
        static_cast<size_t>(context.device_id) >= at::getNumGPUs()) {
      return Status::Unavailable("model '" + config.name() + "': CUDA device " +
                                 std::to_string(context.device_id) + " is not available");
    }
    device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(context.device_id));
    try {
      // libtorch's pool hands out its streams round-robin (32 per device and priority).
      stream = c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device);
    } catch (const std::exception& e) {
      return Status::Unavailable("model '" + config.name() + "': CUDA device " +
                                 std::to_string(context.device_id) +
                                 ": no stream: " + TorchMessage(e));
    }
#else
    return Status::Unsupported("model '" + config.name() +
                               "': this build has no CUDA libtorch; set instance_group kind: "
                               "KIND_CPU");
#endif
  }

  if (const int threads = ThreadCountParameter(config); threads > 0) {
    at::set_num_threads(threads);  // process-wide
  }
  MatchBlasThreadsToTorch();
  PinMallocThresholds();  // process-wide: a model's intermediates are reused, not refaulted

  const std::string filename = config.default_model_filename().empty()
                                   ? std::string(kDefaultModelFilename)
                                   : config.default_model_filename();
  const std::filesystem::path path = context.version_dir / filename;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::InvalidArgument("model '" + config.name() + "': model file '" + path.string() +
                                   "' does not exist");
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(path.string(), device);
    module.eval();
  } catch (const std::exception& e) {
    return Status::InvalidArgument("model '" + config.name() + "': cannot load TorchScript file '" +
                                   path.string() + "': " + TorchMessage(e));
  }

  // forward()'s arguments, self excluded.
  std::vector<std::string> arg_names;
  std::vector<c10::IValue> arg_template;
  std::vector<bool> arg_has_default;
  try {
    const auto method = module.find_method("forward");
    if (!method) {
      return Status::InvalidArgument("model '" + config.name() + "': '" + path.string() +
                                     "' has no forward() method");
    }
    const auto& arguments = method->function().getSchema().arguments();
    for (size_t i = 1; i < arguments.size(); ++i) {
      arg_names.push_back(arguments[i].name());
      const auto& default_value = arguments[i].default_value();
      arg_has_default.push_back(default_value.has_value());
      arg_template.push_back(default_value ? *default_value : c10::IValue());
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("model '" + config.name() + "': cannot read forward() of '" +
                                   path.string() + "': " + TorchMessage(e));
  }
  const std::string signature = "forward(" + JoinNames(arg_names) + ")";

  bool positional = config.input_size() > 0;
  for (const auto& in : config.input()) positional = positional && IndexSuffix(in.name());
  std::vector<InputBinding> inputs;
  std::vector<bool> bound(arg_names.size(), false);
  for (const auto& in : config.input()) {
    InputBinding binding;
    binding.name = in.name();
    binding.dtype = *ScalarTypeFor(in.data_type());
    binding.datatype = ToDataType(in.data_type());
    if (in.has_reshape())
      binding.reshape = Shape(in.reshape().shape().begin(), in.reshape().shape().end());
    if (positional) {
      binding.slot = *IndexSuffix(in.name());
      if (binding.slot >= arg_names.size()) {
        return Status::InvalidArgument("model '" + config.name() + "': input '" + in.name() +
                                       "' binds to argument " + std::to_string(binding.slot) +
                                       " but " + signature + " takes " +
                                       std::to_string(arg_names.size()));
      }
    } else {
      size_t slot = 0;
      while (slot < arg_names.size() && arg_names[slot] != in.name()) ++slot;
      if (slot == arg_names.size()) {
        return Status::InvalidArgument(
            "model '" + config.name() + "': input '" + in.name() + "' matches no argument of " +
            signature +
            " (name inputs after forward()'s arguments, or INPUT__0, INPUT__1, ... by position)");
      }
      binding.slot = slot;
    }
    if (bound[binding.slot]) {
      return Status::InvalidArgument("model '" + config.name() + "': input '" + in.name() +
                                     "' binds to argument '" + arg_names[binding.slot] + "' of " +
                                     signature + ", which another input already binds");
    }
    bound[binding.slot] = true;
    inputs.push_back(std::move(binding));
  }
  for (size_t slot = 0; slot < arg_names.size(); ++slot) {
    if (!bound[slot] && !arg_has_default[slot]) {
      return Status::InvalidArgument("model '" + config.name() + "': argument '" + arg_names[slot] +
                                     "' of " + signature +
                                     " has no default and no config input binds to it");
    }
  }

  bool indexed = config.output_size() > 0;
  for (const auto& out : config.output()) indexed = indexed && IndexSuffix(out.name());
  std::vector<OutputBinding> outputs;
  for (int i = 0; i < config.output_size(); ++i) {
    const auto& out = config.output(i);
    OutputBinding binding;
    binding.name = out.name();
    binding.index = indexed ? *IndexSuffix(out.name()) : static_cast<size_t>(i);
    binding.dtype = *ScalarTypeFor(out.data_type());
    binding.datatype = ToDataType(out.data_type());
    if (out.has_reshape()) binding.dims = Shape(out.dims().begin(), out.dims().end());
    outputs.push_back(std::move(binding));
  }

  return std::unique_ptr<BackendInstance>(
      std::make_unique<TorchInstance>(config.name(), std::move(module), config.max_batch_size() > 0,
                                      std::move(inputs), std::move(outputs), std::move(arg_names),
                                      std::move(arg_template), std::move(arg_has_default), device,
                                      stream));
}

}  // namespace quiver::engine
