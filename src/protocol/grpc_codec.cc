#include "protocol/grpc_codec.h"

#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "core/strings.h"

namespace quiver::protocol {
namespace {

// The wire carries little-endian tensors; raw bytes are used as they are.
static_assert(std::endian::native == std::endian::little,
              "the gRPC codec assumes a little-endian host");
static_assert(sizeof(bool) == 1, "BOOL contents are borrowed as one byte per element");

using ParamMap = google::protobuf::Map<std::string, inference::InferParameter>;

// A non-negative integer parameter, given as int64_param or uint64_param. `describe()`
// names the parameter in error messages (called only on error).
template <typename Describe>
Result<uint64_t> UnsignedParam(const inference::InferParameter& p, Describe&& describe) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      if (p.int64_param() < 0) {
        return Status::InvalidArgument(std::string(describe()) + " must be >= 0, got " +
                                       std::to_string(p.int64_param()));
      }
      return static_cast<uint64_t>(p.int64_param());
    case inference::InferParameter::kUint64Param:
      return p.uint64_param();
    default:
      return Status::InvalidArgument(std::string(describe()) +
                                     " must be an int64_param or uint64_param");
  }
}

// A tensor's reference to registered shared memory, from its parameters (nullopt: none).
Result<std::optional<SharedMemoryRef>> ParseShmParams(const ParamMap& params, std::string_view kind,
                                                      std::string_view name) {
  // Most tensors carry no parameters: nothing to look up, no string built.
  if (params.empty()) return std::optional<SharedMemoryRef>();
  static const std::string kRegionKey(kShmRegionParam);
  static const std::string kOffsetKey(kShmOffsetParam);
  static const std::string kByteSizeKey(kShmByteSizeParam);
  // Error messages only: built when needed, not on the success path.
  auto what = [&] { return std::string(kind) + " " + Quoted(name); };
  SharedMemoryRef ref;
  auto region = params.find(kRegionKey);
  auto offset = params.find(kOffsetKey);
  auto size = params.find(kByteSizeKey);
  if (region == params.end()) {
    if (offset != params.end() || size != params.end()) {
      return Status::InvalidArgument(what() +
                                     ": shared_memory_offset/shared_memory_byte_size "
                                     "given without shared_memory_region");
    }
    return std::optional<SharedMemoryRef>();
  }
  if (region->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return Status::InvalidArgument(what() + ": shared_memory_region must be a string_param");
  }
  ref.region = region->second.string_param();
  if (size == params.end()) {
    return Status::InvalidArgument(what() + ": shared_memory_region " + Quoted(ref.region) +
                                   " needs shared_memory_byte_size");
  }
  auto bytes = UnsignedParam(size->second, [&] { return what() + ": shared_memory_byte_size"; });
  if (!bytes.ok()) return bytes.status();
  ref.byte_size = *bytes;
  if (offset != params.end()) {
    auto off = UnsignedParam(offset->second, [&] { return what() + ": shared_memory_offset"; });
    if (!off.ok()) return off.status();
    ref.offset = *off;
  }
  return std::optional<SharedMemoryRef>(std::move(ref));
}

// Which InferTensorContents field carries elements of `type` (nullptr: none, FP16/BF16).
const char* TypedFieldName(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return "int_contents";
    case DataType::kInt64:
      return "int64_contents";
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return "uint_contents";
    case DataType::kUint64:
      return "uint64_contents";
    case DataType::kFp32:
      return "fp32_contents";
    case DataType::kFp64:
      return "fp64_contents";
    case DataType::kBytes:
      return "bytes_contents";
    default:
      return nullptr;
  }
}

// The first non-empty typed field, or nullptr when all are empty.
const char* FirstFilledField(const inference::InferTensorContents& c) {
  if (c.bool_contents_size() > 0) return "bool_contents";
  if (c.int_contents_size() > 0) return "int_contents";
  if (c.int64_contents_size() > 0) return "int64_contents";
  if (c.uint_contents_size() > 0) return "uint_contents";
  if (c.uint64_contents_size() > 0) return "uint64_contents";
  if (c.fp32_contents_size() > 0) return "fp32_contents";
  if (c.fp64_contents_size() > 0) return "fp64_contents";
  if (c.bytes_contents_size() > 0) return "bytes_contents";
  return nullptr;
}

