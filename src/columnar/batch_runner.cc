#include "columnar/batch_runner.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "core/strings.h"

namespace quiver::columnar {
namespace {

std::string ModelWhere(std::string_view model, std::string_view version) {
  std::string w = "model " + Quoted(model);
  if (!version.empty()) w += " version " + std::string(version);
  return w;
}

std::string ChunkWhere(std::string_view model, std::string_view version, int64_t begin, int64_t end,
                       int64_t rows) {
  return ModelWhere(model, version) + " rows [" + std::to_string(begin) + ", " +
         std::to_string(end) + ") of " + std::to_string(rows);
}

// Bytes of one row (dimension 0) of `t`, or an error when its buffer does not match.
Result<size_t> RowBytes(const Tensor& t, bool need_fixed_size, std::string_view what) {
  const std::string where = std::string(what) + " " + Quoted(t.name);
  if (t.shape.empty()) {
    return Status::InvalidArgument(where + " has no dimension 0 (rows); got a scalar");
  }
  const int64_t inner = ElementCount(std::span(t.shape).subspan(1));
  const int64_t total = ElementCount(t.shape);
  if (inner < 0 || total < 0) {
    return Status::InvalidArgument(where + " has an invalid shape " + ShapeToString(t.shape));
  }
  const size_t element = DataTypeSize(t.datatype);
  if (element == 0) {
    if (!need_fixed_size) return size_t{0};
    return Status::Unsupported(where + " has data type " + std::string(DataTypeName(t.datatype)) +
                               "; splitting rows needs a fixed-size data type");
  }
  if (t.data.size() != static_cast<size_t>(total) * element) {
    return Status::InvalidArgument(where + " holds " + std::to_string(t.data.size()) +
                                   " bytes; shape " + ShapeToString(t.shape) + " of " +
                                   std::string(DataTypeName(t.datatype)) + " needs " +
                                   std::to_string(static_cast<size_t>(total) * element));
  }
  return static_cast<size_t>(inner) * element;
}

// Outputs for zero rows, from the model config (see the header).
Result<TensorMap> ZeroRowOutputs(const ModelConfig& config, std::string_view model,
                                 const BatchOptions& options) {
  std::vector<std::string> names = options.requested_outputs;
  if (names.empty()) {
    for (const auto& out : config.output()) names.push_back(out.name());
  }
  TensorMap result;
  for (const std::string& name : names) {
    const auto& outs = config.output();
    auto it =
        std::find_if(outs.begin(), outs.end(), [&](const auto& o) { return o.name() == name; });
    if (it == outs.end()) {
      return Status::InvalidArgument(ModelWhere(model, options.version) + " has no output " +
                                     Quoted(name));
    }
    Shape shape;
    if (config.max_batch_size() > 0) shape.push_back(0);
    for (int64_t d : it->dims()) shape.push_back(std::max<int64_t>(d, 0));
    if (shape.empty()) shape.push_back(0);
    shape[0] = 0;
    result[name] = Tensor{name, DataTypeFromConfigName(inference::DataType_Name(it->data_type())),
                          std::move(shape), Buffer::Allocate(0)};
  }
  return result;
}

// Keeps the requested outputs of one whole response (all of them when none is requested).
Result<TensorMap> TakeOutputs(InferResponse response, const std::vector<std::string>& requested,
                              const std::string& where) {
  TensorMap result;
  for (Tensor& t : response.outputs) {
    if (requested.empty() ||
        std::find(requested.begin(), requested.end(), t.name) != requested.end()) {
      std::string name = t.name;
      result[name] = std::move(t);
    }
  }
  for (const std::string& name : requested) {
    if (result.find(name) == result.end()) {
      return Status::Internal(where + ": the response has no output " + Quoted(name));
    }
  }
  return result;
}

// Shared by the sender and the callbacks of one RunBatched call. Callbacks hold it by
// shared_ptr, so even their last unlock never touches freed memory.
class Gatherer {
 public:
  Gatherer(std::string where, int64_t rows, std::vector<std::string> requested)
      : where_(std::move(where)), rows_(rows), requested_(std::move(requested)) {}

