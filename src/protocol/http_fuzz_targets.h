#pragma once
// The one-input functions behind the HTTP codec's libFuzzer targets, shared by the fuzz
// entry points (http_*_fuzz.cc, built by scripts/fuzz with clang -fsanitize=fuzzer) and by
// http_codec_fuzz_test.cc, which replays the corpora in tests/data/fuzz/<target>/ in every
// ctest run. Each function returns "" or a description of a broken invariant; memory
// errors are the sanitizers' business. Header-only so that no fuzz code is compiled into
// quiver_protocol_http.
//
// Targets and their input layouts:
//   http_infer_fuzz     ParseInferRequest on raw bytes: byte 0 is the
//                       Inference-Header-Content-Length (0xff: none, else min(byte, rest)),
//                       the rest is the body. Whatever parses is echoed through
//                       EncodeInferResponse and ParseInferResponse.
//   http_response_fuzz  ParseInferResponse (the client side) on the same layout.
//   http_split_fuzz     The binary-extension split on both sides. The bytes are a recipe
//                       (SplitRecipe below) for a JSON header, header length and binary
//                       tail, so that sizes and offsets line up often enough to reach the
//                       cursor walk; when the recipe is consistent the parse must succeed
//                       and every binary tensor must be exactly its slice of the tail.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <simdjson.h>

#include "core/data_type.h"
#include "protocol/http_infer_codec.h"

namespace quiver::protocol::fuzz {

inline constexpr size_t kRegionSize = 64;

// Concatenation without operator+ chains (g++ 12 -O3 reports false -Wrestrict on those).
inline std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out += p;
  return out;
}

// Shared-memory regions "in" and "out", kRegionSize bytes each.
class FuzzRegions final : public SharedMemoryResolver {
 public:
  FuzzRegions() {
    for (const char* name : {"in", "out"}) {
      regions_[name] = std::make_shared<std::vector<std::byte>>(kRegionSize);
    }
  }
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t byte_size) const override {
    auto it = regions_.find(std::string(region));
    if (it == regions_.end()) return Status::NotFound("no region");
    if (offset > kRegionSize || byte_size > kRegionSize - offset) {
      return Status::InvalidArgument("bounds");
    }
    return Buffer::Borrow(it->second->data() + offset, static_cast<size_t>(byte_size),
                          it->second);
  }

 private:
  std::map<std::string, std::shared_ptr<std::vector<std::byte>>> regions_;
};

// Reads every byte of `b`, so that a view past its allocation trips ASan.
inline void Touch(const Buffer& b) {
  volatile unsigned char sink = 0;
  for (std::byte x : b.bytes()) sink = sink ^ static_cast<unsigned char>(x);
  (void)sink;
}

// A body laid out as the frontend hands it over: exactly sized (so ASan sees reads past
// it) unless `padding` readable bytes are asked for.
struct OwnedBody {
  std::shared_ptr<std::vector<std::byte>> storage;
  InferBody body;

  OwnedBody(std::string_view bytes, std::optional<uint64_t> header_length, size_t padding = 0)
      : storage(std::make_shared<std::vector<std::byte>>(bytes.size() + padding)) {
    if (!bytes.empty()) std::memcpy(storage->data(), bytes.data(), bytes.size());
    body.bytes = std::span<const std::byte>(storage->data(), bytes.size());
    body.padding = padding;
    body.keepalive = storage;
    body.header_length = header_length;
  }
  const std::byte* begin() const { return body.bytes.data(); }
  const std::byte* end() const { return body.bytes.data() + body.bytes.size(); }
};

// Tensors whose bytes lie in the body must be binary data: inside the part after the
// header, in order, together exactly that part (the cursor walk). `tensors` are the
// parsed inputs or outputs.
inline std::string CheckBinarySlices(const std::vector<Tensor>& tensors, const OwnedBody& b,
                                     uint64_t header_length) {
  const std::byte* cursor = b.begin() + header_length;
  for (const Tensor& t : tensors) {
    Touch(t.data);
    const std::byte* p = t.data.data();
    if (p == nullptr || p < b.begin() || p > b.end()) continue;  // JSON data, shm, empty
    if (t.data.size() == 0 && p == cursor) continue;
    if (p != cursor) return "tensor '" + t.name + "' does not start where the previous ended";
    if (t.data.size() > static_cast<size_t>(b.end() - p)) {
      return "tensor '" + t.name + "' runs past the body";
    }
    cursor += t.data.size();
  }
  if (cursor != b.end()) return "the binary tensors do not cover the bytes after the header";
  return "";
}

