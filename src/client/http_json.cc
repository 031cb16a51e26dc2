#include "client/http_json.h"

#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

#include "core/strings.h"

namespace quiver::client {
namespace {

using Json = nlohmann::json;

// nlohmann throws on type mismatches; these cold-path parsers convert its exceptions
// into INVALID_ARGUMENT at the boundary (no exception leaves this file).
struct BadField {
  std::string what;
};

Result<Json> Parse(std::string_view text, std::string_view what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status::InvalidArgument("the " + std::string(what) + " is not valid JSON");
  }
  return j;
}

const Json* Field(const Json& obj, const char* name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

std::string String(const Json& obj, const char* name, bool required = false) {
  const Json* f = Field(obj, name);
  if (f == nullptr || f->is_null()) {
    if (required) throw BadField{"has no '" + std::string(name) + "'"};
    return {};
  }
  if (!f->is_string()) throw BadField{"'" + std::string(name) + "' is not a string"};
  return f->get<std::string>();
}

// Unsigned integer as a number or a decimal string (protobuf prints 64-bit ones so).
uint64_t Uint(const Json& obj, const char* name) {
  const Json* f = Field(obj, name);
  if (f == nullptr || f->is_null()) return 0;
  if (f->is_number_unsigned()) return f->get<uint64_t>();
  if (f->is_number_integer() && f->get<int64_t>() >= 0) return f->get<uint64_t>();
  if (f->is_string()) {
    const std::string s = f->get<std::string>();
    size_t used = 0;
    try {
      const uint64_t v = std::stoull(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  throw BadField{"'" + std::string(name) + "' is not a non-negative integer"};
}

std::vector<std::string> Strings(const Json& obj, const char* name) {
  std::vector<std::string> out;
  const Json* f = Field(obj, name);
  if (f == nullptr || f->is_null()) return out;
  if (!f->is_array()) throw BadField{"'" + std::string(name) + "' is not an array"};
  for (const Json& e : *f) {
    if (!e.is_string()) throw BadField{"'" + std::string(name) + "' holds a non-string"};
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<TensorMetadata> Tensors(const Json& obj, const char* name) {
  std::vector<TensorMetadata> out;
  const Json* f = Field(obj, name);
  if (f == nullptr || f->is_null()) return out;
  if (!f->is_array()) throw BadField{"'" + std::string(name) + "' is not an array"};
  for (const Json& e : *f) {
    TensorMetadata t;
    t.name = String(e, "name", true);
    const std::string type = String(e, "datatype", true);
    t.datatype = DataTypeFromName(type);
    if (t.datatype == DataType::kInvalid) {
      throw BadField{"tensor " + Quoted(t.name) + " has an unknown datatype " + Quoted(type)};
    }
    const Json* shape = Field(e, "shape");
    if (shape == nullptr || !shape->is_array()) {
      throw BadField{"tensor " + Quoted(t.name) + " has no 'shape' array"};
    }
    for (const Json& d : *shape) {
      if (!d.is_number_integer()) throw BadField{"tensor " + Quoted(t.name) + " has a bad shape"};
      t.shape.push_back(d.get<int64_t>());
    }
    out.push_back(std::move(t));
  }
  return out;
}

StatisticDuration Duration(const Json& obj, const char* name) {
  StatisticDuration d;
  const Json* f = Field(obj, name);
  if (f == nullptr || f->is_null()) return d;
  d.count = Uint(*f, "count");
  d.ns = Uint(*f, "ns");
  return d;
}

// Runs `body` on the parsed document, turning BadField and nlohmann errors into
// INVALID_ARGUMENT prefixed with `what`.
template <typename T, typename Fn>
Result<T> Convert(std::string_view text, std::string_view what, Fn body) {
  auto j = Parse(text, what);
  if (!j.ok()) return j.status();
  try {
    return body(*j);
  } catch (const BadField& e) {
    return Status::InvalidArgument("the " + std::string(what) + " " + e.what);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("the " + std::string(what) + " is malformed: " + e.what());
  }
}

}  // namespace

Result<ServerMetadata> ParseServerMetadataJson(std::string_view json) {
  return Convert<ServerMetadata>(json, "server metadata", [](const Json& j) {
    if (!j.is_object()) throw BadField{"is not an object"};
    ServerMetadata m;
    m.name = String(j, "name");
    m.version = String(j, "version");
    m.extensions = Strings(j, "extensions");
    return m;
  });
}

Result<ModelMetadata> ParseModelMetadataJson(std::string_view json) {
  return Convert<ModelMetadata>(json, "model metadata", [](const Json& j) {
    if (!j.is_object()) throw BadField{"is not an object"};
    ModelMetadata m;
    m.name = String(j, "name", true);
    m.versions = Strings(j, "versions");
    m.platform = String(j, "platform");
    m.inputs = Tensors(j, "inputs");
    m.outputs = Tensors(j, "outputs");
    return m;
  });
}

Result<ModelConfig> ParseModelConfigJson(std::string_view json) {
  ModelConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    return Status::InvalidArgument("the model configuration is malformed: " +
                                   std::string(status.message()));
  }
  return config;
}

Result<RepositoryIndex> ParseRepositoryIndexJson(std::string_view json) {
  return Convert<RepositoryIndex>(json, "repository index", [](const Json& j) {
    if (!j.is_array()) throw BadField{"is not an array"};
    RepositoryIndex index;
    for (const Json& e : j) {
      RepositoryEntry r;
      r.name = String(e, "name", true);
      r.version = String(e, "version");
      r.state = String(e, "state");
      r.reason = String(e, "reason");
      index.push_back(std::move(r));
    }
    return index;
  });
}

Result<std::vector<ModelStatistics>> ParseStatisticsJson(std::string_view json) {
  return Convert<std::vector<ModelStatistics>>(json, "statistics", [](const Json& j) {
    const Json* all = Field(j, "model_stats");
    if (all == nullptr || !all->is_array()) throw BadField{"has no 'model_stats' array"};
    std::vector<ModelStatistics> out;
    for (const Json& e : *all) {
      ModelStatistics s;
      s.name = String(e, "name", true);
      s.version = String(e, "version");
      s.last_inference_ms = Uint(e, "last_inference");
      s.inference_count = Uint(e, "inference_count");
      s.execution_count = Uint(e, "execution_count");
      if (const Json* inf = Field(e, "inference_stats")) {
        s.success = Duration(*inf, "success");
        s.fail = Duration(*inf, "fail");
        s.queue = Duration(*inf, "queue");
        s.compute_input = Duration(*inf, "compute_input");
        s.compute_infer = Duration(*inf, "compute_infer");
        s.compute_output = Duration(*inf, "compute_output");
      }
      if (const Json* batches = Field(e, "batch_stats"); batches && batches->is_array()) {
        for (const Json& b : *batches) {
          BatchStatistics bs;
          bs.batch_size = Uint(b, "batch_size");
          bs.compute_input = Duration(b, "compute_input");
          bs.compute_infer = Duration(b, "compute_infer");
          bs.compute_output = Duration(b, "compute_output");
          s.batch_stats.push_back(bs);
        }
      }
      out.push_back(std::move(s));
    }
    return out;
  });
}

Status ErrorFromHttpResponse(int http_status, std::string_view body) {
  StatusCode code = StatusCodeFromHttp(http_status);
  if (code == StatusCode::kOk) code = StatusCode::kUnknown;  // not an error: caller's misuse
  std::string message;
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && j.is_object()) {
    auto it = j.find("error");
    if (it != j.end() && it->is_string()) message = it->get<std::string>();
  }
  if (message.empty()) {
    const size_t first = body.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos) {
      const size_t last = body.find_last_not_of(" \t\r\n");
      message = std::string(body.substr(first, std::min<size_t>(last - first + 1, 1024)));
    }
  }
  if (message.empty()) message = "HTTP " + std::to_string(http_status);
  return Status(code, std::move(message));
}

}  // namespace quiver::client