  // Sender: waits for a free in-flight slot; false when an error ended the call.
  bool Acquire(int max_in_flight) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ < max_in_flight || !error_.ok(); });
    if (!error_.ok()) return false;
    ++in_flight_;
    return true;
  }

  // Callback of chunk [begin, end): copies the outputs into place, or records the error.
  void Complete(Result<InferResponse> response, int64_t begin, int64_t end) {
    Status s = response.ok() ? Gather(*response, begin, end) : response.status();
    std::lock_guard lock(mu_);
    if (!s.ok() && error_.ok()) {
      error_ = s.WithContext(where_ + " rows [" + std::to_string(begin) + ", " +
                             std::to_string(end) + ") of " + std::to_string(rows_));
    }
    --in_flight_;
    cv_.notify_all();
  }

  // Sender: waits until every sent chunk's callback has run, then returns the outputs.
  Result<TensorMap> Finish() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    if (!error_.ok()) return error_;
    TensorMap result;
    for (Slot& s : slots_) result[s.tensor.name] = std::move(s.tensor);
    return result;
  }

 private:
  struct Slot {
    Tensor tensor;  // [rows, ...], allocated from the first response
    size_t row_bytes = 0;
  };

  // Allocates one output per wanted tensor of `response`. Requires mu_.
  Status AllocateLocked(const InferResponse& response) {
    std::vector<const Tensor*> wanted;
    if (requested_.empty()) {
      for (const Tensor& t : response.outputs) wanted.push_back(&t);
    } else {
      for (const std::string& name : requested_) {
        auto it = std::find_if(response.outputs.begin(), response.outputs.end(),
                               [&](const Tensor& t) { return t.name == name; });
        if (it == response.outputs.end()) {
          return Status::Internal("the response has no output " + Quoted(name));
        }
        wanted.push_back(&*it);
      }
    }
    for (const Tensor* t : wanted) {
      auto row_bytes = RowBytes(*t, /*need_fixed_size=*/true, "output");
      if (!row_bytes.ok()) return row_bytes.status();
      Shape shape = t->shape;
      shape[0] = rows_;
      slots_.push_back(Slot{Tensor{t->name, t->datatype, std::move(shape),
                                   Buffer::Allocate(static_cast<size_t>(rows_) * *row_bytes)},
                            *row_bytes});
    }
    allocated_ = true;
    return Status::Ok();
  }

  Status Gather(const InferResponse& response, int64_t begin, int64_t end) {
    std::vector<std::pair<std::byte*, const Tensor*>> copies;
    {
      std::lock_guard lock(mu_);
      if (!error_.ok()) return Status::Ok();  // the call fails anyway; skip the copy
      if (!allocated_) QUIVER_RETURN_IF_ERROR(AllocateLocked(response));
      for (Slot& slot : slots_) {
        auto it = std::find_if(response.outputs.begin(), response.outputs.end(),
                               [&](const Tensor& t) { return t.name == slot.tensor.name; });
        if (it == response.outputs.end()) {
          return Status::Internal("the response has no output " + Quoted(slot.tensor.name));
        }
        const Tensor& t = *it;
        const bool same_inner =
            t.shape.size() == slot.tensor.shape.size() &&
            std::equal(t.shape.begin() + 1, t.shape.end(), slot.tensor.shape.begin() + 1);
        if (t.datatype != slot.tensor.datatype || !same_inner || t.shape[0] != end - begin ||
            t.data.size() != static_cast<size_t>(end - begin) * slot.row_bytes) {
          Shape expected = slot.tensor.shape;
          expected[0] = end - begin;
          return Status::Internal(
              "output " + Quoted(t.name) + " is " + std::string(DataTypeName(t.datatype)) + " " +
              ShapeToString(t.shape) + " with " + std::to_string(t.data.size()) +
              " bytes; expected " + std::string(DataTypeName(slot.tensor.datatype)) + " " +
              ShapeToString(expected) + " like the other chunks");
        }
        copies.emplace_back(
            slot.tensor.data.mutable_data() + static_cast<size_t>(begin) * slot.row_bytes, &t);
      }
    }
    // Disjoint destination rows: no lock needed while copying.
    for (const auto& [dst, t] : copies) {
      if (t->data.size() > 0) std::memcpy(dst, t->data.data(), t->data.size());
    }
    return Status::Ok();
  }

  const std::string where_;  // "model 'm' version v", for error messages
  const int64_t rows_;
  const std::vector<std::string> requested_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;        // guarded by mu_
  Status error_;             // guarded by mu_: the first chunk error
  bool allocated_ = false;   // guarded by mu_
  std::vector<Slot> slots_;  // guarded by mu_ (rows written outside it, disjointly)
};