// A decoded response hands out tensors whose fixed-size data matches their shape, so that
// callers may index data_as<T>() by the shape.
inline std::string CheckOutputSizes(const std::vector<Tensor>& outputs) {
  for (const Tensor& t : outputs) {
    if (t.data.empty()) continue;  // shared memory, or no elements
    const int64_t count = ElementCount(t.shape);
    if (count < 0) return "output '" + t.name + "' has data but an invalid shape";
    const size_t elem = DataTypeSize(t.datatype);
    if (elem != 0 && t.data.size() / elem != static_cast<uint64_t>(count)) {
      return Cat({"output '", t.name, "' has ", std::to_string(t.data.size()),
                  " bytes, not what its shape needs"});
    }
    if (elem != 0 && t.data.size() % elem != 0) {
      return "output '" + t.name + "' has a partial element";
    }
  }
  return "";
}

// Echoes the parsed inputs as outputs through the response codec; what encodes must
// decode, unless JSON cannot carry a value: like Triton, the writer emits NaN/Infinity
// and BYTES elements as they are (not necessarily UTF-8), which strict JSON refuses.
inline std::string EchoThroughResponse(const ParsedInferRequest& parsed,
                                       const SharedMemoryResolver* shm) {
  InferResponse response{"m", "1", parsed.request.id, parsed.request.inputs};
  auto encoded = EncodeInferResponse(response, parsed.plan, shm);
  if (!encoded.ok()) {
    if (encoded.status().message().empty()) return "an encode error without a message";
    return "";
  }
  const std::string flat = encoded->Flatten();
  OwnedBody out(flat, encoded->header_length());
  auto decoded = ParseInferResponse(out.body);
  if (!decoded.ok()) {
    if (encoded->json.find("NaN") != std::string::npos ||
        encoded->json.find("Infinity") != std::string::npos ||
        !simdjson::validate_utf8(encoded->json.data(), encoded->json.size())) {
      return "";
    }
    return Cat({"the encoded response does not decode: ", decoded.status().ToString(),
                "\nresponse JSON: ", encoded->json});
  }
  if (decoded->outputs.size() != response.outputs.size()) {
    return "the decoded response has another number of outputs";
  }
  std::string error =
      CheckBinarySlices(decoded->outputs, out, encoded->header_length().value_or(flat.size()));
  return error.empty() ? CheckOutputSizes(decoded->outputs) : error;
}

// Raw layout: byte 0 selects the header length, the rest is the body.
inline std::optional<uint64_t> RawHeaderLength(const uint8_t* data, size_t size) {
  if (data[0] == 0xff) return std::nullopt;
  return std::min<uint64_t>(data[0], size - 1);
}

inline std::string InferRequestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const auto header_length = RawHeaderLength(data, size);
  OwnedBody b(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
              header_length);
  FuzzRegions regions;
  auto parsed = ParseInferRequest(b.body, "m", "", &regions);
  if (!parsed.ok()) {
    return parsed.status().message().empty() ? "a parse error without a message" : "";
  }
  std::string error =
      CheckBinarySlices(parsed->request.inputs, b, header_length.value_or(size - 1));
  if (!error.empty()) return error;
  return EchoThroughResponse(*parsed, &regions);
}

inline std::string InferResponseOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const auto header_length = RawHeaderLength(data, size);
  OwnedBody b(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
              header_length);
  auto parsed = ParseInferResponse(b.body);
  if (!parsed.ok()) {
    return parsed.status().message().empty() ? "a parse error without a message" : "";
  }
  std::string error =
      CheckBinarySlices(parsed->outputs, b, header_length.value_or(size - 1));
  if (!error.empty()) return error;
  return CheckOutputSizes(parsed->outputs);
}

// ---- http_split_fuzz ---------------------------------------------------------------

