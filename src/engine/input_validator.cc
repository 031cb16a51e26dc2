#include "engine/input_validator.h"

#include <span>
#include <string>

#include "engine/model_config.h"

namespace quiver::engine {
namespace {

std::string Prefix(const ModelConfig& config, std::string_view version) {
  std::string p = "model '" + config.name() + "'";
  if (!version.empty()) p += " version " + std::string(version);
  return p;
}

std::string ExpectedShape(const ModelConfig& config, const inference::ModelInput& in) {
  Shape s;
  if (config.max_batch_size() > 0) s.push_back(-1);
  s.insert(s.end(), in.dims().begin(), in.dims().end());
  return ShapeToString(s);
}

std::string InputNames(const ModelConfig& config) {
  std::string names;
  for (const auto& in : config.input()) names += (names.empty() ? "" : ", ") + in.name();
  return names;
}

// `where()` builds the error context ("model 'm' version 1, input 'x'"); it runs only on
// error, so a valid request allocates no message strings.
template <typename Where>
Status CheckShape(const ModelConfig& config, const inference::ModelInput& in,
                  const Tensor& tensor, const Where& where) {
  const bool batching = config.max_batch_size() > 0;
  const size_t rank = static_cast<size_t>(in.dims_size()) + (batching ? 1 : 0);
  auto mismatch = [&] {
    return Status::InvalidArgument(where() + ": shape " + ShapeToString(tensor.shape) +
                                   " does not match the model's " + ExpectedShape(config, in) +
                                   (batching ? " (first dimension is the batch)" : ""));
  };
  if (tensor.shape.size() != rank) return mismatch();
  for (int64_t d : tensor.shape) {
    if (d < 0) {
      return Status::InvalidArgument(where() + ": shape " + ShapeToString(tensor.shape) +
                                     " has a negative dimension");
    }
  }
  const size_t offset = batching ? 1 : 0;
  for (int i = 0; i < in.dims_size(); ++i) {
    if (in.dims(i) != -1 && in.dims(i) != tensor.shape[offset + i]) return mismatch();
  }
  return Status::Ok();
}

template <typename Where>
Status CheckByteSize(const Tensor& tensor, DataType type, const Where& where) {
  const int64_t elements = ElementCount(tensor.shape);
  if (elements < 0) {
    return Status::InvalidArgument(where() + ": shape " + ShapeToString(tensor.shape) +
                                   " has too many elements");
  }
  if (type == DataType::kBytes) {
    auto offsets = BytesElementOffsets(tensor.data.bytes());
    if (!offsets.ok()) return offsets.status().WithContext(where());
    const auto count = static_cast<int64_t>(offsets->size()) - 1;
    if (count != elements) {
      return Status::InvalidArgument(where() + ": BYTES data holds " + std::to_string(count) +
                                     " elements but shape " + ShapeToString(tensor.shape) +
                                     " needs " + std::to_string(elements));
    }
    return Status::Ok();
  }
  const auto expected = static_cast<uint64_t>(elements) * DataTypeSize(type);
  if (tensor.data.size() != expected) {
    return Status::InvalidArgument(
        where() + ": got " + std::to_string(tensor.data.size()) + " bytes but shape " +
        ShapeToString(tensor.shape) + " of " + std::string(DataTypeName(type)) + " needs " +
        std::to_string(expected) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

Result<int64_t> ValidateInferRequest(const ModelConfig& config, std::string_view version,
                                     const InferRequest& request) {
  auto model = [&] { return Prefix(config, version); };
  const bool batching = config.max_batch_size() > 0;
  int64_t batch_size = -1;
  const std::string* batch_source = nullptr;
  std::vector<bool> seen(static_cast<size_t>(config.input_size()), false);

  for (const Tensor& tensor : request.inputs) {
    int index = -1;
    for (int i = 0; i < config.input_size(); ++i) {
      if (config.input(i).name() == tensor.name) index = i;
    }
    if (index < 0) {
      return Status::InvalidArgument(model() + ": unexpected input '" + tensor.name +
                                     "'; the model's inputs are: " + InputNames(config));
    }
    if (seen[static_cast<size_t>(index)]) {
      return Status::InvalidArgument(model() + ": input '" + tensor.name +
                                     "' is given more than once");
    }
    seen[static_cast<size_t>(index)] = true;
    const auto& in = config.input(index);
    auto where = [&] { return model() + ", input '" + tensor.name + "'"; };
    const DataType expected_type = ToDataType(in.data_type());
    if (tensor.datatype != expected_type) {
      return Status::InvalidArgument(where() + ": datatype " +
                                     std::string(DataTypeName(tensor.datatype)) +
                                     " does not match the model's " +
                                     std::string(DataTypeName(expected_type)));
    }
    QUIVER_RETURN_IF_ERROR(CheckShape(config, in, tensor, where));
    if (batching) {
      const int64_t b = tensor.shape[0];
      if (b < 1 || b > config.max_batch_size()) {
        return Status::InvalidArgument(where() + ": batch size " + std::to_string(b) +
                                       " is outside [1, " +
                                       std::to_string(config.max_batch_size()) +
                                       "] (max_batch_size)");
      }
      if (batch_size >= 0 && b != batch_size) {
        return Status::InvalidArgument(where() + ": batch size " + std::to_string(b) +
                                        " differs from input '" + *batch_source + "' (" +
                                       std::to_string(batch_size) + ")");
      }
      batch_size = b;
      batch_source = &tensor.name;
    }
    QUIVER_RETURN_IF_ERROR(CheckByteSize(tensor, expected_type, where));
  }

  for (int i = 0; i < config.input_size(); ++i) {
    if (!seen[static_cast<size_t>(i)] && !config.input(i).optional()) {
      return Status::InvalidArgument(model() + ": missing input '" + config.input(i).name() +
                                     "' (expected " + ExpectedShape(config, config.input(i)) +
                                     " " +
                                     std::string(DataTypeName(ToDataType(
                                         config.input(i).data_type()))) +
                                     "); got " + std::to_string(request.inputs.size()) +
                                     " of " + std::to_string(config.input_size()) + " inputs");
    }
  }

  for (size_t i = 0; i < request.requested_outputs.size(); ++i) {
    const std::string& name = request.requested_outputs[i];
    bool known = false;
    for (const auto& out : config.output()) known = known || out.name() == name;
    if (!known) {
      std::string outputs;
      for (const auto& out : config.output()) {
        outputs += (outputs.empty() ? "" : ", ") + out.name();
      }
      return Status::InvalidArgument(model() + ": unknown requested output '" + name +
                                     "'; the model's outputs are: " + outputs);
    }
    for (size_t j = 0; j < i; ++j) {
      if (request.requested_outputs[j] == name) {
        return Status::InvalidArgument(model() + ": output '" + name +
                                       "' is requested more than once");
      }
    }
  }
  if (batching && batch_size < 0) {
    return Status::InvalidArgument(model() + ": the request has no inputs");
  }
  return batching ? batch_size : 0;
}

}  // namespace quiver::engine
