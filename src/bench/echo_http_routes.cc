#include "bench/echo_http_routes.h"

#include <simdjson.h>

#include <charconv>
#include <string>
#include <vector>

#include "protocol/json_messages.h"
#include "protocol/json_writer.h"

namespace quiver::bench {
namespace {

EchoHttpReply Json(unsigned status, std::string body) {
  EchoHttpReply reply;
  reply.status = status;
  reply.body.head = std::move(body);
  return reply;
}

EchoHttpReply Error(unsigned status, std::string_view message) {
  return Json(status, protocol::ErrorJson(message));
}

bool Consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// The echo of one binary inference request: a JSON header naming each output, then the
// input bytes in order, borrowed from the request body.
EchoHttpReply Infer(EchoModel& model, const EchoHttpRequest& request) {
  const size_t body_size = request.body.size();
  uint64_t header_length = 0;
  const std::string_view hl = request.header_length.value_or("");
  const auto [end, ec] = std::from_chars(hl.data(), hl.data() + hl.size(), header_length);
  if (!request.header_length || ec != std::errc() || end != hl.data() + hl.size() ||
      header_length == 0 || header_length > body_size) {
    return Error(400,
                 "quiver_echo_server takes binary tensors only: a JSON header of "
                 "Inference-Header-Content-Length bytes, then the data");
  }
  thread_local simdjson::dom::parser parser;
  const char* text = reinterpret_cast<const char*>(request.body.data());
  // In place when the bytes after the header are enough padding for simdjson.
  const bool padded = body_size - header_length + request.padding >= simdjson::SIMDJSON_PADDING;
  simdjson::dom::element root;
  if (parser.parse(text, header_length, /*realloc_if_needed=*/!padded).get(root)) {
    return Error(400, "the request JSON does not parse");
  }
  simdjson::dom::array inputs;
  if (root["inputs"].get(inputs)) return Error(400, "the request has no 'inputs' array");

  EchoHttpReply reply;
  reply.content_type = "application/octet-stream";
  std::string& head = reply.body.head;
  head.reserve(128 + 128 * inputs.size());
  protocol::JsonWriter w(head);
  w.BeginObject();
  std::string_view id;
  if (!root["id"].get(id)) w.Member("id", id);
  w.Member("model_name", model.name());
  w.Member("model_version", model.version());
  w.Key("outputs");
  w.BeginArray();
  uint64_t cursor = header_length;
  for (simdjson::dom::element in : inputs) {
    std::string_view name;
    std::string_view datatype;
    simdjson::dom::array shape;
    uint64_t size = 0;
    if (in["name"].get(name) || in["datatype"].get(datatype) || in["shape"].get(shape)) {
      return Error(400, "an input needs 'name', 'datatype' and 'shape'");
    }
    if (in["parameters"]["binary_data_size"].get(size)) {
      return Error(400, "input '" + std::string(name) + "' has no binary_data_size");
    }
    if (size > body_size - cursor) {
      return Error(400, "input '" + std::string(name) + "': binary_data_size exceeds the body");
    }
    w.BeginObject();
    w.Member("name", EchoModel::OutputName(name));
    w.Member("datatype", datatype);
    w.Key("shape");
    w.BeginArray();
    for (simdjson::dom::element d : shape) {
      int64_t dim = 0;
      if (d.get(dim)) return Error(400, "input '" + std::string(name) + "': bad shape");
      w.Int(dim);
    }
    w.EndArray();
    w.Key("parameters");
    w.BeginObject();
    w.MemberUint("binary_data_size", size);
    w.EndObject();
    w.EndObject();
    reply.body.chunks.push_back(
        Buffer::Borrow(request.body.data() + cursor, size, request.keepalive));
    cursor += size;
  }
  w.EndArray();
  w.EndObject();
  if (cursor != body_size) return Error(400, "bytes after the inputs' binary data");
  reply.header_length = head.size();
  model.CountRequest();
  return reply;
}

}  // namespace

EchoHttpReply RouteEchoHttp(EchoModel& model, const EchoHttpRequest& request) {
  std::string_view path = request.target.substr(0, request.target.find('?'));
  if (!request.get && !request.post) return Error(405, "method not allowed");
  if (request.get && (path == "/v2/health/live" || path == "/v2/health/ready")) {
    return Json(200, "");
  }
  if (request.get && path == "/v2") {
    return Json(200, R"({"name":"quiver_echo_server","version":"0","extensions":[]})");
  }
  if (!Consume(path, "/v2/models/")) return Error(404, "not found");
  const std::string_view name = path.substr(0, path.find('/'));
  path.remove_prefix(name.size());
  std::string_view version;
  if (Consume(path, "/versions/")) {
    version = path.substr(0, path.find('/'));
    path.remove_prefix(version.size());
  }
  if (name != model.name() || !model.HasVersion(version)) {
    return Error(404, "Request for unknown model: '" + std::string(name) + "' is not found");
  }
  if (request.post) {
    if (path == "/infer") return Infer(model, request);
    return Error(405, "method not allowed");
  }
  if (path.empty()) return Json(200, model.metadata_json());
  if (path == "/ready") return Json(200, "");
  if (path == "/config") return Json(200, model.config_json());
  if (path == "/stats") {
    const ModelStatistics stats = model.Statistics();
    return Json(200, protocol::StatisticsJson({&stats, 1}));
  }
  return Error(404, "not found");
}

}  // namespace quiver::bench
