#include "protocol/json_messages.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "protocol/http_tensor_json.h"
#include "protocol/json_writer.h"

namespace quiver::protocol {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

void WriteShape(JsonWriter& w, const Shape& shape) {
  w.BeginArray();
  for (int64_t d : shape) w.Int(d);
  w.EndArray();
}

void WriteTensors(JsonWriter& w, std::string_view key, const std::vector<TensorMetadata>& ts) {
  w.Key(key);
  w.BeginArray();
  for (const TensorMetadata& t : ts) {
    w.BeginObject();
    w.Member("name", t.name);
    w.Member("datatype", DataTypeName(t.datatype));
    w.Key("shape");
    WriteShape(w, t.shape);
    w.EndObject();
  }
  w.EndArray();
}

void WriteDuration(JsonWriter& w, std::string_view key, const StatisticDuration& d) {
  w.Key(key);
  w.BeginObject();
  w.MemberUint("count", d.count);
  w.MemberUint("ns", d.ns);
  w.EndObject();
}

// Parses a small request body (copied: such bodies are tiny). An empty body is an
// empty object.
Result<object> ParseBodyObject(std::string_view body, std::string_view what) {
  static const std::string kEmpty = "{}";
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) body = kEmpty;
  auto root = ParseJson(body.data(), body.size(), 0, what);
  if (!root.ok()) return root.status();
  object obj;
  if (root->get_object().get(obj)) {
    return Status::InvalidArgument(std::string(what) + " must be a JSON object");
  }
  return obj;
}

// Protobuf prints 64-bit integers as JSON strings; Triton turns them back into numbers.
// Walks the JSON next to the message descriptor so every such field is fixed, however
// deep (map keys stay strings, as JSON requires).
using OrderedJson = nlohmann::ordered_json;

void FixInt64(OrderedJson& value, bool is_signed) {
  if (!value.is_string()) return;
  const std::string& s = value.get_ref<const std::string&>();
  if (is_signed) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) value = v;
  } else {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) value = v;
  }
}

void FixMessage(OrderedJson& json, const google::protobuf::Descriptor& desc);

void FixField(OrderedJson& value, const google::protobuf::FieldDescriptor& field) {
  using FD = google::protobuf::FieldDescriptor;
  if (field.is_map()) {
    const FD* map_value = field.message_type()->FindFieldByName("value");
    if (map_value == nullptr || !value.is_object()) return;
    for (auto& [k, v] : value.items()) FixField(v, *map_value);
    return;
  }
  if (field.is_repeated() && value.is_array()) {
    for (auto& v : value) {
      if (field.cpp_type() == FD::CPPTYPE_MESSAGE) {
        FixMessage(v, *field.message_type());
      } else if (field.cpp_type() == FD::CPPTYPE_INT64) {
        FixInt64(v, true);
      } else if (field.cpp_type() == FD::CPPTYPE_UINT64) {
        FixInt64(v, false);
      }
    }
    return;
  }
  switch (field.cpp_type()) {
    case FD::CPPTYPE_MESSAGE: FixMessage(value, *field.message_type()); break;
    case FD::CPPTYPE_INT64: FixInt64(value, true); break;
    case FD::CPPTYPE_UINT64: FixInt64(value, false); break;
    default: break;
  }
}

void FixMessage(OrderedJson& json, const google::protobuf::Descriptor& desc) {
  if (!json.is_object()) return;
  for (int i = 0; i < desc.field_count(); ++i) {
    const google::protobuf::FieldDescriptor& field = *desc.field(i);
    auto it = json.find(field.name());
    if (it != json.end()) FixField(*it, field);
  }
}

}  // namespace

std::string ErrorJson(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 16);
  JsonWriter w(out);
  w.BeginObject();
  w.Member("error", message);
  w.EndObject();
  return out;
}

std::string ServerMetadataJson(const ServerMetadata& m) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Member("name", m.name);
  w.Member("version", m.version);
  w.Key("extensions");
  w.BeginArray();
  for (const std::string& e : m.extensions) w.String(e);
  w.EndArray();
  w.EndObject();
  return out;
}

std::string ModelMetadataJson(const ModelMetadata& m) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Member("name", m.name);
  w.Key("versions");
  w.BeginArray();
  for (const std::string& v : m.versions) w.String(v);
  w.EndArray();
  w.Member("platform", m.platform);
  WriteTensors(w, "inputs", m.inputs);
  WriteTensors(w, "outputs", m.outputs);
  w.EndObject();
  return out;
}

Result<std::string> ModelConfigJson(const ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string proto_json;
  auto status = google::protobuf::util::MessageToJsonString(config, &proto_json, options);
  if (!status.ok()) {
    return Status::Internal("unable to serialise the model configuration of '" + config.name() +
                            "' to JSON: " + std::string(status.message()));
  }
  OrderedJson json = OrderedJson::parse(proto_json, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Status::Internal("protobuf produced invalid JSON for the configuration of '" +
                            config.name() + "'");
  }
  FixMessage(json, *ModelConfig::descriptor());
  return json.dump();
}