int FilledFieldCount(const inference::InferTensorContents& c) {
  return (c.bool_contents_size() > 0) + (c.int_contents_size() > 0) +
         (c.int64_contents_size() > 0) + (c.uint_contents_size() > 0) +
         (c.uint64_contents_size() > 0) + (c.fp32_contents_size() > 0) +
         (c.fp64_contents_size() > 0) + (c.bytes_contents_size() > 0);
}

// A view of a repeated field whose element layout is the tensor's.
template <typename T>
Buffer BorrowField(const google::protobuf::RepeatedField<T>& field,
                   const std::shared_ptr<const void>& keepalive) {
  if (field.empty()) return Buffer::Allocate(0);
  return Buffer::Borrow(field.data(), static_cast<size_t>(field.size()) * sizeof(T), keepalive);
}

// Packs 32-bit repeated values into narrower elements (the low-order bytes, as Triton).
template <typename Narrow, typename Wide>
Buffer Narrowed(const google::protobuf::RepeatedField<Wide>& field) {
  Buffer out = Buffer::Allocate(static_cast<size_t>(field.size()) * sizeof(Narrow));
  auto* dst = out.mutable_data();
  for (Wide v : field) {
    auto n = static_cast<Narrow>(v);
    std::memcpy(dst, &n, sizeof(Narrow));
    dst += sizeof(Narrow);
  }
  return out;
}

Buffer PackBytes(const google::protobuf::RepeatedPtrField<std::string>& elements) {
  size_t total = 0;
  for (const auto& e : elements) total += 4 + e.size();
  Buffer out = Buffer::Allocate(total);
  std::byte* dst = out.mutable_data();
  for (const auto& e : elements) {
    auto len = static_cast<uint32_t>(e.size());
    std::memcpy(dst, &len, 4);  // little-endian host (static_assert above)
    dst += 4;
    if (!e.empty()) std::memcpy(dst, e.data(), e.size());
    dst += e.size();
  }
  return out;
}

// Converts typed contents of `kind` tensor `name` into the tensor's byte layout.
Result<Buffer> DecodeTypedContents(std::string_view kind, std::string_view name, DataType type,
                                   int64_t element_count, const inference::InferTensorContents& c,
                                   const std::shared_ptr<const void>& keepalive) {
  // Error messages only: built when needed, not on the success path.
  auto what = [&] { return std::string(kind) + " " + Quoted(name); };
  const char* expected = TypedFieldName(type);
  if (expected == nullptr) {
    return Status::InvalidArgument(what() + " has datatype " + std::string(DataTypeName(type)) +
                                   ", which has no typed contents field: send it as raw bytes");
  }
  if (FilledFieldCount(c) > 1) {
    return Status::InvalidArgument(what() + " fills more than one typed contents field");
  }
  const char* filled = FirstFilledField(c);
  if (filled != nullptr && std::strcmp(filled, expected) != 0) {
    return Status::InvalidArgument(what() + " has datatype " + std::string(DataTypeName(type)) +
                                   " but its contents are in " + filled + " (expected " + expected +
                                   ")");
  }
  int64_t given = 0;
  Buffer data;
  switch (type) {
    case DataType::kBool:
      given = c.bool_contents_size();
      data = BorrowField(c.bool_contents(), keepalive);
      break;
    case DataType::kInt8:
      given = c.int_contents_size();
      data = Narrowed<int8_t>(c.int_contents());
      break;
    case DataType::kInt16:
      given = c.int_contents_size();
      data = Narrowed<int16_t>(c.int_contents());
      break;
    case DataType::kInt32:
      given = c.int_contents_size();
      data = BorrowField(c.int_contents(), keepalive);
      break;
    case DataType::kInt64:
      given = c.int64_contents_size();
      data = BorrowField(c.int64_contents(), keepalive);
      break;
    case DataType::kUint8:
      given = c.uint_contents_size();
      data = Narrowed<uint8_t>(c.uint_contents());
      break;
    case DataType::kUint16:
      given = c.uint_contents_size();
      data = Narrowed<uint16_t>(c.uint_contents());
      break;
    case DataType::kUint32:
      given = c.uint_contents_size();
      data = BorrowField(c.uint_contents(), keepalive);
      break;
    case DataType::kUint64:
      given = c.uint64_contents_size();
      data = BorrowField(c.uint64_contents(), keepalive);
      break;
    case DataType::kFp32:
      given = c.fp32_contents_size();
      data = BorrowField(c.fp32_contents(), keepalive);
      break;
    case DataType::kFp64:
      given = c.fp64_contents_size();
      data = BorrowField(c.fp64_contents(), keepalive);
      break;
    case DataType::kBytes:
      given = c.bytes_contents_size();
      data = PackBytes(c.bytes_contents());
      break;
    default:
      break;
  }
  if (given != element_count) {
    return Status::InvalidArgument(what() + " has " + std::to_string(given) + " elements in " +
                                   expected + " but its shape needs " +
                                   std::to_string(element_count));
  }
  return data;
}

