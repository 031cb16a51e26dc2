#pragma once
// numpy arrays <-> Tensors.
//
// Inputs: a C-contiguous array of a fixed-size dtype in native byte order is borrowed,
// not copied (the Tensor's Buffer holds a reference to the array); anything else
// (non-contiguous, byte-swapped, a list) is converted once with numpy. BYTES inputs
// (object arrays of bytes/str, numpy 'S'/'U' arrays) are serialised (a copy by nature).
// Outputs: arrays that borrow the tensor's Buffer (a capsule owns a copy of it), read-only
// unless asked otherwise; BYTES outputs are object arrays of bytes.
//
// dtype <-> data type: bool BOOL, uint8..64 UINT8..64, int8..64 INT8..64, float16 FP16,
// float32 FP32, float64 FP64, object/'S'/'U' BYTES. BF16 has no numpy dtype: inputs are
// ml_dtypes.bfloat16 arrays, or 2-byte arrays (e.g. uint16 bit patterns) declared BF16
// through `datatypes`; outputs are ml_dtypes.bfloat16 arrays when ml_dtypes imports,
// else uint16 arrays of the bit patterns.
//
// Every function here needs the GIL.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace quiver::python {

namespace py = pybind11;

// Diagnostics, process-wide: how inputs and outputs crossed the boundary.
struct CopyCounters {
  std::atomic<uint64_t> inputs_borrowed{0};
  std::atomic<uint64_t> inputs_copied{0};
  std::atomic<uint64_t> outputs_borrowed{0};
  std::atomic<uint64_t> outputs_copied{0};
};
CopyCounters& Counters();

// The data type for a numpy dtype; kInvalid when there is none.
DataType DataTypeForDtype(const py::dtype& dtype);
// The numpy dtype outputs of `type` get (BYTES: object). InvalidArgument for kInvalid.
py::dtype DtypeFor(DataType type);

// A Tensor named `name` holding `obj` (an array or anything np.asarray accepts).
// `declared`: kInvalid = from the dtype; otherwise the data type to send, which for a
// fixed-size type reinterprets the array's bits (same item size required: e.g. BF16 from
// uint16) and for BYTES serialises the elements. Raises quiver.InvalidArgument naming the
// tensor when the dtype has no data type.
Tensor TensorFromObject(const std::string& name, py::handle obj, DataType declared);

// Tensors from a mapping {name: array}; `datatypes` is None or {name: "BF16", ...}.
std::vector<Tensor> TensorsFromMapping(py::handle inputs, py::handle datatypes);

// An array viewing `tensor` (zero-copy where its memory is aligned for the dtype).
py::object ArrayFromTensor(const Tensor& tensor, bool writable);

// {name: array} for `tensors`, in their order.
py::dict DictFromTensors(const std::vector<Tensor>& tensors, bool writable);

// `obj` as a C-contiguous array of T (converted with a copy when needed), for the
// columnar helpers' offsets and contents. `what` names it in errors.
template <typename T>
py::array_t<T, py::array::c_style> ContiguousArray(py::handle obj, const char* what);

// Parses a KServe data type name ("FP32", "BF16", ...); InvalidArgument if unknown.
DataType ParseDataType(const std::string& name);

}  // namespace quiver::python
