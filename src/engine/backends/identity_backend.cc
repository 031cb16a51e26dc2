#include "engine/backends/identity_backend.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace quiver::engine {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Output i of the config paired with the name of input i.
struct Pair {
  std::string output;
  std::string input;
};

class IdentityInstance final : public BackendInstance {
 public:
  IdentityInstance(std::string model, std::vector<Pair> pairs)
      : model_(std::move(model)), pairs_(std::move(pairs)) {}

  Status Execute(const BackendBatch& batch, std::vector<Tensor>& outputs,
                 ComputeTimes& times) override {
    const uint64_t start = NowNs();
    outputs.clear();
    outputs.reserve(batch.requested_outputs.size());
    for (const std::string& requested : batch.requested_outputs) {
      const Pair* pair = FindPair(requested);
      if (pair == nullptr) {
        return Status::InvalidArgument("model '" + model_ + "' has no output '" + requested + "'");
      }
      const Tensor* input = FindInput(batch, pair->input);
      if (input == nullptr) {
        return Status::InvalidArgument("model '" + model_ + "': output '" + requested +
                                       "' needs input '" + pair->input +
                                       "', which the request did not provide");
      }
      outputs.push_back(Tensor{requested, input->datatype, input->shape, input->data});
    }
    times.input_ns = 0;
    times.infer_ns = NowNs() - start;
    times.output_ns = 0;
    return Status::Ok();
  }

 private:
  // Linear scans: identity models have a handful of tensors, and this avoids hashing.
  const Pair* FindPair(const std::string& output) const {
    for (const Pair& p : pairs_) {
      if (p.output == output) return &p;
    }
    return nullptr;
  }
  static const Tensor* FindInput(const BackendBatch& batch, const std::string& name) {
    for (const Tensor& t : batch.inputs) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  const std::string model_;
  const std::vector<Pair> pairs_;
};

}  // namespace

Status IdentityBackend::ValidateConfig(const ModelConfig& config) const {
  if (config.input_size() != config.output_size()) {
    return Status::InvalidArgument(
        "identity model '" + config.name() + "' has " + std::to_string(config.input_size()) +
        " inputs and " + std::to_string(config.output_size()) +
        " outputs; it needs one output per input (output i returns input i)");
  }
  for (int i = 0; i < config.input_size(); ++i) {
    const auto& in = config.input(i);
    const auto& out = config.output(i);
    if (in.data_type() != out.data_type()) {
      return Status::InvalidArgument(
          "identity model '" + config.name() + "': output '" + out.name() + "' (" +
          inference::DataType_Name(out.data_type()) + ") must have the data_type of input '" +
          in.name() + "' (" + inference::DataType_Name(in.data_type()) + ") at position " +
          std::to_string(i));
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<BackendInstance>> IdentityBackend::CreateInstance(
    const InstanceContext& context) const {
  if (context.config == nullptr) return Status::Internal("identity backend: no model config");
  const ModelConfig& config = *context.config;
  QUIVER_RETURN_IF_ERROR(ValidateConfig(config));
  std::vector<Pair> pairs;
  pairs.reserve(static_cast<size_t>(config.output_size()));
  for (int i = 0; i < config.output_size(); ++i) {
    pairs.push_back(Pair{config.output(i).name(), config.input(i).name()});
  }
  return std::unique_ptr<BackendInstance>(
      std::make_unique<IdentityInstance>(config.name(), std::move(pairs)));
}

}  // namespace quiver::engine