// Number of BYTES elements in `data`, or -1 when the length prefixes are inconsistent.
int64_t CountBytesElements(std::span<const std::byte> data) {
  int64_t count = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < 4) return -1;
    uint32_t len = 0;
    std::memcpy(&len, data.data() + pos, 4);
    if (data.size() - pos - 4 < len) return -1;
    pos += 4 + static_cast<size_t>(len);
    ++count;
  }
  return count;
}

// Checks that `data` holds exactly the elements `shape` asks for.
Status CheckSize(std::string_view kind, std::string_view name, DataType type,
                 std::span<const int64_t> shape, int64_t element_count, const Buffer& data) {
  if (type == DataType::kBytes) {
    int64_t found = CountBytesElements(data.bytes());
    if (found < 0) {
      return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) +
                                     ": malformed BYTES data (a 4-byte length prefix runs past "
                                     "the end of the " +
                                     std::to_string(data.size()) + " bytes)");
    }
    if (found != element_count) {
      return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) + " holds " +
                                     std::to_string(found) + " BYTES elements but shape " +
                                     ShapeToString(shape) + " needs " +
                                     std::to_string(element_count));
    }
    return Status::Ok();
  }
  const auto expected = static_cast<uint64_t>(element_count) * DataTypeSize(type);
  if (data.size() != expected) {
    return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) + " has " +
                                   std::to_string(data.size()) + " bytes but shape " +
                                   ShapeToString(shape) + " of " + std::string(DataTypeName(type)) +
                                   " needs " + std::to_string(expected));
  }
  return Status::Ok();
}

// Datatype and element count of a wire tensor; INVALID_ARGUMENT naming it otherwise.
Status ParseTypeAndShape(std::string_view kind, std::string_view name, const std::string& datatype,
                         const google::protobuf::RepeatedField<int64_t>& wire_shape, DataType& type,
                         Shape& shape, int64_t& element_count) {
  type = DataTypeFromName(datatype);
  if (type == DataType::kInvalid) {
    return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) +
                                   " has unknown datatype " + Quoted(datatype));
  }
  shape.assign(wire_shape.begin(), wire_shape.end());
  for (int64_t d : shape) {
    if (d < 0) {
      return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) + " has shape " +
                                     ShapeToString(shape) + " with a negative dimension");
    }
  }
  element_count = ElementCount(shape);
  if (element_count < 0) {
    return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) + " has shape " +
                                   ShapeToString(shape) + " whose element count overflows");
  }
  if (type != DataType::kBytes && static_cast<uint64_t>(element_count) >
                                      std::numeric_limits<uint64_t>::max() / DataTypeSize(type)) {
    return Status::InvalidArgument(std::string(kind) + " " + Quoted(name) + " has shape " +
                                   ShapeToString(shape) + " whose byte size overflows");
  }
  return Status::Ok();
}

