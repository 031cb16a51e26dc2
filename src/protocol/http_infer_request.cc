// Server side: ParseInferRequest, plus the small shared pieces of the codec.

#include <algorithm>

#include "core/strings.h"
#include <string>

#include "protocol/http_infer_codec.h"
#include "protocol/http_tensor_json.h"
#include "protocol/tensor_name.h"

namespace quiver::protocol {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

Status Invalid(std::string message) { return Status::InvalidArgument(std::move(message)); }

// Where a field is, for its error message: " of <tensor>", or a fixed text such as
// " in request parameters" (built only when the message is).
struct FieldOf {
  FieldOf(const char* text) : literal(text) {}  // NOLINT: implicit by design
  FieldOf(const TensorName* t) : tensor(t) {}   // NOLINT
  std::string str() const { return tensor != nullptr ? " of " + *tensor : std::string(literal); }
  std::string_view literal;
  const TensorName* tensor = nullptr;
};

// A non-negative integer field value (Triton reads these as unsigned).
Status ReadUint(element e, std::string_view field, FieldOf of, uint64_t& out) {
  if (e.get_uint64().get(out)) {
    return Invalid("unable to parse '" + std::string(field) + "'" + of.str() +
                   ": expected a non-negative integer, got " + std::string(JsonTypeName(e)));
  }
  return Status::Ok();
}

Status ReadBool(element e, std::string_view field, FieldOf of, bool& out) {
  if (e.get_bool().get(out)) {
    return Invalid("unable to parse '" + std::string(field) + "'" + of.str() +
                   ": expected a boolean, got " + std::string(JsonTypeName(e)));
  }
  return Status::Ok();
}

Status ReadString(element e, std::string_view field, FieldOf of,
                  std::string_view& out) {
  if (e.get_string().get(out)) {
    return Invalid("unable to parse '" + std::string(field) + "'" + of.str() +
                   ": expected a string, got " + std::string(JsonTypeName(e)));
  }
  return Status::Ok();
}

// Reads the shared_memory_* parameters of an input or output. `present` tells whether
// shared_memory_region was given; region and byte size are then both required.
Status ReadShmParameters(object params, const TensorName& where, bool& present,
                         SharedMemoryRef& ref) {
  element e;
  present = FindField(params, "shared_memory_region", e);
  const bool has_size = params.at_key("shared_memory_byte_size").error() == simdjson::SUCCESS;
  if (!present) {
    if (has_size) {
      return Invalid(where +
                     ": 'shared_memory_byte_size' is given without 'shared_memory_region'");
    }
    return Status::Ok();
  }
  std::string_view region;
  QUIVER_RETURN_IF_ERROR(ReadString(e, "shared_memory_region", &where, region));
  ref.region = std::string(region);
  if (!FindField(params, "shared_memory_byte_size", e)) {
    return Invalid(where +
                   ": 'shared_memory_region' is given without 'shared_memory_byte_size'");
  }
  QUIVER_RETURN_IF_ERROR(ReadUint(e, "shared_memory_byte_size", &where, ref.byte_size));
  ref.offset = 0;
  if (FindField(params, "shared_memory_offset", e)) {
    QUIVER_RETURN_IF_ERROR(
        ReadUint(e, "shared_memory_offset", &where, ref.offset));
  }
  return Status::Ok();
}

// Fixed-size types must carry exactly elements x type size bytes.
Status CheckFixedSize(DataType type, int64_t elements, uint64_t bytes, const TensorName& where,
                      std::string_view source) {
  const size_t elem = DataTypeSize(type);
  if (elem == 0 || elements < 0) return Status::Ok();  // BYTES: framing checked by the model
  const auto count = static_cast<uint64_t>(elements);
  if (count > UINT64_MAX / elem || count * elem != bytes) {
    return Invalid(where + ": " + std::string(source) + " is " +
                   std::to_string(bytes) + " bytes but the shape needs " +
                   (count > UINT64_MAX / elem ? std::string("more than 2^64")
                                              : std::to_string(count * elem)) +
                   " (" + std::to_string(count) + " x " + std::to_string(elem) + "-byte " +
                   std::string(DataTypeName(type)) + ")");
  }
  return Status::Ok();
}

Status ParseRequestParameters(object params, ParsedInferRequest& out) {
  for (auto field : params) {
    const std::string_view key = field.key;
    if (key == "binary_data_output") {
      bool binary = false;
      QUIVER_RETURN_IF_ERROR(ReadBool(field.value, key, " in request parameters", binary));
      out.plan.default_transport = binary ? Transport::kBinary : Transport::kJson;
    } else if (key == "timeout") {
      QUIVER_RETURN_IF_ERROR(
          ReadUint(field.value, key, " in request parameters", out.request.timeout_us));
    } else if (key == "priority") {
      QUIVER_RETURN_IF_ERROR(
          ReadUint(field.value, key, " in request parameters", out.request.priority));
    } else if (key == "sequence_id") {
      uint64_t id = 0;
      std::string_view sid;
      const bool zero = (!field.value.get_uint64().get(id) && id == 0) ||
                        (!field.value.get_string().get(sid) && sid.empty());
      if (!zero) {
        return Status::Unsupported("sequence_id " + simdjson::minify(field.value) +
                                   ": sequence batching is not supported");
      }
    } else if (key == "sequence_start" || key == "sequence_end") {
      bool flag = false;
      QUIVER_RETURN_IF_ERROR(ReadBool(field.value, key, " in request parameters", flag));
    } else if (key.substr(0, 7) == "triton_") {
      return Invalid(
          "parameter keys starting with 'triton_' are reserved for Triton usage and should "
          "not be specified.");
    }
    // Other parameters are the model's business; Quiver's models take none.
  }
  return Status::Ok();
}

Status ParseOutputs(array outputs, const SharedMemoryResolver* shm, ParsedInferRequest& out) {
  size_t index = 0;
  for (element item : outputs) {
    const TensorName where_index("output", index++);
    object obj;
    if (item.get_object().get(obj)) {
      return Invalid("unable to parse 'outputs': " + where_index + " is " +
                     std::string(JsonTypeName(item)) + ", expected an object");
    }
    element e;
    std::string_view name;
    if (!FindField(obj, "name", e)) return Invalid("unable to parse 'name' of " + where_index);
    QUIVER_RETURN_IF_ERROR(ReadString(e, "name", &where_index, name));
    OutputRequest request;
    request.name = std::string(name);
    const TensorName where("output", name);
    request.transport = Transport::kJson;
    if (FindField(obj, "parameters", e)) {
      object params;
      if (e.get_object().get(params)) {
        return Invalid("unable to parse 'parameters' of " + where + ": expected an object");
      }
      bool binary = false;
      element b;
      if (FindField(params, "binary_data", b)) {
        QUIVER_RETURN_IF_ERROR(ReadBool(b, "binary_data", &where, binary));
      }
      bool in_shm = false;
      QUIVER_RETURN_IF_ERROR(ReadShmParameters(params, where, in_shm, request.shm));
      element c;
      uint64_t classes = 0;
      if (FindField(params, "classification", c)) {
        QUIVER_RETURN_IF_ERROR(ReadUint(c, "classification", &where, classes));
      }
      if (in_shm && classes > 0) {
        return Invalid(where + ": output can't set both 'shared_memory_region' and "
                               "'classification'");
      }
      if (in_shm && binary) {
        return Invalid(where + ": output can't set both 'shared_memory_region' and "
                               "'binary_data'");
      }
      if (classes > 0) {
        return Status::Unsupported(where + ": the classification extension is not supported");
      }
      request.transport = in_shm ? Transport::kSharedMemory
                                 : (binary ? Transport::kBinary : Transport::kJson);
      if (in_shm) {
        if (shm == nullptr) {
          return Status::Unsupported(where +
                                     ": shared memory is not available on this endpoint");
        }
        auto view = shm->Resolve(request.shm.region, request.shm.offset, request.shm.byte_size);
        if (!view.ok()) return view.status().WithContext(where.str());
        request.destination = std::move(view).value();
      }
    }
    out.request.requested_outputs.push_back(request.name);
    out.plan.outputs.push_back(std::move(request));
  }
  return Status::Ok();
}

// Parses one entry of "inputs"; `cursor` walks the binary section.
Status ParseInput(element item, size_t index, const InferBody& body, bool binary_allowed,
                  uint64_t& cursor, std::string_view model, const SharedMemoryResolver* shm,
                  Tensor& tensor) {
  object obj;
  if (item.get_object().get(obj)) {
    return Invalid("unable to parse 'inputs': input " + std::to_string(index) + " is " +
                   std::string(JsonTypeName(item)) + ", expected an object");
  }
  element e;
  std::string_view name;
  if (!FindField(obj, "name", e)) {
    return Invalid("unable to parse 'name' of input " + std::to_string(index) +
                   ": the field is missing");
  }
  const TensorName where_index("input", index);
  QUIVER_RETURN_IF_ERROR(ReadString(e, "name", &where_index, name));
  tensor.name = std::string(name);
  const TensorName where("input", name);

  std::string_view datatype;
  if (!FindField(obj, "datatype", e)) {
    return Invalid("unable to parse 'datatype' of " + where + ": the field is missing");
  }
  QUIVER_RETURN_IF_ERROR(ReadString(e, "datatype", &where, datatype));
  tensor.datatype = DataTypeFromName(datatype);
  if (tensor.datatype == DataType::kInvalid) {
    return Invalid(where + ": unknown datatype " + Quoted(datatype) +
                   "; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, "
                   "INT32, INT64, FP16, BF16, FP32, FP64, BYTES");
  }

  array shape;
  if (!FindField(obj, "shape", e) || e.get_array().get(shape)) {
    return Invalid("unable to parse 'shape' of " + where + ": expected an array of "
                   "non-negative integers");
  }
  tensor.shape.clear();
  for (element d : shape) {
    uint64_t dim = 0;
    if (d.get_uint64().get(dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
      return Invalid("unable to parse 'shape' of " + where + ": " + simdjson::minify(d) +
                     " is not a non-negative integer");
    }
    tensor.shape.push_back(static_cast<int64_t>(dim));
  }
  const int64_t elements = ElementCount(tensor.shape);
  if (elements < 0) {
    return Invalid(where + ": shape " + ShapeToString(tensor.shape) + " has too many elements");
  }

  element data;
  const bool has_data = FindField(obj, "data", data);
  object params;
  bool has_params = false;
  if (FindField(obj, "parameters", e)) {
    if (e.get_object().get(params)) {
      return Invalid("unable to parse 'parameters' of " + where + ": expected an object");
    }
    has_params = true;
  }
  element binary_size_e;
  const bool has_binary = has_params && FindField(params, "binary_data_size", binary_size_e);
  bool has_shm = false;
  SharedMemoryRef ref;
  if (has_params) QUIVER_RETURN_IF_ERROR(ReadShmParameters(params, where, has_shm, ref));

  const int set = int(has_data) + int(has_binary) + int(has_shm);
  if (set != 1) {
    std::string msg = where.str() +
                      ": input must set only one of the following fields: 'data', "
                      "'binary_data_size' in 'parameters', 'shared_memory_region' in "
                      "'parameters'. But";
    if (set == 0) {
      msg += " no field is set";
    } else {
      msg += " set";
      if (has_data) msg += " 'data'";
      if (has_binary) msg += " 'binary_data_size'";
      if (has_shm) msg += " 'shared_memory_region'";
    }
    return Invalid(std::move(msg));
  }

  if (has_data) {
    auto decoded = DecodeJsonData(data, tensor.datatype, elements, where);
    if (!decoded.ok()) return decoded.status();
    tensor.data = std::move(decoded).value();
    return Status::Ok();
  }

  if (has_binary) {
    uint64_t size = 0;
    QUIVER_RETURN_IF_ERROR(ReadUint(binary_size_e, "binary_data_size", &where, size));
    if (!binary_allowed && size > 0) {
      return Invalid(where + ": must specify valid 'Inference-Header-Content-Length' in "
                             "request header and 'binary_data_size' when passing inputs in "
                             "binary data format");
    }
    const uint64_t available = body.bytes.size() - cursor;
    if (size > available) {
      return Invalid("unexpected size for " + where + ", expecting " +
                     std::to_string(size - available) + " additional bytes for model " +
                     Quoted(model) + " (binary_data_size " + std::to_string(size) + ", " +
                     std::to_string(available) + " bytes left in the body)");
    }
    QUIVER_RETURN_IF_ERROR(CheckFixedSize(tensor.datatype, elements, size, where,
                                          "binary_data_size"));
    tensor.data = Buffer::Borrow(body.bytes.data() + cursor, static_cast<size_t>(size),
                                 body.keepalive);
    cursor += size;
    return Status::Ok();
  }

  if (shm == nullptr) {
    return Status::Unsupported(where + ": shared memory is not available on this endpoint");
  }
  QUIVER_RETURN_IF_ERROR(CheckFixedSize(tensor.datatype, elements, ref.byte_size, where,
                                        "shared_memory_byte_size"));
  auto view = shm->Resolve(ref.region, ref.offset, ref.byte_size);
  if (!view.ok()) return view.status().WithContext(where.str());
  tensor.data = std::move(view).value();
  return Status::Ok();
}


}  // namespace

const OutputRequest* ResponsePlan::Find(std::string_view name) const {
  for (const OutputRequest& o : outputs) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

size_t EncodedBody::size() const {
  size_t n = json.size();
  for (const Buffer& b : binary) n += b.size();
  return n;
}

std::string EncodedBody::Flatten() const {
  std::string out;
  out.reserve(size());
  out += json;
  for (const Buffer& b : binary) out.append(reinterpret_cast<const char*>(b.data()), b.size());
  return out;
}

Result<ParsedInferRequest> ParseInferRequest(const InferBody& body, std::string_view model,
                                             std::string_view version,
                                             const SharedMemoryResolver* shm) {
  const uint64_t body_size = body.bytes.size();
  uint64_t header_length = body_size;
  if (body.header_length.has_value()) {
    header_length = *body.header_length;
    if (header_length > body_size) {
      return Invalid("inference header size should be in range (0, " +
                     std::to_string(body_size) + "), got: " + std::to_string(header_length));
    }
    if (header_length == 0) {
      return Status::Unsupported(
          "raw binary inference requests (Inference-Header-Content-Length: 0) are not "
          "supported; send a JSON header");
    }
  }
  const char* text = reinterpret_cast<const char*>(body.bytes.data());
  auto root = ParseJson(text, static_cast<size_t>(header_length),
                        static_cast<size_t>(body_size - header_length) + body.padding,
                        "the request JSON");
  if (!root.ok()) return root.status();
  object obj;
  if (root->get_object().get(obj)) {
    return Invalid("the request JSON must be an object, got " +
                   std::string(JsonTypeName(*root)));
  }

  ParsedInferRequest out;
  out.request.model = std::string(model);
  out.request.version = std::string(version);
  element e;
  if (FindField(obj, "id", e)) {
    std::string_view id;
    QUIVER_RETURN_IF_ERROR(ReadString(e, "id", "", id));
    out.request.id = std::string(id);
  }
  if (FindField(obj, "parameters", e)) {
    object params;
    if (e.get_object().get(params)) {
      return Invalid("unable to parse 'parameters': expected an object, got " +
                     std::string(JsonTypeName(e)));
    }
    QUIVER_RETURN_IF_ERROR(ParseRequestParameters(params, out));
  }

  array inputs;
  if (!FindField(obj, "inputs", e)) return Invalid("unable to parse 'inputs': missing field");
  if (e.get_array().get(inputs)) {
    return Invalid("unable to parse 'inputs': expected an array, got " +
                   std::string(JsonTypeName(e)));
  }
  uint64_t cursor = header_length;
  const bool binary_allowed = body.header_length.has_value();
  size_t index = 0;
  for (element item : inputs) {
    Tensor tensor;
    QUIVER_RETURN_IF_ERROR(
        ParseInput(item, index++, body, binary_allowed, cursor, model, shm, tensor));
    for (const Tensor& previous : out.request.inputs) {
      if (previous.name == tensor.name) {
        return Invalid("input " + Quoted(tensor.name) + " appears more than once");
      }
    }
    out.request.inputs.push_back(std::move(tensor));
  }
  if (cursor != body_size) {
    return Invalid("unexpected additional input data for model " + Quoted(model) + ": " +
                   std::to_string(body_size - cursor) +
                   " bytes after the JSON header are not claimed by any binary_data_size");
  }

  if (FindField(obj, "outputs", e)) {
    array outputs;
    if (e.get_array().get(outputs)) {
      return Invalid("unable to parse 'outputs': expected an array, got " +
                     std::string(JsonTypeName(e)));
    }
    QUIVER_RETURN_IF_ERROR(ParseOutputs(outputs, shm, out));
  }
  return out;
}

}  // namespace quiver::protocol
