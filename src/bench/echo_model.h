#pragma once
// EchoModel: the one model quiver_echo_server answers for, identity_fp32 as models/ ships
// it (INPUT0 -> OUTPUT0, FP32, dims [-1]), with no engine behind it. Its configuration,
// metadata and their JSON bodies are built once; only the request count changes.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "service/inference_service.h"

namespace quiver::bench {

class EchoModel {
 public:
  EchoModel();

  const std::string& name() const { return metadata_.name; }
  // The only version: "1".
  const std::string& version() const { return metadata_.versions.front(); }
  // True for "" (the default version) and "1".
  bool HasVersion(std::string_view version) const;
  const ModelConfig& config() const { return config_; }
  const ModelMetadata& metadata() const { return metadata_; }
  // The REST bodies of GET /v2/models/M and /v2/models/M/config, as quiver serve writes them.
  const std::string& metadata_json() const { return metadata_json_; }
  const std::string& config_json() const { return config_json_; }

  // An echoed input's output name: INPUTn -> OUTPUTn (what the identity backend
  // answers), any other name unchanged.
  static std::string OutputName(std::string_view input);

  // Counts one echoed request; thread-safe.
  void CountRequest() { requests_.fetch_add(1, std::memory_order_relaxed); }
  // The statistics extension's view: request and inference counts only (no timing: the
  // echo reads no clock per request).
  ModelStatistics Statistics() const;

 private:
  ModelConfig config_;
  ModelMetadata metadata_;
  std::string metadata_json_;
  std::string config_json_;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace quiver::bench