Status DecodeRequestParameters(const inference::ModelInferRequest& m, InferRequest& r) {
  for (const auto& [key, value] : m.parameters()) {
    if (key == "priority") {
      auto p = UnsignedParam(value, [] { return "request parameter 'priority'"; });
      if (!p.ok()) return p.status();
      r.priority = *p;
    } else if (key == "timeout") {
      auto t = UnsignedParam(value, [] { return "request parameter 'timeout'"; });
      if (!t.ok()) return t.status();
      r.timeout_us = *t;
    }
    // sequence_id / sequence_start / sequence_end and custom parameters: no meaning here.
  }
  return Status::Ok();
}

void SetDuration(const StatisticDuration& d, inference::StatisticDuration& out) {
  out.set_count(d.count);
  out.set_ns(d.ns);
}

StatisticDuration GetDuration(const inference::StatisticDuration& d) {
  return StatisticDuration{d.count(), d.ns()};
}

void EncodeTensorMetadata(const TensorMetadata& t,
                          inference::ModelMetadataResponse::TensorMetadata& out) {
  out.set_name(t.name);
  out.set_datatype(std::string(DataTypeName(t.datatype)));
  for (int64_t d : t.shape) out.add_shape(d);
}

TensorMetadata DecodeTensorMetadata(const inference::ModelMetadataResponse::TensorMetadata& t) {
  return TensorMetadata{t.name(), DataTypeFromName(t.datatype()),
                        Shape(t.shape().begin(), t.shape().end())};
}

}  // namespace

Result<DecodedInferRequest> DecodeInferRequest(
    std::shared_ptr<const inference::ModelInferRequest> message, const SharedMemoryResolver* shm) {
  const inference::ModelInferRequest& m = *message;
  const std::shared_ptr<const void> keepalive = message;
  DecodedInferRequest decoded;
  InferRequest& r = decoded.request;
  r.model = m.model_name();
  r.version = m.model_version();
  r.id = m.id();
  QUIVER_RETURN_IF_ERROR(DecodeRequestParameters(m, r));

  const int raw_count = m.raw_input_contents_size();
  int raw_used = 0;
  r.inputs.reserve(static_cast<size_t>(m.inputs_size()));
  for (const auto& in : m.inputs()) {
    Tensor t;
    t.name = in.name();
    int64_t element_count = 0;
    QUIVER_RETURN_IF_ERROR(ParseTypeAndShape("input", in.name(), in.datatype(), in.shape(),
                                             t.datatype, t.shape, element_count));
    auto ref = ParseShmParams(in.parameters(), "input", in.name());
    if (!ref.ok()) return ref.status();
    if (ref->has_value()) {
      if (in.has_contents()) {
        return Status::InvalidArgument("input " + Quoted(in.name()) +
                                       " gives both contents and a shared memory region");
      }
      if (!shm) {
        return Status::Unsupported("input " + Quoted(in.name()) +
                                   ": shared memory is not available on this endpoint");
      }
      auto view = shm->Resolve((*ref)->region, (*ref)->offset, (*ref)->byte_size);
      if (!view.ok()) return view.status().WithContext("input " + Quoted(in.name()));
      t.data = std::move(view).value();
    } else if (in.has_contents()) {
      if (raw_count > 0) {
        return Status::InvalidArgument(
            "input " + Quoted(in.name()) +
            " has typed contents but the request also uses raw_input_contents");
      }
      auto data = DecodeTypedContents("input", in.name(), t.datatype, element_count, in.contents(),
                                      keepalive);
      if (!data.ok()) return data.status();
      t.data = std::move(data).value();
    } else if (raw_used < raw_count) {
      const std::string& raw = m.raw_input_contents(raw_used++);
      t.data = Buffer::Borrow(raw.data(), raw.size(), keepalive);
    } else {
      return Status::InvalidArgument("input " + Quoted(in.name()) +
                                     " has no data: no contents, no shared memory region and "
                                     "no raw_input_contents entry left (" +
                                     std::to_string(raw_count) + " given)");
    }
    QUIVER_RETURN_IF_ERROR(CheckSize("input", t.name, t.datatype, t.shape, element_count, t.data));
    r.inputs.push_back(std::move(t));
  }
  if (raw_used != raw_count) {
    return Status::InvalidArgument("raw_input_contents has " + std::to_string(raw_count) +
                                   " entries but only " + std::to_string(raw_used) +
                                   " inputs take raw data");
  }

  r.requested_outputs.reserve(static_cast<size_t>(m.outputs_size()));
  for (const auto& out : m.outputs()) {
    if (out.parameters().contains("classification")) {
      return Status::Unsupported("output " + Quoted(out.name()) +
                                 ": the classification extension is not supported");
    }
    auto ref = ParseShmParams(out.parameters(), "output", out.name());
    if (!ref.ok()) return ref.status();
    if (ref->has_value()) {
      if (!shm) {
        return Status::Unsupported("output " + Quoted(out.name()) +
                                   ": shared memory is not available on this endpoint");
      }
      auto view = shm->Resolve((*ref)->region, (*ref)->offset, (*ref)->byte_size);
      if (!view.ok()) return view.status().WithContext("output " + Quoted(out.name()));
      decoded.shm_outputs.push_back(SharedMemoryOutput{out.name(), std::move((*ref)->region),
                                                       (*ref)->offset, (*ref)->byte_size,
                                                       std::move(view).value()});
    }
    r.requested_outputs.push_back(out.name());
  }
  return decoded;
}