std::string StatisticsJson(std::span<const ModelStatistics> stats) {
  std::string out;
  out.reserve(512 * (stats.size() + 1));
  JsonWriter w(out);
  w.BeginObject();
  w.Key("model_stats");
  w.BeginArray();
  for (const ModelStatistics& s : stats) {
    w.BeginObject();
    w.Member("name", s.name);
    w.Member("version", s.version);
    w.MemberUint("last_inference", s.last_inference_ms);
    w.MemberUint("inference_count", s.inference_count);
    w.MemberUint("execution_count", s.execution_count);
    w.Key("inference_stats");
    w.BeginObject();
    WriteDuration(w, "success", s.success);
    WriteDuration(w, "fail", s.fail);
    WriteDuration(w, "queue", s.queue);
    WriteDuration(w, "compute_input", s.compute_input);
    WriteDuration(w, "compute_infer", s.compute_infer);
    WriteDuration(w, "compute_output", s.compute_output);
    WriteDuration(w, "cache_hit", {});
    WriteDuration(w, "cache_miss", {});
    w.EndObject();
    w.Key("response_stats");
    w.BeginObject();
    w.EndObject();
    w.Key("batch_stats");
    w.BeginArray();
    for (const BatchStatistics& b : s.batch_stats) {
      w.BeginObject();
      w.MemberUint("batch_size", b.batch_size);
      WriteDuration(w, "compute_input", b.compute_input);
      WriteDuration(w, "compute_infer", b.compute_infer);
      WriteDuration(w, "compute_output", b.compute_output);
      w.EndObject();
    }
    w.EndArray();
    w.Key("memory_usage");
    w.BeginArray();
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

std::string RepositoryIndexJson(const RepositoryIndex& index, bool ready_only) {
  std::string out;
  JsonWriter w(out);
  w.BeginArray();
  for (const RepositoryEntry& e : index) {
    if (ready_only && e.state != "READY") continue;
    w.BeginObject();
    w.Member("name", e.name);
    if (!e.version.empty()) w.Member("version", e.version);
    w.Member("state", e.state);
    if (!e.reason.empty()) w.Member("reason", e.reason);
    w.EndObject();
  }
  w.EndArray();
  return out;
}

std::string SystemShmStatusJson(std::span<const SystemShmStatus> regions) {
  std::string out;
  JsonWriter w(out);
  w.BeginArray();
  for (const SystemShmStatus& r : regions) {
    w.BeginObject();
    w.Member("name", r.name);
    w.Member("key", r.key);
    w.MemberUint("offset", r.offset);
    w.MemberUint("byte_size", r.byte_size);
    w.EndObject();
  }
  w.EndArray();
  return out;
}

Result<SystemShmRegisterRequest> ParseSystemShmRegisterRequest(std::string_view body) {
  auto obj = ParseBodyObject(body, "the shared memory register request");
  if (!obj.ok()) return obj.status();
  SystemShmRegisterRequest out;
  element e;
  std::string_view key;
  if (!FindField(*obj, "key", e)) {
    return Status::InvalidArgument("Shared memory register request has no 'key' field");
  }
  if (e.get_string().get(key)) {
    return Status::InvalidArgument("unable to parse 'key' of the shared memory register "
                                   "request: expected a string");
  }
  out.key = std::string(key);
  if (FindField(*obj, "offset", e) && e.get_uint64().get(out.offset)) {
    return Status::InvalidArgument("unable to parse 'offset' of the shared memory register "
                                   "request: expected a non-negative integer");
  }
  if (!FindField(*obj, "byte_size", e)) {
    return Status::InvalidArgument("Shared memory register request has no 'byte_size' field");
  }
  if (e.get_uint64().get(out.byte_size)) {
    return Status::InvalidArgument("unable to parse 'byte_size' of the shared memory register "
                                   "request: expected a non-negative integer");
  }
  return out;
}

Result<bool> ParseRepositoryIndexRequest(std::string_view body) {
  auto obj = ParseBodyObject(body, "the repository index request");
  if (!obj.ok()) return obj.status();
  element e;
  bool ready = false;
  if (FindField(*obj, "ready", e) && e.get_bool().get(ready)) {
    return Status::InvalidArgument("unable to parse 'ready' of the repository index request: "
                                   "expected a boolean");
  }
  return ready;
}

Status ParseModelLoadRequest(std::string_view body) {
  auto obj = ParseBodyObject(body, "the model load request");
  if (!obj.ok()) return obj.status();
  element e;
  if (!FindField(*obj, "parameters", e)) return Status::Ok();
  object params;
  if (e.get_object().get(params)) {
    return Status::InvalidArgument("unable to parse 'parameters' of the model load request: "
                                   "expected an object");
  }
  for (auto field : params) {
    const std::string_view key = field.key;
    if (key == "config" || key.substr(0, 5) == "file:") {
      return Status::Unsupported("model load parameter '" + std::string(key) +
                                 "' is not supported: Quiver loads models from the repository");
    }
  }
  return Status::Ok();
}

Status ParseModelUnloadRequest(std::string_view body) {
  auto obj = ParseBodyObject(body, "the model unload request");
  if (!obj.ok()) return obj.status();
  element e;
  object params;
  if (!FindField(*obj, "parameters", e)) return Status::Ok();
  if (e.get_object().get(params)) {
    return Status::InvalidArgument("unable to parse 'parameters' of the model unload request: "
                                   "expected an object");
  }
  bool dependents = false;
  if (FindField(params, "unload_dependents", e) && e.get_bool().get(dependents)) {
    return Status::InvalidArgument("Unable to parse 'unload_dependents': expected a boolean");
  }
  return Status::Ok();
}

}  // namespace quiver::protocol
