#include "engine/input_validator.h"

#include <span>
#include <string>

#include "engine/model_config.h"

namespace quiver::engine {
namespace {

// The error texts are Triton's (InferenceRequest::Normalize in triton-inference-server/core,
// src/infer_request.cc, and Model::GetInput/GetOutput), so that a client sees the same words
// from both servers; where Triton has no check of its own, the text follows its style.

// Triton's LogRequest(): "[request id: <id>] ", "<id_unknown>" without an id.
std::string LogRequest(const InferRequest& request) {
  return "[request id: " + (request.id.empty() ? std::string("<id_unknown>") : request.id) +
         "] ";
}

std::string Model(const ModelConfig& config) { return "'" + config.name() + "'"; }

std::string ExpectedShape(const ModelConfig& config, const inference::ModelInput& in) {
  Shape s;
  if (config.max_batch_size() > 0) s.push_back(-1);
  s.insert(s.end(), in.dims().begin(), in.dims().end());
  return ShapeToString(s);
}

// Triton's note on a shape mismatch of a batching model.
constexpr std::string_view kImplicitBatchNote =
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension "
    "to be prepended to each input shape. If you want to specify the full shape including the "
    "batch dim in your input dims config, try setting max_batch_size to zero. See the model "
    "configuration docs for more info on max_batch_size.";

// "expected N inputs but got M inputs for model 'm'. Got input(s) [...], but missing
// required input(s) [...]. Please provide all required input(s)." (quirks included: with
// nothing missing Triton prints "missing required input(s) ]").
Status InputCountError(const ModelConfig& config, const InferRequest& request,
                       int required) {
  std::string got = "[";
  for (const Tensor& t : request.inputs) got += "'" + t.name + "',";
  if (request.inputs.empty()) got += "]"; else got.back() = ']';
  std::string missing = "[";
  for (const auto& in : config.input()) {
    if (in.optional()) continue;
    bool present = false;
    for (const Tensor& t : request.inputs) present = present || t.name == in.name();
    if (!present) missing += "'" + in.name() + "',";
  }
  missing.pop_back();
  missing += "]";
  const std::string count =
      required == config.input_size()
          ? "expected " + std::to_string(config.input_size()) + " inputs"
          : "expected number of inputs between " + std::to_string(required) + " and " +
                std::to_string(config.input_size());
  return Status::InvalidArgument(LogRequest(request) + count + " but got " +
                                 std::to_string(request.inputs.size()) + " inputs for model " +
                                 Model(config) + ". Got input(s) " + got +
                                 ", but missing required input(s) " + missing +
                                 ". Please provide all required input(s).");
}

// `where()` builds the error context only on error, so a valid request allocates no
// message strings.
template <typename Where>
Status CheckShape(const ModelConfig& config, const inference::ModelInput& in,
                  const Tensor& tensor, const Where& where) {
  const bool batching = config.max_batch_size() > 0;
  const size_t rank = static_cast<size_t>(in.dims_size()) + (batching ? 1 : 0);
  auto mismatch = [&] {
    return Status::InvalidArgument(where() + "unexpected shape for input '" + tensor.name +
                                   "' for model " + Model(config) + ". Expected " +
                                   ExpectedShape(config, in) + ", got " +
                                   ShapeToString(tensor.shape) + ". " +
                                   (batching ? std::string(kImplicitBatchNote) : ""));
  };
  if (tensor.shape.size() != rank) return mismatch();
  for (int64_t d : tensor.shape) {
    if (d < 0) {
      return Status::InvalidArgument(where() + "All input dimensions should be specified for "
                                     "input '" + tensor.name + "' for model " + Model(config) +
                                     ", got " + ShapeToString(tensor.shape));
    }
  }
  const size_t offset = batching ? 1 : 0;
  for (int i = 0; i < in.dims_size(); ++i) {
    if (in.dims(i) != -1 && in.dims(i) != tensor.shape[offset + i]) return mismatch();
  }
  return Status::Ok();
}

template <typename Where>
Status CheckByteSize(const ModelConfig& config, const Tensor& tensor, DataType type,
                     const Where& where) {
  const int64_t elements = ElementCount(tensor.shape);
  if (elements < 0) {
    return Status::InvalidArgument(where() + "input '" + tensor.name + "' for model " +
                                   Model(config) + ": shape " + ShapeToString(tensor.shape) +
                                   " has too many elements");
  }
  if (type == DataType::kBytes) {
    auto offsets = BytesElementOffsets(tensor.data.bytes());
    if (!offsets.ok()) {
      return offsets.status().WithContext(where() + "input '" + tensor.name + "' for model " +
                                          Model(config));
    }
    const auto count = static_cast<int64_t>(offsets->size()) - 1;
    if (count != elements) {
      return Status::InvalidArgument(where() + "expected " + std::to_string(elements) +
                                     " string elements for inference input '" + tensor.name +
                                     "' for model " + Model(config) + ", got " +
                                     std::to_string(count));
    }
    return Status::Ok();
  }
  const auto expected = static_cast<uint64_t>(elements) * DataTypeSize(type);
  if (tensor.data.size() != expected) {
    return Status::InvalidArgument(where() + "input byte size mismatch for input '" +
                                   tensor.name + "' for model " + Model(config) +
                                   ". Expected " + std::to_string(expected) + ", got " +
                                   std::to_string(tensor.data.size()));
  }
  return Status::Ok();
}

}  // namespace

Result<int64_t> ValidateInferRequest(const ModelConfig& config, std::string_view version,
                                     const InferRequest& request) {
  auto where = [&] { return LogRequest(request); };
  const bool batching = config.max_batch_size() > 0;
  int64_t batch_size = -1;
  const std::string* batch_source = nullptr;
  std::vector<bool> seen(static_cast<size_t>(config.input_size()), false);

  // Triton checks the number of inputs first.
  int required = 0;
  for (const auto& in : config.input()) required += in.optional() ? 0 : 1;
  const auto given = static_cast<int64_t>(request.inputs.size());
  if (given > config.input_size() || given < required) {
    return InputCountError(config, request, required);
  }

  for (const Tensor& tensor : request.inputs) {
    int index = -1;
    for (int i = 0; i < config.input_size(); ++i) {
      if (config.input(i).name() == tensor.name) index = i;
    }
    if (index < 0) {
      return Status::InvalidArgument("unexpected inference input '" + tensor.name +
                                     "' for model " + Model(config));
    }
    if (seen[static_cast<size_t>(index)]) {
      return Status::InvalidArgument(where() + "input '" + tensor.name +
                                     "' already exists in request");
    }
    seen[static_cast<size_t>(index)] = true;
    const auto& in = config.input(index);
    const DataType expected_type = ToDataType(in.data_type());
    if (batching) {
      if (tensor.shape.empty()) {
        return Status::InvalidArgument(where() + "input '" + tensor.name +
                                       "' has no shape but model requires batch dimension for " +
                                       Model(config));
      }
      const int64_t b = tensor.shape[0];
      if (batch_size >= 0 && b != batch_size) {
        return Status::InvalidArgument(where() + "input '" + tensor.name +
                                       "' batch size does not match other inputs for " +
                                       Model(config) + " (" + std::to_string(b) +
                                       " vs. input '" + *batch_source + "': " +
                                       std::to_string(batch_size) + ")");
      }
      if (b > config.max_batch_size()) {
        return Status::InvalidArgument(where() + "inference request batch-size must be <= " +
                                       std::to_string(config.max_batch_size()) + " for " +
                                       Model(config));
      }
      if (b < 1) {
        return Status::InvalidArgument(where() + "inference request batch-size must be >= 1 "
                                       "for " + Model(config) + ", got " + std::to_string(b) +
                                       " (input '" + tensor.name + "')");
      }
      batch_size = b;
      batch_source = &tensor.name;
    }
    if (tensor.datatype != expected_type) {
      return Status::InvalidArgument(where() + "inference input '" + tensor.name +
                                     "' data-type is '" +
                                     std::string(DataTypeName(tensor.datatype)) +
                                     "', but model " + Model(config) + " expects '" +
                                     std::string(DataTypeName(expected_type)) + "'");
    }
    QUIVER_RETURN_IF_ERROR(CheckShape(config, in, tensor, where));
    QUIVER_RETURN_IF_ERROR(CheckByteSize(config, tensor, expected_type, where));
  }
  (void)version;

  for (size_t i = 0; i < request.requested_outputs.size(); ++i) {
    const std::string& name = request.requested_outputs[i];
    bool known = false;
    for (const auto& out : config.output()) known = known || out.name() == name;
    if (!known) {
      return Status::InvalidArgument("unexpected inference output '" + name + "' for model " +
                                     Model(config));
    }
    for (size_t j = 0; j < i; ++j) {
      if (request.requested_outputs[j] == name) {
        return Status::InvalidArgument(where() + "output '" + name +
                                       "' is requested more than once");
      }
    }
  }
  if (batching && batch_size < 0) {
    return Status::InvalidArgument(where() + "the request has no inputs for " + Model(config));
  }
  return batching ? batch_size : 0;
}

}  // namespace quiver::engine