Status EncodeInferResponseHeader(const InferResponse& response,
                                 std::span<const SharedMemoryOutput> shm_outputs,
                                 inference::ModelInferResponse& out, std::vector<Buffer>& raw) {
  out.set_model_name(response.model);
  out.set_model_version(response.version);
  out.set_id(response.id);
  out.mutable_outputs()->Reserve(static_cast<int>(response.outputs.size()));
  raw.clear();
  raw.reserve(response.outputs.size());
  for (const Tensor& t : response.outputs) {
    auto* o = out.add_outputs();
    o->set_name(t.name);
    o->set_datatype(std::string(DataTypeName(t.datatype)));
    o->mutable_shape()->Reserve(static_cast<int>(t.shape.size()));
    for (int64_t d : t.shape) o->add_shape(d);

    const SharedMemoryOutput* dest = nullptr;
    for (const auto& s : shm_outputs) {
      if (s.name == t.name) {
        dest = &s;
        break;
      }
    }
    if (dest == nullptr) {
      raw.push_back(t.data);
      continue;
    }
    // One raw entry per output, empty for shared-memory outputs, keeps indices aligned.
    raw.emplace_back();
    if (t.data.size() > dest->byte_size) {
      return Status::InvalidArgument("output " + Quoted(t.name) + " has " +
                                     std::to_string(t.data.size()) +
                                     " bytes but its shared memory region " + Quoted(dest->region) +
                                     " slot holds only " + std::to_string(dest->byte_size));
    }
    if (!t.data.empty() && t.data.data() != dest->target.data()) {
      // memmove: an identity model may return a view of the same region.
      std::memmove(dest->target.mutable_data(), t.data.data(), t.data.size());
    }
    auto& params = *o->mutable_parameters();
    params[std::string(kShmRegionParam)].set_string_param(dest->region);
    params[std::string(kShmOffsetParam)].set_int64_param(static_cast<int64_t>(dest->offset));
    params[std::string(kShmByteSizeParam)].set_int64_param(static_cast<int64_t>(t.data.size()));
  }
  return Status::Ok();
}

