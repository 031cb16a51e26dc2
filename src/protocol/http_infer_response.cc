// Server side: EncodeInferResponse.

#include <cstring>

#include "core/strings.h"
#include <string>

#include "protocol/http_infer_codec.h"
#include "protocol/http_tensor_json.h"
#include "protocol/json_writer.h"

namespace quiver::protocol {
namespace {

// Copies `tensor` into the planned shared-memory slice (resolved at parse time, or now).
Status WriteToSharedMemory(const Tensor& tensor, const OutputRequest& request,
                           const SharedMemoryResolver* shm) {
  const TensorName where("output", tensor.name);
  const SharedMemoryRef& ref = request.shm;
  if (tensor.data.size() > ref.byte_size) {
    return Status::InvalidArgument(
        "shared memory size specified with the request for " + where + " (" +
        std::to_string(ref.byte_size) + " bytes) should be at least " +
        std::to_string(tensor.data.size()) + " bytes to hold the results");
  }
  Result<Buffer> slice = Status::Unknown("unresolved");
  if (request.destination.has_value()) {
    slice = *request.destination;
  } else if (shm != nullptr) {
    slice = shm->Resolve(ref.region, ref.offset, ref.byte_size);
  } else {
    return Status::Unsupported(where + ": shared memory is not available on this endpoint");
  }
  if (!slice.ok()) return slice.status().WithContext(where.str());
  if (slice->size() < tensor.data.size()) {
    return Status::InvalidArgument(where + ": the shared memory slice is too small");
  }
  if (!tensor.data.empty() && slice->mutable_data() != tensor.data.data()) {
    // memmove: the output may alias an input that was read from the same region.
    std::memmove(slice->mutable_data(), tensor.data.data(), tensor.data.size());
  }
  return Status::Ok();
}

void WriteHead(JsonWriter& w, const Tensor& t) {
  w.Member("name", t.name);
  w.Member("datatype", DataTypeName(t.datatype));
  w.Key("shape");
  w.BeginArray();
  for (int64_t d : t.shape) w.Int(d);
  w.EndArray();
}

}  // namespace

Result<EncodedBody> EncodeInferResponse(const InferResponse& response, const ResponsePlan& plan,
                                        const SharedMemoryResolver* shm) {
  EncodedBody out;
  // Typical header: ~100 bytes per output plus JSON data; avoid most regrowth.
  out.json.reserve(128 + 96 * response.outputs.size());
  JsonWriter w(out.json);
  w.BeginObject();
  if (!response.id.empty()) w.Member("id", response.id);
  w.Member("model_name", response.model);
  w.Member("model_version", response.version);
  w.Key("outputs");
  w.BeginArray();
  for (const Tensor& t : response.outputs) {
    const OutputRequest* requested = plan.Find(t.name);
    const Transport transport = requested ? requested->transport : plan.default_transport;
    w.BeginObject();
    WriteHead(w, t);
    switch (transport) {
      case Transport::kSharedMemory:
        QUIVER_RETURN_IF_ERROR(WriteToSharedMemory(t, *requested, shm));
        break;
      case Transport::kBinary:
        w.Key("parameters");
        w.BeginObject();
        w.MemberUint("binary_data_size", t.data.size());
        w.EndObject();
        if (!t.data.empty()) out.binary.push_back(t.data);
        break;
      case Transport::kJson:
        w.Key("data");
        QUIVER_RETURN_IF_ERROR(EncodeJsonData(w, t, TensorName("output", t.name)));
        break;
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

}  // namespace quiver::protocol