// Reads the recipe; zeros once the input is used up.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() {
    const uint16_t lo = U8();
    return static_cast<uint16_t>(lo | (U8() << 8));
  }
  // The unread bytes (the tail's contents).
  std::span<const uint8_t> Rest() const { return {data_ + pos_, size_ - std::min(pos_, size_)}; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// How one tensor of the recipe travels.
enum class Carry : uint8_t {
  kBinaryExact,  // binary_data_size = shape x type size (BYTES: a size from the recipe)
  kBinaryRaw,    // binary_data_size from the recipe (16 bits, mod 4096)
  kJsonData,     // "data" with as many zeros as the shape needs
  kSharedMemory, // region "in", offset and size from the recipe
  kBinaryHuge,   // binary_data_size near 2^64
  kDataAndBinary,
  kBinaryBadType,  // binary_data_size that is not an unsigned integer
  kNothing,
};

/* Recipe layout (SplitOneInput):
     byte 0  flags: bits 0-1 header length (0 exact, 1 none, 2 exact + int8 delta,
             3 16-bit value); bit 2 64 padding bytes after the body; bit 3
             "binary_data_output": true; bit 4 spaces after the JSON inside the header;
             bit 5 tail length off by an int8 delta; bit 6 an "outputs" array; bit 7 an "id"
     byte 1  number of tensors (mod 6)
     per tensor: name (mod 8: "T0".."T7", equal names collide), datatype (mod 16: 0 and
             15 unknown names), rank (mod 4) and one byte per dimension (< 0xf0: mod 8,
             else 2^(byte & 63)), carry (mod 8, Carry), plus the bytes that carry needs
     then   the delta bytes the flags ask for; the rest fills the binary tail (repeated). */
struct SplitTensor {
  std::string name;
  std::string datatype;
  DataType type = DataType::kInvalid;
  std::vector<uint64_t> shape;
  bool huge_shape = false;  // a dimension of 2^8 or more
  Carry carry = Carry::kNothing;
  uint64_t binary_size = 0;  // binary_data_size written (binary carries)
  uint64_t shm_offset = 0, shm_size = 0;
  std::string json;  // the tensor's JSON object
};

inline constexpr const char* kBadSizes[] = {"-1", "1.5", "\"8\"", "null", "18446744073709551616"};

inline std::string SplitOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  const uint8_t flags = in.U8();
  const int count = in.U8() % 6;
  std::vector<SplitTensor> tensors(static_cast<size_t>(count));
  for (SplitTensor& t : tensors) {
    t.name = Cat({"T", std::to_string(in.U8() % 8)});
    const int type_index = in.U8() % 16;
    if (type_index == 0) {
      t.datatype = "FOO";
    } else if (type_index == 15) {
      t.datatype = "fp32";
    } else {
      t.type = static_cast<DataType>(type_index);
      t.datatype = std::string(DataTypeName(t.type));
    }
    const int rank = in.U8() % 4;
    for (int i = 0; i < rank; ++i) {
      const uint8_t d = in.U8();
      t.huge_shape |= d >= 0xf0;
      t.shape.push_back(d < 0xf0 ? d % 8 : uint64_t{1} << (d & 63));
    }
    t.carry = static_cast<Carry>(in.U8() % 8);
  }

  // Per-tensor details and JSON.
  for (SplitTensor& t : tensors) {
    uint64_t elements = 1;
    bool overflow = false;
    for (uint64_t d : t.shape) overflow |= __builtin_mul_overflow(elements, d, &elements);
    const size_t elem = DataTypeSize(t.type);
    uint64_t exact = 0;
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(elem), &exact);
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i > 0) shape += ',';
      shape += std::to_string(t.shape[i]);
    }
    shape += "]";
    t.json = Cat({R"({"name":")", t.name, R"(","datatype":")", t.datatype, R"(","shape":)", shape});
    auto zeros = [&] {
      std::string d = "[";
      const char* zero = t.type == DataType::kBool ? "false" : t.type == DataType::kBytes ? "\"\"" : "0";
      const uint64_t n = overflow || t.huge_shape ? 2 : std::min<uint64_t>(elements, 4096);
      for (uint64_t i = 0; i < n; ++i) d += Cat({i ? "," : "", zero});
      return d + ']';
    };
    switch (t.carry) {
      case Carry::kBinaryExact:
        t.binary_size = elem == 0 ? in.U8() : (overflow ? UINT64_MAX : exact);
        break;
      case Carry::kBinaryRaw: t.binary_size = in.U16() % 4096; break;
      case Carry::kBinaryHuge: t.binary_size = UINT64_MAX - in.U8(); break;
      case Carry::kDataAndBinary: t.binary_size = in.U8() % 16; break;
      case Carry::kSharedMemory:
        t.shm_offset = in.U8() % 80;
        t.shm_size = elem == 0 || overflow ? in.U8() % 80 : exact;
        break;
      default: break;
    }
    switch (t.carry) {
      case Carry::kBinaryExact:
      case Carry::kBinaryRaw:
      case Carry::kBinaryHuge:
        t.json += Cat({R"(,"parameters":{"binary_data_size":)", std::to_string(t.binary_size), "}"});
        break;
      case Carry::kDataAndBinary:
        t.json += Cat({R"(,"data":)", zeros(), R"(,"parameters":{"binary_data_size":)",
                       std::to_string(t.binary_size), "}"});
        break;
      case Carry::kJsonData: t.json += Cat({R"(,"data":)", zeros()}); break;
      case Carry::kSharedMemory:
        t.json += Cat({R"(,"parameters":{"shared_memory_region":"in","shared_memory_byte_size":)",
                       std::to_string(t.shm_size), R"(,"shared_memory_offset":)",
                       std::to_string(t.shm_offset), "}"});
        break;
      case Carry::kBinaryBadType:
        t.json += Cat({R"(,"parameters":{"binary_data_size":)",
                       kBadSizes[in.U8() % std::size(kBadSizes)], "}"});
        break;
      case Carry::kNothing: break;
    }
    t.json += "}";
  }

  // Binary tail: what the binary carries claim, in order.
  uint64_t claimed = 0;
  bool claim_overflow = false;
  std::vector<uint64_t> offsets;
  for (const SplitTensor& t : tensors) {
    offsets.push_back(claimed);
    const bool binary = t.carry == Carry::kBinaryExact || t.carry == Carry::kBinaryRaw ||
                        t.carry == Carry::kBinaryHuge;
    if (binary) claim_overflow |= __builtin_add_overflow(claimed, t.binary_size, &claimed);
  }
  const int header_mode = flags & 3;
  const int header_delta = header_mode == 2 ? static_cast<int8_t>(in.U8()) : 0;
  const uint16_t header_raw = header_mode == 3 ? in.U16() : 0;
  const int tail_delta = (flags & 0x20) ? static_cast<int8_t>(in.U8()) : 0;
  const auto fill = in.Rest();
  // Claims beyond 32 KiB are not met (they would slow the fuzzer down): the tail is then
  // just the fill bytes.
  constexpr uint64_t kMaxTail = 1 << 15;
  const uint64_t wanted = claim_overflow || claimed > kMaxTail ? fill.size() : claimed;
  const uint64_t tail_size =
      tail_delta < 0 ? wanted - std::min<uint64_t>(wanted, uint64_t(-tail_delta))
                     : wanted + static_cast<uint64_t>(tail_delta);

  // The request JSON.
  std::string json = "{";
  if (flags & 0x80) json += R"("id":"r",)";
  if (flags & 0x08) json += R"("parameters":{"binary_data_output":true},)";
  json += R"("inputs":[)";
  for (size_t i = 0; i < tensors.size(); ++i) json += Cat({i ? "," : "", tensors[i].json});
  json += "]";
  if (flags & 0x40) {
    json += R"(,"outputs":[)";
    for (size_t i = 0; i < tensors.size(); ++i) {
      json += Cat({i ? "," : "", R"({"name":")", tensors[i].name,
                   R"(","parameters":{"binary_data":)", i % 2 ? "true" : "false", "}}"});
    }
    json += "]";
  }
  json += "}";
  if (flags & 0x10) json += "   ";

  // The tail: the fill bytes, repeated.
  std::string tail(static_cast<size_t>(tail_size), '\0');
  for (size_t i = 0; !fill.empty() && i < tail.size(); i += fill.size()) {
    std::memcpy(tail.data() + i, fill.data(), std::min(fill.size(), tail.size() - i));
  }
  auto make_body = [&](const std::string& header) { return header + tail; };
  auto header_length = [&](size_t json_size) -> std::optional<uint64_t> {
    switch (header_mode) {
      case 0: return json_size;
      case 1: return std::nullopt;
      case 2:
        return header_delta < 0 ? json_size - std::min<size_t>(json_size, size_t(-header_delta))
                                : json_size + static_cast<size_t>(header_delta);
      default: return header_raw;
    }
  };
  const size_t padding = (flags & 0x04) ? 64 : 0;

  // Whether the recipe describes a well-formed request / response.
  bool names_unique = true;
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (size_t j = 0; j < i; ++j) names_unique &= tensors[i].name != tensors[j].name;
  }
  auto tensor_ok = [&](const SplitTensor& t, bool request) {
    if (t.type == DataType::kInvalid || t.huge_shape) return false;
    uint64_t elements = 1;
    for (uint64_t d : t.shape) elements *= d;
    const uint64_t exact = elements * DataTypeSize(t.type);
    const bool fixed = DataTypeSize(t.type) != 0;
    switch (t.carry) {
      case Carry::kBinaryExact: return true;
      case Carry::kBinaryRaw: return !fixed || t.binary_size == exact;
      case Carry::kJsonData:
        return elements <= 4096 &&
               ((t.type != DataType::kFp16 && t.type != DataType::kBf16) || elements == 0);
      case Carry::kSharedMemory:
        return !request || (t.shm_offset + t.shm_size <= kRegionSize &&
                            (!fixed || t.shm_size == exact));
      case Carry::kNothing: return !request;
      default: return false;
    }
  };
  const bool lengths_exact = !claim_overflow && tail_size == claimed;

  // Server side.
  {
    const auto hl = header_length(json.size());
    const bool header_exact = hl.has_value() ? *hl == json.size() : claimed == 0;
    bool valid = names_unique && lengths_exact && header_exact;
    for (const SplitTensor& t : tensors) valid &= tensor_ok(t, true);
    OwnedBody b(make_body(json), hl, padding);
    FuzzRegions regions;
    auto parsed = ParseInferRequest(b.body, "m", "", &regions);
    if (!parsed.ok()) {
      if (valid) {
        return Cat({"a consistent request was refused: ", parsed.status().ToString(),
                    "\nJSON: ", json});
      }
    } else {
      const uint64_t split = hl.value_or(b.body.bytes.size());
      std::string error = CheckBinarySlices(parsed->request.inputs, b, split);
      if (error.empty() && valid) {
        for (size_t i = 0; i < tensors.size(); ++i) {
          const Tensor& got = parsed->request.inputs[i];
          const bool binary = tensors[i].carry == Carry::kBinaryExact ||
                              tensors[i].carry == Carry::kBinaryRaw;
          if (binary && (got.data.size() != tensors[i].binary_size ||
                         (got.data.size() > 0 && got.data.data() != b.begin() + split + offsets[i]))) {
            error = "input '" + tensors[i].name + "' is not its slice of the tail";
          }
        }
      }
      if (error.empty()) error = EchoThroughResponse(*parsed, &regions);
      if (!error.empty()) return error + "\nJSON: " + json;
    }
  }

  // Client side: the same tensors as the outputs of a response.
  {
    std::string response = R"({"model_name":"m","model_version":"1",)";
    if (flags & 0x80) response += R"("id":"r",)";
    response += R"("outputs":[)";
    for (size_t i = 0; i < tensors.size(); ++i) {
      const SplitTensor& t = tensors[i];
      // Shared-memory outputs come back with name, datatype and shape only.
      std::string o = t.json;
      if (t.carry == Carry::kSharedMemory) {
        o = o.substr(0, o.find(R"(,"parameters")")) + "}";
      }
      response += Cat({i ? "," : "", o});
    }
    response += "]}";
    if (flags & 0x10) response += "   ";
    const auto hl = header_length(response.size());
    const bool header_exact = hl.has_value() ? *hl == response.size() : claimed == 0;
    bool valid = lengths_exact && header_exact;
    for (const SplitTensor& t : tensors) valid &= tensor_ok(t, false);
    OwnedBody b(make_body(response), hl, padding);
    auto parsed = ParseInferResponse(b.body);
    if (!parsed.ok()) {
      if (valid) {
        return Cat({"a consistent response was refused: ", parsed.status().ToString(),
                    "\nJSON: ", response});
      }
    } else {
      const uint64_t split = hl.value_or(b.body.bytes.size());
      std::string error = CheckBinarySlices(parsed->outputs, b, split);
      if (error.empty()) error = CheckOutputSizes(parsed->outputs);
      if (error.empty() && parsed->outputs.size() != tensors.size()) {
        error = "the response has another number of outputs";
      }
      if (error.empty() && valid) {
        for (size_t i = 0; i < tensors.size(); ++i) {
          const Tensor& got = parsed->outputs[i];
          const bool binary = tensors[i].carry == Carry::kBinaryExact ||
                              tensors[i].carry == Carry::kBinaryRaw;
          if (binary && (got.data.size() != tensors[i].binary_size ||
                         (got.data.size() > 0 && got.data.data() != b.begin() + split + offsets[i]))) {
            error = "output '" + tensors[i].name + "' is not its slice of the tail";
          }
        }
      }
      if (!error.empty()) return error + "\nJSON: " + response;
    }
  }
  return "";
}

}  // namespace quiver::protocol::fuzz