Status EncodeInferResponse(const InferResponse& response,
                           std::span<const SharedMemoryOutput> shm_outputs,
                           inference::ModelInferResponse& out) {
  std::vector<Buffer> raw;
  Status status = EncodeInferResponseHeader(response, shm_outputs, out, raw);
  if (!status.ok()) return status;
  out.mutable_raw_output_contents()->Reserve(static_cast<int>(raw.size()));
  for (const Buffer& b : raw) {
    out.add_raw_output_contents()->assign(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return Status::Ok();
}

void EncodeInferRequestHeader(const InferRequest& request, std::span<const SharedMemoryRef> shm,
                              inference::ModelInferRequest& out) {
  out.set_model_name(request.model);
  out.set_model_version(request.version);
  out.set_id(request.id);
  if (request.priority != 0) {
    (*out.mutable_parameters())["priority"].set_int64_param(static_cast<int64_t>(request.priority));
  }
  if (request.timeout_us != 0) {
    (*out.mutable_parameters())["timeout"].set_int64_param(
        static_cast<int64_t>(request.timeout_us));
  }
  out.mutable_inputs()->Reserve(static_cast<int>(request.inputs.size()));
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& t = request.inputs[i];
    auto* in = out.add_inputs();
    in->set_name(t.name);
    in->set_datatype(std::string(DataTypeName(t.datatype)));
    for (int64_t d : t.shape) in->add_shape(d);
    if (i < shm.size() && shm[i].in_shared_memory()) {
      auto& params = *in->mutable_parameters();
      params[std::string(kShmRegionParam)].set_string_param(shm[i].region);
      params[std::string(kShmByteSizeParam)].set_int64_param(
          static_cast<int64_t>(shm[i].byte_size));
      params[std::string(kShmOffsetParam)].set_int64_param(static_cast<int64_t>(shm[i].offset));
    }
  }
  for (const auto& name : request.requested_outputs) out.add_outputs()->set_name(name);
}

void EncodeInferRequest(const InferRequest& request, inference::ModelInferRequest& out) {
  EncodeInferRequestHeader(request, {}, out);
  for (const Tensor& t : request.inputs) {
    out.add_raw_input_contents()->assign(reinterpret_cast<const char*>(t.data.data()),
                                         t.data.size());
  }
}

Result<InferResponse> DecodeInferResponse(
    std::shared_ptr<const inference::ModelInferResponse> message) {
  const inference::ModelInferResponse& m = *message;
  const std::shared_ptr<const void> keepalive = message;
  InferResponse r;
  r.model = m.model_name();
  r.version = m.model_version();
  r.id = m.id();
  r.outputs.reserve(static_cast<size_t>(m.outputs_size()));
  for (int i = 0; i < m.outputs_size(); ++i) {
    const auto& o = m.outputs(i);
    Tensor t;
    t.name = o.name();
    int64_t element_count = 0;
    QUIVER_RETURN_IF_ERROR(ParseTypeAndShape("output", o.name(), o.datatype(), o.shape(),
                                             t.datatype, t.shape, element_count));
    const bool in_shm = o.parameters().contains(std::string(kShmRegionParam));
    if (i < m.raw_output_contents_size()) {
      const std::string& raw = m.raw_output_contents(i);
      t.data = Buffer::Borrow(raw.data(), raw.size(), keepalive);
    } else if (!in_shm) {
      auto data = DecodeTypedContents("output", o.name(), t.datatype, element_count, o.contents(),
                                      keepalive);
      if (!data.ok()) return data.status();
      t.data = std::move(data).value();
    }
    // A shared-memory output carries no bytes in the message: the client reads its region.
    if (!in_shm) {
      QUIVER_RETURN_IF_ERROR(
          CheckSize("output", t.name, t.datatype, t.shape, element_count, t.data));
    }
    r.outputs.push_back(std::move(t));
  }
  return r;
}

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFor(status.code())), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  return Status(StatusCodeFromGrpc(static_cast<int>(status.error_code())), status.error_message());
}

void EncodeServerMetadata(const ServerMetadata& metadata, inference::ServerMetadataResponse& out) {
  out.set_name(metadata.name);
  out.set_version(metadata.version);
  for (const auto& e : metadata.extensions) out.add_extensions(e);
}

ServerMetadata DecodeServerMetadata(const inference::ServerMetadataResponse& message) {
  return ServerMetadata{message.name(),
                        message.version(),
                        {message.extensions().begin(), message.extensions().end()}};
}