// One request, waited for.
Result<InferResponse> InferBlocking(InferenceService& service, InferRequest request) {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<InferResponse>> result;
  };
  auto waiter = std::make_shared<Waiter>();
  service.Infer(std::move(request), [waiter](Result<InferResponse> r) {
    std::lock_guard lock(waiter->mu);
    waiter->result.emplace(std::move(r));
    waiter->cv.notify_all();
  });
  std::unique_lock lock(waiter->mu);
  waiter->cv.wait(lock, [&] { return waiter->result.has_value(); });
  return std::move(*waiter->result);
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> SplitRows(int64_t rows, int64_t chunk) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  if (rows <= 0 || chunk <= 0) return ranges;
  ranges.reserve(static_cast<size_t>((rows + chunk - 1) / chunk));
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    ranges.emplace_back(begin, std::min(rows, begin + chunk));
  }
  return ranges;
}

Result<Tensor> SliceRows(const Tensor& t, int64_t begin, int64_t end) {
  auto row_bytes = RowBytes(t, /*need_fixed_size=*/true, "tensor");
  if (!row_bytes.ok()) return row_bytes.status();
  if (begin < 0 || end < begin || end > t.shape[0]) {
    return Status::InvalidArgument("tensor " + Quoted(t.name) + ": rows [" + std::to_string(begin) +
                                   ", " + std::to_string(end) + ") are outside [0, " +
                                   std::to_string(t.shape[0]) + ")");
  }
  Tensor slice{t.name, t.datatype, t.shape, {}};
  slice.shape[0] = end - begin;
  slice.data = t.data.Slice(static_cast<size_t>(begin) * *row_bytes,
                            static_cast<size_t>(end - begin) * *row_bytes);
  return slice;
}

Result<TensorMap> RunBatched(InferenceService& service, std::string_view model,
                             std::span<const Tensor> inputs, const BatchOptions& options) {
  const std::string where = ModelWhere(model, options.version);
  if (inputs.empty()) return Status::InvalidArgument(where + ": no inputs given");
  if (options.max_in_flight < 1) {
    return Status::InvalidArgument(where + ": max_in_flight " +
                                   std::to_string(options.max_in_flight) + " is less than 1");
  }
  if (options.max_batch_size < 0) {
    return Status::InvalidArgument(where + ": max_batch_size " +
                                   std::to_string(options.max_batch_size) + " is negative");
  }
  auto config = service.GetModelConfig(model, options.version);
  if (!config.ok()) return config.status();
  const int64_t model_max = config->max_batch_size();
  const bool split = model_max > 0 || options.max_batch_size > 0;

  const int64_t rows = inputs[0].shape.empty() ? -1 : inputs[0].shape[0];
  for (const Tensor& in : inputs) {
    auto row_bytes = RowBytes(in, split, where + " input");
    if (!row_bytes.ok()) return row_bytes.status();
    if (in.shape[0] != rows) {
      return Status::InvalidArgument(where + ": input " + Quoted(in.name) + " has " +
                                     std::to_string(in.shape[0]) + " rows but input " +
                                     Quoted(inputs[0].name) + " has " + std::to_string(rows));
    }
  }
  if (rows == 0) return ZeroRowOutputs(*config, model, options);

  int64_t chunk = rows;
  if (model_max > 0) {
    chunk = options.max_batch_size > 0 ? std::min(options.max_batch_size, model_max) : model_max;
  } else if (options.max_batch_size > 0) {
    chunk = options.max_batch_size;
  }
  const auto ranges = SplitRows(rows, chunk);
  auto make_request = [&](int64_t begin, int64_t end) {
    InferRequest request;
    request.model = std::string(model);
    request.version = options.version;
    request.requested_outputs = options.requested_outputs;
    request.timeout_us = options.timeout_us;
    request.priority = options.priority;
    request.deadline = options.deadline;
    request.inputs.reserve(inputs.size());
    for (const Tensor& in : inputs) {
      // Validated above: a slice of a checked tensor within its rows cannot fail.
      request.inputs.push_back(ranges.size() == 1 ? in : *SliceRows(in, begin, end));
    }
    return request;
  };

  if (ranges.size() == 1) {
    const std::string chunk_where = ChunkWhere(model, options.version, 0, rows, rows);
    auto response = InferBlocking(service, make_request(0, rows));
    if (!response.ok()) return response.status().WithContext(chunk_where);
    return TakeOutputs(std::move(*response), options.requested_outputs, chunk_where);
  }

  auto gatherer = std::make_shared<Gatherer>(where, rows, options.requested_outputs);
  for (const auto& [begin, end] : ranges) {
    if (!gatherer->Acquire(options.max_in_flight)) break;
    service.Infer(make_request(begin, end),
                  [gatherer, begin = begin, end = end](Result<InferResponse> r) {
                    gatherer->Complete(std::move(r), begin, end);
                  });
  }
  return gatherer->Finish();
}

}  // namespace quiver::columnar
