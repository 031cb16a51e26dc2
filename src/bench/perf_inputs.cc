#include "bench/perf_inputs.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "core/strings.h"

namespace quiver::bench {
namespace {

using nlohmann::json;

// IEEE half from a float, rounding to nearest (subnormals flushed to zero; enough for load).
uint16_t ToHalf(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exponent = static_cast<int32_t>((x >> 23) & 0xffu) - 127 + 15;
  uint32_t mantissa = x & 0x7fffffu;
  if (((x >> 23) & 0xffu) == 0xffu)
    return static_cast<uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u : 0));
  if (exponent <= 0) return static_cast<uint16_t>(sign);
  if (exponent >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  uint32_t half = sign | (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13);
  if ((mantissa & 0x1fffu) > 0x1000u || ((mantissa & 0x1fffu) == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(half);
}

uint16_t ToBf16(float f) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16); }

// Writes `v` as element `i` of a buffer of `type`.
void Store(std::byte* base, size_t i, DataType type, double v) {
  auto put = [&](auto value) { std::memcpy(base + i * sizeof(value), &value, sizeof(value)); };
  switch (type) {
    case DataType::kBool:
      put(static_cast<uint8_t>(v != 0));
      break;
    case DataType::kUint8:
      put(static_cast<uint8_t>(v));
      break;
    case DataType::kUint16:
      put(static_cast<uint16_t>(v));
      break;
    case DataType::kUint32:
      put(static_cast<uint32_t>(v));
      break;
    case DataType::kUint64:
      put(static_cast<uint64_t>(v));
      break;
    case DataType::kInt8:
      put(static_cast<int8_t>(v));
      break;
    case DataType::kInt16:
      put(static_cast<int16_t>(v));
      break;
    case DataType::kInt32:
      put(static_cast<int32_t>(v));
      break;
    case DataType::kInt64:
      put(static_cast<int64_t>(v));
      break;
    case DataType::kFp16:
      put(ToHalf(static_cast<float>(v)));
      break;
    case DataType::kBf16:
      put(ToBf16(static_cast<float>(v)));
      break;
    case DataType::kFp32:
      put(static_cast<float>(v));
      break;
    case DataType::kFp64:
      put(v);
      break;
    case DataType::kBytes:
    case DataType::kInvalid:
      break;
  }
}

bool IsFloat(DataType t) {
  return t == DataType::kFp16 || t == DataType::kBf16 || t == DataType::kFp32 ||
         t == DataType::kFp64;
}

void Flatten(const json& value, std::vector<const json*>& out) {
  if (value.is_array()) {
    for (const json& v : value) Flatten(v, out);
  } else {
    out.push_back(&value);
  }
}

Status BadEntry(size_t entry, const std::string& input, const std::string& why) {
  return Status::InvalidArgument("--input-data: data[" + std::to_string(entry) + "]." + input +
                                 ": " + why);
}

}  // namespace

Result<std::vector<InputSpec>> ResolveInputs(const ModelMetadata& metadata, int64_t max_batch_size,
                                             const std::map<std::string, Shape>& shapes) {
  std::vector<InputSpec> specs;
  for (const TensorMetadata& t : metadata.inputs) {
    InputSpec spec{t.name, t.datatype, t.shape};
    if (max_batch_size > 0 && !spec.dims.empty()) spec.dims.erase(spec.dims.begin());
    auto given = shapes.find(t.name);
    if (given != shapes.end()) {
      if (given->second.size() != spec.dims.size()) {
        return Status::InvalidArgument(
            "--shape " + t.name + ": rank " + std::to_string(given->second.size()) +
            ", but the model's input has shape " + ShapeToString(spec.dims) +
            (max_batch_size > 0 ? " (without the batch dimension)" : ""));
      }
      for (size_t i = 0; i < spec.dims.size(); ++i) {
        if (spec.dims[i] >= 0 && spec.dims[i] != given->second[i]) {
          return Status::InvalidArgument("--shape " + t.name + ": " + ShapeToString(given->second) +
                                         " does not fit the model's " + ShapeToString(spec.dims));
        }
      }
      spec.dims = given->second;
    }
    for (int64_t d : spec.dims) {
      if (d < 0) {
        return Status::InvalidArgument("input " + Quoted(t.name) + " has variable shape " +
                                       ShapeToString(spec.dims) + ": give it with --shape " +
                                       t.name + ":D1,D2,...");
      }
    }
    specs.push_back(std::move(spec));
  }
  for (const auto& [name, shape] : shapes) {
    const bool known =
        std::any_of(specs.begin(), specs.end(), [&](const InputSpec& s) { return s.name == name; });
    if (!known) {
      return Status::InvalidArgument("--shape " + name + ": the model has no such input");
    }
  }
  return specs;
}

