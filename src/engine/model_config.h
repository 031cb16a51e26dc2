#pragma once
// Loading Triton-style model configurations (config.pbtxt) into Quiver's ModelConfig.
//
// Quiver's proto is a subset of Triton's, so a Triton config may contain fields Quiver
// does not know (optimization, model_warmup, sequence_batching, ...). Those are skipped
// with one warning each instead of failing the load; anything Quiver does know is
// checked strictly. Error policy: configuration errors are INVALID_ARGUMENT and name the
// file, the field, the bad value and what is expected.
//
// All functions are stateless and thread-safe.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::engine {

// A parsed (and, from LoadModelConfig, normalized) configuration with its diagnostics.
struct LoadedConfig {
  ModelConfig config;
  std::vector<std::string> warnings;  // human-readable, each names the file and the field
  std::string text;                   // the raw config.pbtxt text (for change detection)
};

// Parses protobuf text format. Fields unknown to Quiver yield one warning each:
//   "<source>:<line>:<col>: field '<name>' is not supported by Quiver and is ignored"
// Syntax errors and invalid values give INVALID_ARGUMENT "<source>:<line>:<col>: <what>".
// Lines and columns are 1-based. Does not normalize.
Result<LoadedConfig> ParseModelConfig(std::string_view text, std::string_view source);

// Fills Triton's defaults and validates `config` in place (see model_config.cc for the
// rules); `model_dir_name` is the model's directory name. Errors are INVALID_ARGUMENT
// "<source>: field '<field>' ..."; warnings are appended to `warnings`.
Status NormalizeModelConfig(ModelConfig& config, std::string_view model_dir_name,
                            std::string_view source, std::vector<std::string>& warnings);

// Reads <model_dir>/config.pbtxt, parses and normalizes it. A missing config.pbtxt is
// INVALID_ARGUMENT whose message shows what to write; a missing model_dir is NOT_FOUND.
Result<LoadedConfig> LoadModelConfig(const std::filesystem::path& model_dir);

// The Quiver DataType of a config data_type (TYPE_STRING -> kBytes).
DataType ToDataType(inference::DataType type);

}  // namespace quiver::engine
