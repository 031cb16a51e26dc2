#pragma once
// RunBatched: one big set of row-aligned tensors -> requests of at most max_batch_size
// rows, sent concurrently through any InferenceService, outputs gathered back in row order.

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "service/inference_service.h"

namespace quiver::columnar {

struct BatchOptions {
  std::string version;  // empty: the model's default version
  // Outputs to return; empty: every output the model returns (the config's when there are
  // zero rows).
  std::vector<std::string> requested_outputs;
  // Rows per request. 0: the model config's max_batch_size. Larger than it: clamped to it.
  // For a model with max_batch_size 0 (no batch dimension) the inputs go whole in one
  // request unless this is > 0: then dimension 0 is split anyway — only right when the
  // model treats rows independently (the caller's call).
  int64_t max_batch_size = 0;
  int max_in_flight = 4;    // requests outstanding at once (>= 1); the sender waits beyond
  uint64_t timeout_us = 0;  // copied into every request (InferRequest's meaning)
  uint64_t priority = 0;
  // Deadline of every chunk request (remote transports enforce it); max() = none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Output name -> tensor.
using TensorMap = std::map<std::string, Tensor, std::less<>>;

// Runs `model` on `inputs`, which share dimension 0 (rows), in chunks of rows.
// - Each request's inputs borrow slices of the callers' buffers (no copy); the caller keeps
//   `inputs` alive for the call (it blocks until the end).
// - Outputs: one tensor per output, shape [rows, ...], rows in input order whatever order
//   the responses arrive in. With a single request the response tensors are returned as
//   they are (they may share memory with the inputs, e.g. for an identity model);
//   otherwise they are copied into fresh tensors, so chunked outputs need a fixed-size
//   data type (BYTES: UNSUPPORTED) and the same trailing shape in every chunk.
// - Zero rows: the service is not called (only GetModelConfig); outputs come from the
//   config with shape [0, dims...], where a variable dim (-1) becomes 0.
// - Errors: a bad input set (INVALID_ARGUMENT), the config lookup's error, or the first
//   failed chunk's error (its code kept, the message prefixed with the model, version and
//   the chunk's rows [a, b)). After an error no further chunk is sent, and the call
//   returns only after every callback of a sent chunk has run.
// Blocks the calling thread: never call it from an InferCallback of the same service.
// Thread-safe (no shared state between calls).
Result<TensorMap> RunBatched(InferenceService& service, std::string_view model,
                             std::span<const Tensor> inputs, const BatchOptions& options);

// The row ranges [begin, end) of at most `chunk` (>= 1) rows that cover [0, rows) in order.
std::vector<std::pair<int64_t, int64_t>> SplitRows(int64_t rows, int64_t chunk);

// A tensor sharing `t`'s buffer that holds rows [begin, end) of dimension 0. `t` must have
// a fixed-size data type, rank >= 1 and a byte size matching its shape (INVALID_ARGUMENT
// otherwise, also for a range outside [0, shape[0]]).
Result<Tensor> SliceRows(const Tensor& t, int64_t begin, int64_t end);

}  // namespace quiver::columnar
