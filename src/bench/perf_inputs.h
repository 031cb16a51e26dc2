#pragma once
// The requests `quiver perf` sends, built once before the load starts: the model's inputs
// (datatype and shape from its metadata, variable dimensions from --shape, the batch
// dimension from -b) filled with random or zero data, or with the entries of a
// perf_analyzer input-data JSON file (one request per entry, sent round-robin).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench/perf_options.h"
#include "service/types.h"

namespace quiver::bench {

// One input of the model, its shape without the batch dimension, fully known.
struct InputSpec {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape dims;
};

// The inputs of `metadata`. `max_batch_size` > 0: the metadata's first dimension is the
// batch dimension and is dropped. Variable (-1) dimensions come from `shapes`; a --shape
// for an input with fixed dimensions must agree with them. INVALID_ARGUMENT naming the
// input when a variable dimension has no --shape, a --shape names no input, or ranks differ.
Result<std::vector<InputSpec>> ResolveInputs(const ModelMetadata& metadata, int64_t max_batch_size,
                                             const std::map<std::string, Shape>& shapes);

// Random (seeded) or zero tensors for one batch-1 sample per input. BYTES elements are
// `string_length` random lowercase letters (or empty strings for zero data).
std::vector<Tensor> SyntheticSample(const std::vector<InputSpec>& inputs, bool zero,
                                    int string_length, uint64_t seed);

// Samples of a perf_analyzer input-data JSON document:
//   {"data": [{"INPUT0": [1, 2, ...]}, {"INPUT0": {"content": [...], "shape": [2, 2]}}, ...]}
// Nested arrays are flattened; BYTES inputs take strings. Every entry must give every
// input, with as many elements as its shape (the entry's "shape", else the resolved dims).
Result<std::vector<std::vector<Tensor>>> SamplesFromJson(std::string_view text,
                                                         const std::vector<InputSpec>& inputs);

// One request per sample: each input's sample repeated `batch` times along a new leading
// batch dimension when `batching` (the model's max_batch_size > 0), as is otherwise.
std::vector<InferRequest> MakeRequests(const std::string& model, const std::string& version,
                                       const std::vector<std::vector<Tensor>>& samples,
                                       int64_t batch, bool batching);

}  // namespace quiver::bench