std::vector<Tensor> SyntheticSample(const std::vector<InputSpec>& inputs, bool zero,
                                    int string_length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> real(0.0, 1.0);
  std::uniform_int_distribution<int> small(0, 127);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::vector<Tensor> sample;
  for (const InputSpec& spec : inputs) {
    const auto count = static_cast<size_t>(ElementCount(spec.dims));
    Tensor t{spec.name, spec.datatype, spec.dims, {}};
    if (spec.datatype == DataType::kBytes) {
      std::vector<std::string> elements(count);
      if (!zero) {
        for (std::string& e : elements) {
          e.resize(static_cast<size_t>(string_length));
          for (char& c : e) c = static_cast<char>(letter(rng));
        }
      }
      t.data = MakeBytesBuffer(elements);
    } else {
      t.data = Buffer::Allocate(count * DataTypeSize(spec.datatype));
      std::byte* base = t.data.mutable_data();
      if (zero) {
        if (!t.data.empty()) std::memset(base, 0, t.data.size());
      } else {
        for (size_t i = 0; i < count; ++i) {
          const double v = IsFloat(spec.datatype)             ? real(rng)
                           : spec.datatype == DataType::kBool ? small(rng) % 2
                                                              : small(rng);
          Store(base, i, spec.datatype, v);
        }
      }
    }
    sample.push_back(std::move(t));
  }
  return sample;
}

Result<std::vector<std::vector<Tensor>>> SamplesFromJson(std::string_view text,
                                                         const std::vector<InputSpec>& inputs) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("--input-data: not valid JSON");
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array() || doc["data"].empty()) {
    return Status::InvalidArgument(
        "--input-data: expected {\"data\": [{\"INPUT\": [...]}, ...]} with at least one entry");
  }
  std::vector<std::vector<Tensor>> samples;
  const json& entries = doc["data"];
  for (size_t e = 0; e < entries.size(); ++e) {
    const json& entry = entries[e];
    if (!entry.is_object()) {
      return Status::InvalidArgument("--input-data: data[" + std::to_string(e) +
                                     "] is not an object (sequence streams are not supported)");
    }
    std::vector<Tensor> sample;
    for (const InputSpec& spec : inputs) {
      if (!entry.contains(spec.name)) return BadEntry(e, spec.name, "missing");
      const json& given = entry[spec.name];
      const json* content = &given;
      Shape shape = spec.dims;
      if (given.is_object()) {
        if (!given.contains("content")) {
          return BadEntry(e, spec.name,
                          "only {\"content\": [...], \"shape\": [...]} objects "
                          "are supported (no b64)");
        }
        content = &given["content"];
        if (given.contains("shape")) {
          if (!given["shape"].is_array()) return BadEntry(e, spec.name, "shape is not an array");
          shape.clear();
          for (const json& d : given["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0) {
              return BadEntry(e, spec.name, "shape must hold non-negative integers");
            }
            shape.push_back(d.get<int64_t>());
          }
        }
      }
      std::vector<const json*> values;
      Flatten(*content, values);
      const int64_t expected = ElementCount(shape);
      if (expected < 0 || static_cast<size_t>(expected) != values.size()) {
        return BadEntry(e, spec.name,
                        std::to_string(values.size()) + " elements, shape " + ShapeToString(shape) +
                            " needs " + std::to_string(expected));
      }
      Tensor t{spec.name, spec.datatype, shape, {}};
      if (spec.datatype == DataType::kBytes) {
        std::vector<std::string> elements;
        for (const json* v : values) {
          if (!v->is_string()) return BadEntry(e, spec.name, "BYTES elements must be strings");
          elements.push_back(v->get<std::string>());
        }
        t.data = MakeBytesBuffer(elements);
      } else {
        t.data = Buffer::Allocate(values.size() * DataTypeSize(spec.datatype));
        for (size_t i = 0; i < values.size(); ++i) {
          const json& v = *values[i];
          if (!v.is_number() && !v.is_boolean()) {
            return BadEntry(e, spec.name, "elements must be numbers");
          }
          Store(t.data.mutable_data(), i, spec.datatype,
                v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>());
        }
      }
      sample.push_back(std::move(t));
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::vector<InferRequest> MakeRequests(const std::string& model, const std::string& version,
                                       const std::vector<std::vector<Tensor>>& samples,
                                       int64_t batch, bool batching) {
  std::vector<InferRequest> requests;
  for (const std::vector<Tensor>& sample : samples) {
    InferRequest r;
    r.model = model;
    r.version = version;
    for (const Tensor& t : sample) {
      if (!batching) {
        r.inputs.push_back(t);
        continue;
      }
      Tensor b{t.name, t.datatype, t.shape, {}};
      b.shape.insert(b.shape.begin(), batch);
      b.data = Buffer::Allocate(t.data.size() * static_cast<size_t>(batch));
      for (int64_t i = 0; i < batch; ++i) {
        if (!t.data.empty()) {
          std::memcpy(b.data.mutable_data() + static_cast<size_t>(i) * t.data.size(), t.data.data(),
                      t.data.size());
        }
      }
      r.inputs.push_back(std::move(b));
    }
    requests.push_back(std::move(r));
  }
  return requests;
}

}  // namespace quiver::bench
