// Client side of the infer codec: EncodeInferRequest and ParseInferResponse (what the
// HTTP client transport uses, and what the tests drive the server with).

#include <cstring>

#include "core/strings.h"
#include <string>

#include "protocol/http_infer_codec.h"
#include "protocol/http_tensor_json.h"
#include "protocol/json_writer.h"

namespace quiver::protocol {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

void WriteShmParameters(JsonWriter& w, const SharedMemoryRef& ref) {
  w.Member("shared_memory_region", ref.region);
  w.MemberUint("shared_memory_byte_size", ref.byte_size);
  if (ref.offset != 0) w.MemberUint("shared_memory_offset", ref.offset);
}

}  // namespace

Result<EncodedBody> EncodeInferRequest(const InferRequest& request,
                                       std::span<const InputEncoding> inputs,
                                       const ResponsePlan& plan) {
  EncodedBody out;
  JsonWriter w(out.json);
  w.BeginObject();
  if (!request.id.empty()) w.Member("id", request.id);

  std::vector<OutputRequest> outputs = plan.outputs;
  if (outputs.empty()) {
    for (const std::string& name : request.requested_outputs) {
      outputs.emplace_back(name, plan.default_transport);
    }
  }
  const bool binary_default = outputs.empty() && plan.default_transport == Transport::kBinary;
  if (request.timeout_us != 0 || request.priority != 0 || binary_default) {
    w.Key("parameters");
    w.BeginObject();
    if (request.priority != 0) w.MemberUint("priority", request.priority);
    if (request.timeout_us != 0) w.MemberUint("timeout", request.timeout_us);
    if (binary_default) w.MemberBool("binary_data_output", true);
    w.EndObject();
  }

  w.Key("inputs");
  w.BeginArray();
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& t = request.inputs[i];
    const InputEncoding enc = i < inputs.size() ? inputs[i] : InputEncoding{};
    w.BeginObject();
    w.Member("name", t.name);
    w.Key("shape");
    w.BeginArray();
    for (int64_t d : t.shape) w.Int(d);
    w.EndArray();
    w.Member("datatype", DataTypeName(t.datatype));
    switch (enc.transport) {
      case Transport::kBinary:
        w.Key("parameters");
        w.BeginObject();
        w.MemberUint("binary_data_size", t.data.size());
        w.EndObject();
        if (!t.data.empty()) out.binary.push_back(t.data);
        break;
      case Transport::kSharedMemory:
        w.Key("parameters");
        w.BeginObject();
        WriteShmParameters(w, enc.shm);
        w.EndObject();
        break;
      case Transport::kJson:
        w.Key("data");
        QUIVER_RETURN_IF_ERROR(EncodeJsonData(w, t, TensorName("input", t.name)));
        break;
    }
    w.EndObject();
  }
  w.EndArray();

  if (!outputs.empty()) {
    w.Key("outputs");
    w.BeginArray();
    for (const OutputRequest& o : outputs) {
      w.BeginObject();
      w.Member("name", o.name);
      w.Key("parameters");
      w.BeginObject();
      w.MemberBool("binary_data", o.transport == Transport::kBinary);
      if (o.transport == Transport::kSharedMemory) WriteShmParameters(w, o.shm);
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  // Without binary tensors the whole body is JSON and no header length is sent.
  return out;
}

Result<InferResponse> ParseInferResponse(const InferBody& body) {
  const uint64_t body_size = body.bytes.size();
  const uint64_t header_length = body.header_length.value_or(body_size);
  if (header_length > body_size || header_length == 0) {
    return Status::InvalidArgument("inference header size should be in range (0, " +
                                   std::to_string(body_size) + "], got: " +
                                   std::to_string(header_length));
  }
  auto root = ParseJson(reinterpret_cast<const char*>(body.bytes.data()),
                        static_cast<size_t>(header_length),
                        static_cast<size_t>(body_size - header_length) + body.padding,
                        "the response JSON");
  if (!root.ok()) return root.status();
  object obj;
  if (root->get_object().get(obj)) {
    return Status::InvalidArgument("the response JSON must be an object");
  }
  InferResponse out;
  element e;
  std::string_view s;
  if (FindField(obj, "id", e) && !e.get_string().get(s)) out.id = std::string(s);
  if (FindField(obj, "model_name", e) && !e.get_string().get(s)) out.model = std::string(s);
  if (FindField(obj, "model_version", e) && !e.get_string().get(s)) out.version = std::string(s);

  array outputs;
  if (!FindField(obj, "outputs", e) || e.get_array().get(outputs)) {
    return Status::InvalidArgument("the response JSON has no 'outputs' array");
  }
  uint64_t cursor = header_length;
  for (element item : outputs) {
    object o;
    if (item.get_object().get(o)) {
      return Status::InvalidArgument("an entry of 'outputs' is not an object");
    }
    Tensor t;
    if (!FindField(o, "name", e) || e.get_string().get(s)) {
      return Status::InvalidArgument("an output has no 'name'");
    }
    t.name = std::string(s);
    const TensorName where("output", t.name);
    if (!FindField(o, "datatype", e) || e.get_string().get(s) ||
        (t.datatype = DataTypeFromName(s)) == DataType::kInvalid) {
      return Status::InvalidArgument(where + " has no valid 'datatype'");
    }
    array shape;
    if (!FindField(o, "shape", e) || e.get_array().get(shape)) {
      return Status::InvalidArgument(where + " has no 'shape' array");
    }
    for (element d : shape) {
      int64_t dim = 0;
      if (d.get_int64().get(dim)) return Status::InvalidArgument(where + " has a bad 'shape'");
      t.shape.push_back(dim);
    }
    element data;
    element params;
    element size_e;
    object params_obj;
    if (FindField(o, "data", data)) {
      auto decoded = DecodeJsonData(data, t.datatype, ElementCount(t.shape), where);
      if (!decoded.ok()) return decoded.status();
      t.data = std::move(decoded).value();
    } else if (FindField(o, "parameters", params) && !params.get_object().get(params_obj) &&
               FindField(params_obj, "binary_data_size", size_e)) {
      uint64_t size = 0;
      if (size_e.get_uint64().get(size) || size > body_size - cursor) {
        return Status::InvalidArgument(where + ": binary_data_size exceeds the body");
      }
      // Callers index the data by the shape: fixed-size types need shape x type size bytes.
      const int64_t elements = ElementCount(t.shape);
      const size_t elem = DataTypeSize(t.datatype);
      if (elements < 0 ||
          (elem != 0 && (size % elem != 0 || size / elem != static_cast<uint64_t>(elements)))) {
        return Status::InvalidArgument(where + ": binary_data_size " + std::to_string(size) +
                                       " does not match shape " + ShapeToString(t.shape) +
                                       " of " + std::string(DataTypeName(t.datatype)));
      }
      t.data = Buffer::Borrow(body.bytes.data() + cursor, static_cast<size_t>(size),
                              body.keepalive);
      cursor += size;
    }
    // Neither: the output was written to shared memory; its Buffer stays empty.
    out.outputs.push_back(std::move(t));
  }
  if (cursor != body_size) {
    return Status::InvalidArgument("the response carries " + std::to_string(body_size - cursor) +
                                   " bytes not claimed by any binary_data_size");
  }
  return out;
}

}  // namespace quiver::protocol
