#include "engine/batch_tensors.h"

#include <cstring>

namespace quiver::engine {

const Tensor* FindInput(const InferRequest& request, const std::string& name, size_t hint) {
  if (hint < request.inputs.size() && request.inputs[hint].name == name) {
    return &request.inputs[hint];
  }
  for (const Tensor& t : request.inputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status ConcatInputs(std::span<const InferRequest* const> requests, int64_t total,
                    std::vector<Tensor>& merged) {
  const auto& head = requests.front()->inputs;
  merged.reserve(head.size());
  for (size_t k = 0; k < head.size(); ++k) {
    const Tensor& h = head[k];
    size_t bytes = 0;
    for (const InferRequest* r : requests) {
      const Tensor* t = FindInput(*r, h.name, k);
      if (t == nullptr) return Status::Internal("input '" + h.name + "' missing from a batch");
      bytes += t->data.size();
    }
    Buffer buffer = Buffer::Allocate(bytes);
    std::byte* out = buffer.mutable_data();
    for (const InferRequest* r : requests) {
      const Buffer& in = FindInput(*r, h.name, k)->data;
      if (!in.empty()) std::memcpy(out, in.data(), in.size());
      out += in.size();
    }
    Shape shape = h.shape;
    shape[0] = total;
    merged.push_back(Tensor{h.name, h.datatype, std::move(shape), std::move(buffer)});
  }
  return Status::Ok();
}

Status SplitOutputs(std::vector<Tensor>& outputs, std::span<const int64_t> sizes,
                    std::vector<std::vector<Tensor>>& per_request) {
  per_request.resize(sizes.size());
  for (auto& v : per_request) v.reserve(outputs.size());
  for (const Tensor& out : outputs) {
    const int64_t total = out.shape[0];
    const int64_t per_row = ElementCount(std::span<const int64_t>(out.shape).subspan(1));
    if (per_row < 0) {
      return Status::Internal("output '" + out.name + "' has invalid shape " +
                              ShapeToString(out.shape));
    }
    std::vector<size_t> offsets;  // BYTES: byte offset of each element, plus the end
    size_t row_bytes = 0;
    if (out.datatype == DataType::kBytes) {
      auto walked = BytesElementOffsets(out.data.bytes());
      if (!walked.ok()) {
        return Status::Internal("output '" + out.name +
                                "' is not a valid BYTES buffer: " + walked.status().message());
      }
      offsets = std::move(walked).value();
      if (offsets.size() - 1 != static_cast<size_t>(total * per_row)) {
        return Status::Internal("output '" + out.name + "' has " +
                                std::to_string(offsets.size() - 1) + " elements, shape " +
                                ShapeToString(out.shape) + " needs " +
                                std::to_string(total * per_row));
      }
    } else {
      const size_t element = DataTypeSize(out.datatype);
      row_bytes = static_cast<size_t>(per_row) * element;
      if (element == 0 || out.data.size() != row_bytes * static_cast<size_t>(total)) {
        return Status::Internal("output '" + out.name + "' has " + std::to_string(out.data.size()) +
                                " bytes, shape " + ShapeToString(out.shape) + " of " +
                                std::string(DataTypeName(out.datatype)) + " needs " +
                                std::to_string(row_bytes * static_cast<size_t>(total)));
      }
    }
    size_t row = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const auto rows = static_cast<size_t>(sizes[i]);
      size_t begin = 0;
      size_t end = 0;
      if (out.datatype == DataType::kBytes) {
        begin = offsets[row * static_cast<size_t>(per_row)];
        end = offsets[(row + rows) * static_cast<size_t>(per_row)];
      } else {
        begin = row * row_bytes;
        end = (row + rows) * row_bytes;
      }
      Shape shape = out.shape;
      shape[0] = sizes[i];
      per_request[i].push_back(
          Tensor{out.name, out.datatype, std::move(shape), out.data.Slice(begin, end - begin)});
      row += rows;
    }
  }
  return Status::Ok();
}

}  // namespace quiver::engine
