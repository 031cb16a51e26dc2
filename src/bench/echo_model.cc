#include "bench/echo_model.h"

#include <google/protobuf/text_format.h>

#include <cstdio>
#include <cstdlib>

#include "protocol/json_messages.h"

namespace quiver::bench {
namespace {

// models/identity_fp32/config.pbtxt, less what only the engine reads (instance_group).
constexpr char kConfig[] = R"pb(
  name: "identity_fp32"
  backend: "identity"
  max_batch_size: 0 input
  [ {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }] output
  [ {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }]
)pb";

// A broken constant is a programming error: fail at start, loudly.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "quiver_echo_server: %s\n", what.c_str());
  std::abort();
}

TensorMetadata FromConfig(const std::string& name, inference::DataType type,
                          const google::protobuf::RepeatedField<int64_t>& dims) {
  TensorMetadata t;
  t.name = name;
  t.datatype = DataTypeFromConfigName(inference::DataType_Name(type));
  t.shape.assign(dims.begin(), dims.end());
  return t;
}

}  // namespace

EchoModel::EchoModel() {
  if (!google::protobuf::TextFormat::ParseFromString(kConfig, &config_)) {
    Die("the built-in model configuration does not parse");
  }
  metadata_.name = config_.name();
  metadata_.versions = {"1"};
  metadata_.platform = config_.backend();
  for (const auto& in : config_.input()) {
    metadata_.inputs.push_back(FromConfig(in.name(), in.data_type(), in.dims()));
  }
  for (const auto& out : config_.output()) {
    metadata_.outputs.push_back(FromConfig(out.name(), out.data_type(), out.dims()));
  }
  metadata_json_ = protocol::ModelMetadataJson(metadata_);
  auto config_json = protocol::ModelConfigJson(config_);
  if (!config_json.ok()) Die(config_json.status().ToString());
  config_json_ = std::move(config_json).value();
}

bool EchoModel::HasVersion(std::string_view version) const {
  return version.empty() || version == this->version();
}

std::string EchoModel::OutputName(std::string_view input) {
  constexpr std::string_view kIn = "INPUT";
  if (!input.starts_with(kIn)) return std::string(input);
  return "OUTPUT" + std::string(input.substr(kIn.size()));
}

ModelStatistics EchoModel::Statistics() const {
  const uint64_t n = requests_.load(std::memory_order_relaxed);
  ModelStatistics s;
  s.name = name();
  s.version = version();
  s.inference_count = n;
  s.execution_count = n;
  s.success.count = n;
  return s;
}

}  // namespace quiver::bench