void EncodeModelMetadata(const ModelMetadata& metadata, inference::ModelMetadataResponse& out) {
  out.set_name(metadata.name);
  for (const auto& v : metadata.versions) out.add_versions(v);
  out.set_platform(metadata.platform);
  for (const auto& t : metadata.inputs) EncodeTensorMetadata(t, *out.add_inputs());
  for (const auto& t : metadata.outputs) EncodeTensorMetadata(t, *out.add_outputs());
}

ModelMetadata DecodeModelMetadata(const inference::ModelMetadataResponse& message) {
  ModelMetadata m;
  m.name = message.name();
  m.versions.assign(message.versions().begin(), message.versions().end());
  m.platform = message.platform();
  for (const auto& t : message.inputs()) m.inputs.push_back(DecodeTensorMetadata(t));
  for (const auto& t : message.outputs()) m.outputs.push_back(DecodeTensorMetadata(t));
  return m;
}

void EncodeRepositoryIndex(const RepositoryIndex& index, bool ready_only,
                           inference::RepositoryIndexResponse& out) {
  for (const auto& e : index) {
    if (ready_only && e.state != "READY") continue;
    auto* m = out.add_models();
    m->set_name(e.name);
    m->set_version(e.version);
    m->set_state(e.state);
    m->set_reason(e.reason);
  }
}

RepositoryIndex DecodeRepositoryIndex(const inference::RepositoryIndexResponse& message) {
  RepositoryIndex index;
  index.reserve(static_cast<size_t>(message.models_size()));
  for (const auto& m : message.models()) {
    index.push_back(RepositoryEntry{m.name(), m.version(), m.state(), m.reason()});
  }
  return index;
}

void EncodeStatistics(std::span<const ModelStatistics> stats,
                      inference::ModelStatisticsResponse& out) {
  for (const auto& s : stats) {
    auto* m = out.add_model_stats();
    m->set_name(s.name);
    m->set_version(s.version);
    m->set_last_inference(s.last_inference_ms);
    m->set_inference_count(s.inference_count);
    m->set_execution_count(s.execution_count);
    auto* is = m->mutable_inference_stats();
    SetDuration(s.success, *is->mutable_success());
    SetDuration(s.fail, *is->mutable_fail());
    SetDuration(s.queue, *is->mutable_queue());
    SetDuration(s.compute_input, *is->mutable_compute_input());
    SetDuration(s.compute_infer, *is->mutable_compute_infer());
    SetDuration(s.compute_output, *is->mutable_compute_output());
    // No response cache: present and zero, as Triton reports them without a cache.
    is->mutable_cache_hit();
    is->mutable_cache_miss();
    for (const auto& b : s.batch_stats) {
      auto* bs = m->add_batch_stats();
      bs->set_batch_size(b.batch_size);
      SetDuration(b.compute_input, *bs->mutable_compute_input());
      SetDuration(b.compute_infer, *bs->mutable_compute_infer());
      SetDuration(b.compute_output, *bs->mutable_compute_output());
    }
  }
}

std::vector<ModelStatistics> DecodeStatistics(const inference::ModelStatisticsResponse& message) {
  std::vector<ModelStatistics> stats;
  stats.reserve(static_cast<size_t>(message.model_stats_size()));
  for (const auto& m : message.model_stats()) {
    ModelStatistics s;
    s.name = m.name();
    s.version = m.version();
    s.last_inference_ms = m.last_inference();
    s.inference_count = m.inference_count();
    s.execution_count = m.execution_count();
    const auto& is = m.inference_stats();
    s.success = GetDuration(is.success());
    s.fail = GetDuration(is.fail());
    s.queue = GetDuration(is.queue());
    s.compute_input = GetDuration(is.compute_input());
    s.compute_infer = GetDuration(is.compute_infer());
    s.compute_output = GetDuration(is.compute_output());
    for (const auto& b : m.batch_stats()) {
      s.batch_stats.push_back(BatchStatistics{b.batch_size(), GetDuration(b.compute_input()),
                                              GetDuration(b.compute_infer()),
                                              GetDuration(b.compute_output())});
    }
    stats.push_back(std::move(s));
  }
  return stats;
}

}  // namespace quiver::protocol
