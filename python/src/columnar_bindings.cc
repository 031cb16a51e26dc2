#include "columnar_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "columnar/batch_runner.h"
#include "columnar/jagged.h"
#include "columnar/pad.h"
#include "columnar/reduce.h"
#include "errors.h"
#include "numpy_tensor.h"
#include "py_runtime.h"

namespace quiver::python {
namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using OffsetArray = py::array_t<int64_t, py::array::c_style>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::span<const float> Span(const FloatArray& a) {
  return {a.data(), static_cast<size_t>(a.size())};
}
std::span<const int64_t> Span(const OffsetArray& a) {
  return {a.data(), static_cast<size_t>(a.size())};
}

// Jagged lists from numpy: owns (references to) the arrays and the names the view uses.
// Built with the GIL held; view() may then be used without it.
struct JaggedArrays {
  OffsetArray offsets;
  std::vector<std::string> names;
  std::vector<FloatArray> contents;
  std::optional<FloatArray> sort_key;

  columnar::JaggedView View() const {
    columnar::JaggedView view;
    view.name = "offsets";
    view.offsets = Span(offsets);
    for (size_t i = 0; i < contents.size(); ++i) {
      view.fields.push_back({names[i], Span(contents[i])});
    }
    return view;
  }
};

JaggedArrays MakeJagged(const py::object& offsets, const py::object& fields,
                        const py::object& sort_by) {
  JaggedArrays j;
  j.offsets = ContiguousArray<int64_t>(offsets, "offsets");
  if (j.offsets.ndim() != 1) {
    ThrowStatus(Status::InvalidArgument("offsets must be one-dimensional"));
  }
  if (py::hasattr(fields, "items")) {
    for (py::handle item : fields.attr("items")()) {
      auto pair = py::reinterpret_borrow<py::tuple>(item);
      j.names.push_back(py::str(pair[0]).cast<std::string>());
      j.contents.push_back(ContiguousArray<float>(pair[1], "field content"));
    }
  } else if (py::isinstance<py::array>(fields)) {
    j.names.push_back("field0");
    j.contents.push_back(ContiguousArray<float>(fields, "field content"));
  } else {
    for (py::handle item : fields) {
      j.names.push_back("field" + std::to_string(j.names.size()));
      j.contents.push_back(ContiguousArray<float>(item, "field content"));
    }
  }
  for (size_t i = 0; i < j.contents.size(); ++i) {
    if (j.contents[i].ndim() != 1) {
      ThrowStatus(Status::InvalidArgument("field '" + j.names[i] +
                                          "': content must be one-dimensional"));
    }
  }
  if (py::isinstance<py::str>(sort_by)) {
    const std::string key = sort_by.cast<std::string>();
    for (size_t i = 0; i < j.names.size(); ++i) {
      if (j.names[i] == key) j.sort_key = j.contents[i];
    }
    if (!j.sort_key) {
      ThrowStatus(Status::InvalidArgument("sort_by names '" + key + "', which is not a field"));
    }
  } else if (!sort_by.is_none()) {
    j.sort_key = ContiguousArray<float>(sort_by, "sort_by");
  }
  return j;
}

columnar::PadLayout LayoutArg(const std::string& layout) {
  if (layout == "objects_features") return columnar::PadLayout::kObjectsFeatures;
  if (layout == "features_objects") return columnar::PadLayout::kFeaturesObjects;
  ThrowStatus(Status::InvalidArgument("layout must be 'objects_features' ([n, max_len, F]) or "
                                      "'features_objects' ([n, F, max_len]), not '" +
                                      layout + "'"));
}

columnar::Reduction ReductionArg(const std::string& op) {
  if (op == "sum") return columnar::Reduction::kSum;
  if (op == "mean") return columnar::Reduction::kMean;
  if (op == "max") return columnar::Reduction::kMax;
  if (op == "min") return columnar::Reduction::kMin;
  if (op == "first") return columnar::Reduction::kFirst;
  ThrowStatus(Status::InvalidArgument("reduce must be one of 'sum', 'mean', 'max', 'min', "
                                      "'first', not '" + op + "'"));
}

columnar::PadOptions PadOptionsFor(const JaggedArrays& j, int64_t max_len, float pad_value,
                                   const std::string& layout) {
  columnar::PadOptions o;
  o.max_len = max_len;
  o.pad_value = pad_value;
  o.layout = LayoutArg(layout);
  if (j.sort_key) {
    o.truncation = columnar::Truncation::kTopByKey;
    o.sort_key = {"sort_by", Span(*j.sort_key)};
  }
  return o;
}

// A tensor viewing a float array that the caller keeps alive (GIL held when made).
Tensor FloatTensor(const FloatArray& a, const std::string& name) {
  Shape shape(static_cast<size_t>(a.ndim()));
  for (size_t d = 0; d < shape.size(); ++d) shape[d] = a.shape(static_cast<py::ssize_t>(d));
  return Tensor{name, DataType::kFp32, std::move(shape),
                Buffer::Borrow(a.data(), static_cast<size_t>(a.nbytes()), nullptr)};
}

const TensorMetadata* FindTensor(const std::vector<TensorMetadata>& tensors,
                                 const std::string& name) {
  for (const TensorMetadata& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

enum class Per { kList, kElement, kEvent };

Per PerArg(const std::string& per) {
  if (per == "list") return Per::kList;
  if (per == "element") return Per::kElement;
  if (per == "event") return Per::kEvent;
  ThrowStatus(Status::InvalidArgument(
      "per must be 'list' (one row per list, e.g. per jet), 'element' (one row per content "
      "position, e.g. per constituent) or 'event' (per-list results reduced over "
      "event_offsets), not '" + per + "'"));
}

struct JaggedCall {
  std::string model;
  std::string version;
  std::string values_name;
  std::string mask_name;
  columnar::PadOptions pad;
  columnar::BatchOptions batch;
  Per per = Per::kList;
  float fill = kNaN;
  columnar::Reduction reduction = columnar::Reduction::kMax;
  float empty_fill = kNaN;
  std::span<const int64_t> event_offsets;
};

// The part of infer_jagged that runs without the GIL.
Result<columnar::TensorMap> RunJagged(client::Client& client, const JaggedCall& call,
                                      const columnar::JaggedView& view,
                                      std::vector<Tensor> extra) {
  auto metadata = client.GetModelMetadata(call.model, call.version);
  if (!metadata.ok()) return metadata.status();
  const TensorMetadata* values_md = FindTensor(metadata->inputs, call.values_name);
  if (values_md == nullptr) {
    std::string names;
    for (const auto& t : metadata->inputs) names += (names.empty() ? "" : ", ") + t.name;
    return Status::InvalidArgument("model '" + call.model + "' has no input '" +
                                   call.values_name + "' for the padded values (its inputs: " +
                                   names + "); pass values_name=");
  }
  columnar::PadOptions pad = call.pad;
  pad.values_name = call.values_name;
  pad.mask_name = call.mask_name;
  const TensorMetadata* mask_md = FindTensor(metadata->inputs, call.mask_name);
  if (mask_md != nullptr) pad.mask_type = mask_md->datatype;
  // A fixed slot count in the model's values input decides max_len when none is given.
  if (pad.max_len == 0 && values_md->shape.size() == 3) {
    const size_t slot_dim = pad.layout == columnar::PadLayout::kObjectsFeatures ? 1 : 2;
    if (values_md->shape[slot_dim] > 0) pad.max_len = values_md->shape[slot_dim];
  }
  auto padded = columnar::PadJagged(view, pad);
  if (!padded.ok()) return padded.status();
  std::vector<Tensor> inputs;
  inputs.push_back(std::move(padded->values));
  if (mask_md != nullptr) {
    Tensor mask = std::move(padded->mask);
    const int64_t n = mask.shape[0];
    if (mask_md->shape.size() == 3) {
      mask.shape = mask_md->shape[1] == 1 ? Shape{n, 1, padded->max_len}
                                           : Shape{n, padded->max_len, 1};
    }
    inputs.push_back(std::move(mask));
  }
  for (Tensor& t : extra) inputs.push_back(std::move(t));

  auto outputs = columnar::RunBatched(client, call.model, inputs, call.batch);
  if (!outputs.ok() || call.per == Per::kList) return outputs;
  columnar::TensorMap result;
  for (auto& [name, tensor] : *outputs) {
    Result<Tensor> converted = Status::Internal("unreachable");
    if (call.per == Per::kElement) {
      pad.max_len = padded->max_len;
      converted = columnar::UnpadToContent(tensor, view, pad, call.fill, name);
    } else {
      converted = columnar::ReduceLists(tensor, call.event_offsets, call.reduction,
                                        call.empty_fill, name);
    }
    if (!converted.ok()) return converted.status().WithContext("output '" + name + "'");
    result.emplace(name, std::move(*converted));
  }
  return result;
}

py::dict MapToDict(const columnar::TensorMap& map, bool writable) {
  py::dict out;
  for (const auto& [name, tensor] : map) out[py::str(name)] = ArrayFromTensor(tensor, writable);
  return out;
}

}  // namespace

void RegisterColumnar(py::module_& m, py::class_<PyClient>& client_class) {
  m.def(
      "pad_jagged",
      [](const py::object& offsets, const py::object& fields, int64_t max_len, float pad_value,
         const py::object& sort_by, const std::string& layout, const py::object& mask_dtype) {
        JaggedArrays j = MakeJagged(offsets, fields, sort_by);
        columnar::PadOptions o = PadOptionsFor(j, max_len, pad_value, layout);
        o.mask_type = DataTypeForDtype(py::dtype::from_args(mask_dtype));
        Result<columnar::Padded> padded = [&] {
          GilRelease release;
          return columnar::PadJagged(j.View(), o);
        }();
        columnar::Padded p = Unwrap(std::move(padded));
        return py::make_tuple(ArrayFromTensor(p.values, true), ArrayFromTensor(p.mask, true));
      },
      py::arg("offsets"), py::arg("fields"), py::kw_only(), py::arg("max_len") = 0,
      py::arg("pad_value") = 0.0f, py::arg("sort_by") = py::none(),
      py::arg("layout") = "objects_features", py::arg("mask_dtype") = "bool",
      R"doc(Pads jagged lists into a dense float32 tensor plus a mask.

offsets: int64 [n+1] (list i = content positions offsets[i]:offsets[i+1]; awkward's
  ListOffsetArray / to_buffers "-offsets"); other integer dtypes are converted.
fields: {name: content} (or a list of contents), float32 [>= offsets[-1]] each
  (other dtypes converted with a copy). One feature per field, in this order.
max_len: slots per list (0: the longest list). Longer lists are truncated.
sort_by: None (keep storage order), a field name, or a float array indexed like the
  content: each list is ordered by it, descending (NaN last), before truncation.
layout: 'objects_features' -> values [n, max_len, F]; 'features_objects' -> [n, F, max_len].
mask_dtype: numpy dtype of the mask [n, max_len] (bool, uint8, int8, int32, int64,
  float32, float64): 1 for a real element, 0 for padding.
Returns (values, mask), fresh writable arrays.)doc");

  m.def(
      "unpad",
      [](const py::object& per_slot, const py::object& offsets, const py::object& sort_by,
         float fill) {
        FloatArray slots = ContiguousArray<float>(per_slot, "per_slot");
        if (slots.ndim() < 2) {
          ThrowStatus(Status::InvalidArgument("per_slot must be [n, max_len, ...]"));
        }
        JaggedArrays j = MakeJagged(offsets, py::list(), sort_by);
        columnar::PadOptions o = PadOptionsFor(j, slots.shape(1), 0.0f, "objects_features");
        Tensor t = FloatTensor(slots, "values");
        Result<Tensor> result = [&] {
          GilRelease release;
          return columnar::UnpadToContent(t, j.View(), o, fill);
        }();
        return ArrayFromTensor(Unwrap(std::move(result)), true);
      },
      py::arg("per_slot"), py::arg("offsets"), py::kw_only(), py::arg("sort_by") = py::none(),
      py::arg("fill") = kNaN,
      R"doc(The inverse of pad_jagged's slot assignment: per_slot [n, max_len, K...] (a
model's per-slot output, slot-major) -> float32 [offsets[-1], K...] aligned with the
content. Pass the offsets and sort_by used for padding; max_len is per_slot.shape[1].
Elements truncated away (and positions before offsets[0]) get `fill`.)doc");

  m.def(
      "reduce_lists",
      [](const py::object& values, const py::object& offsets, const std::string& op,
         float empty_fill) {
        FloatArray v = ContiguousArray<float>(values, "values");
        if (v.ndim() < 1) ThrowStatus(Status::InvalidArgument("values must be [rows, ...]"));
        OffsetArray off = ContiguousArray<int64_t>(offsets, "offsets");
        const columnar::Reduction reduction = ReductionArg(op);
        Tensor t = FloatTensor(v, "values");
        Result<Tensor> result = [&] {
          GilRelease release;
          return columnar::ReduceLists(t, Span(off), reduction, empty_fill);
        }();
        return ArrayFromTensor(Unwrap(std::move(result)), true);
      },
      py::arg("values"), py::arg("offsets"), py::arg("op") = "sum", py::kw_only(),
      py::arg("empty_fill") = kNaN,
      R"doc(Reduces rows per list: values float32 [rows, K...] aligned with the content of
`offsets` -> [n, K...], row i combining rows offsets[i]:offsets[i+1] with op 'sum',
'mean', 'max', 'min' (NaN skipped) or 'first'. Empty lists get empty_fill.)doc");

  client_class.def(
      "infer_jagged",
      [](PyClient& self, const std::string& model, const py::object& offsets,
         const py::object& fields, const std::string& per, const std::string& values_name,
         const std::string& mask_name, int64_t max_len, float pad_value,
         const py::object& sort_by, const std::string& layout, const py::object& inputs,
         const py::object& outputs, const py::object& version, float fill,
         const py::object& event_offsets, const std::string& reduce, float empty_fill,
         int64_t max_batch_size, int max_in_flight) {
        JaggedArrays j = MakeJagged(offsets, fields, sort_by);
        JaggedCall call;
        call.model = model;
        call.version = VersionArg(version);
        call.values_name = values_name;
        call.mask_name = mask_name;
        call.pad = PadOptionsFor(j, max_len, pad_value, layout);
        call.per = PerArg(per);
        call.fill = fill;
        call.empty_fill = empty_fill;
        call.reduction = ReductionArg(reduce);
        call.batch.version = call.version;
        call.batch.requested_outputs = NamesArg(outputs, "outputs");
        call.batch.max_batch_size = max_batch_size;
        if (max_in_flight < 1) ThrowStatus(Status::InvalidArgument("max_in_flight must be >= 1"));
        call.batch.max_in_flight = max_in_flight;
        std::optional<OffsetArray> events;
        if (call.per == Per::kEvent) {
          if (event_offsets.is_none()) {
            ThrowStatus(Status::InvalidArgument("per='event' needs event_offsets"));
          }
          events = ContiguousArray<int64_t>(event_offsets, "event_offsets");
          call.event_offsets = Span(*events);
        } else if (!event_offsets.is_none()) {
          ThrowStatus(Status::InvalidArgument("event_offsets is only used with per='event'"));
        }
        std::vector<Tensor> extra;
        if (!inputs.is_none()) extra = TensorsFromMapping(inputs, py::none());
        Result<columnar::TensorMap> result = [&]() -> Result<columnar::TensorMap> {
          GilRelease release;
          auto client = self.Acquire();
          if (!client.ok()) return client.status();
          return RunJagged(**client, call, j.View(), std::move(extra));
        }();
        return MapToDict(Unwrap(std::move(result)), /*writable=*/false);
      },
      py::arg("model"), py::arg("offsets"), py::arg("fields"), py::kw_only(),
      py::arg("per") = "list", py::arg("values_name") = "values", py::arg("mask_name") = "mask",
      py::arg("max_len") = 0, py::arg("pad_value") = 0.0f, py::arg("sort_by") = py::none(),
      py::arg("layout") = "objects_features", py::arg("inputs") = py::none(),
      py::arg("outputs") = py::none(), py::arg("version") = py::none(), py::arg("fill") = kNaN,
      py::arg("event_offsets") = py::none(), py::arg("reduce") = "max",
      py::arg("empty_fill") = kNaN, py::arg("max_batch_size") = 0,
      py::arg("max_in_flight") = 4,
      R"doc(Runs a model over jagged lists (e.g. jets -> constituents) given as numpy
offsets + contents (awkward.to_buffers layout), and returns {output: array} aligned
with the input.

The lists are padded as by quiver.pad_jagged(offsets, fields, max_len=, pad_value=,
sort_by=, layout=) into the model input `values_name`; if the model has an input
`mask_name`, the mask goes there with that input's data type (and rank: [n, 1, max_len]
or [n, max_len, 1] when its metadata says so). max_len=0 takes the model's fixed slot
count, else the longest list. `inputs`: further per-list inputs {name: array [n, ...]}.
The lists are sent in batches (max_batch_size rows, 0: the model's; max_in_flight
requests at once).

per='list': outputs as the model returns them, one row per list ([n, ...]).
per='element': per-slot outputs [n, max_len, K...] mapped back to the content positions
  ([offsets[-1], K...], float32; truncated elements get `fill`).
per='event': per-list outputs reduced over event_offsets (events -> lists, e.g. the jet
  offsets of events) with `reduce` ('max', 'sum', 'mean', 'min', 'first'); events
  without lists get `empty_fill`.)doc");
}

}  // namespace quiver::python
