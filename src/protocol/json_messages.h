#pragma once
// JSON bodies of the KServe v2 / Triton REST endpoints other than infer: server and model
// metadata, model configuration (extension_model_configuration.md), statistics
// (extension_statistics.md), repository index and load/unload
// (extension_model_repository.md), system shared memory (extension_shared_memory.md) and
// the {"error": ...} object. Field names and order follow what Triton returns.
// Stateless and thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::protocol {

// {"error": message}
std::string ErrorJson(std::string_view message);

// {"name","version","extensions":[...]}
std::string ServerMetadataJson(const ServerMetadata& metadata);

// {"name","versions":[...],"platform","inputs":[{"name","datatype","shape"}],"outputs":[...]}
std::string ModelMetadataJson(const ModelMetadata& metadata);

// The protobuf JSON form of the configuration, as Triton returns it: proto field names,
// every scalar field printed even at its default, enums by name, and 64-bit integers as
// JSON numbers (protobuf would print them as strings). INTERNAL if protobuf fails.
Result<std::string> ModelConfigJson(const ModelConfig& config);

// {"model_stats":[{"name","version","last_inference","inference_count",
//  "execution_count","inference_stats":{...},"response_stats":{},"batch_stats":[...],
//  "memory_usage":[]}]}
std::string StatisticsJson(std::span<const ModelStatistics> stats);

// [{"name","version"?,"state","reason"?}]; with `ready_only`, READY entries only.
std::string RepositoryIndexJson(const RepositoryIndex& index, bool ready_only);

// One registered system shared memory region, as the status endpoint reports it.
struct SystemShmStatus {
  std::string name;
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};
// [{"name","key","offset","byte_size"}]
std::string SystemShmStatusJson(std::span<const SystemShmStatus> regions);

// Body of POST v2/systemsharedmemory/region/{r}/register.
struct SystemShmRegisterRequest {
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};
// Requires "key" (string) and "byte_size"; "offset" defaults to 0. INVALID_ARGUMENT
// naming the field otherwise.
Result<SystemShmRegisterRequest> ParseSystemShmRegisterRequest(std::string_view body);

// Body of POST v2/repository/index: the optional "ready" flag (false for an empty body).
Result<bool> ParseRepositoryIndexRequest(std::string_view body);

// Body of POST v2/repository/models/{m}/load. An empty body or no parameters is a plain
// load; "config" or "file:" overrides are UNSUPPORTED (Quiver loads from the repository).
Status ParseModelLoadRequest(std::string_view body);

// Body of POST v2/repository/models/{m}/unload: checks the optional
// parameters.unload_dependents flag (Quiver models have no dependents).
Status ParseModelUnloadRequest(std::string_view body);

}  // namespace quiver::protocol
