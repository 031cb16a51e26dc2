#include "numpy_tensor.h"

#include <pybind11/stl.h>

#include <bit>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "errors.h"
#include "py_runtime.h"

namespace quiver::python {
namespace {

py::module_& Numpy() {
  static auto* np = new py::module_(py::module_::import("numpy"));  // never released
  return *np;
}

// ml_dtypes.bfloat16 as a dtype, or None when ml_dtypes is not installed. Looked up once.
py::object Bfloat16Dtype() {
  static PyObject* cached = [] {
    try {
      py::object bf16 = py::module_::import("ml_dtypes").attr("bfloat16");
      py::object dtype = Numpy().attr("dtype")(bf16);
      return dtype.release().ptr();
    } catch (py::error_already_set&) {
      py::object none = py::none();
      return none.release().ptr();
    }
  }();
  return py::reinterpret_borrow<py::object>(cached);
}

[[noreturn]] void Invalid(const std::string& message) {
  ThrowStatus(Status::InvalidArgument(message));
}

std::string DtypeText(const py::dtype& dtype) {
  return py::str(static_cast<py::handle>(dtype)).cast<std::string>();
}

Shape ShapeOf(const py::array& arr) {
  Shape shape(static_cast<size_t>(arr.ndim()));
  for (size_t d = 0; d < shape.size(); ++d) shape[d] = arr.shape(static_cast<py::ssize_t>(d));
  return shape;
}

// dtype.isnative without the attribute lookup: '=' native, '|' not applicable (1 byte),
// else '<' or '>' explicitly.
bool IsNative(const py::dtype& dtype) {
  const char order = dtype.byteorder();
  constexpr char kNative = std::endian::native == std::endian::little ? '<' : '>';
  return order == '=' || order == '|' || order == kNative;
}

bool Aligned(const void* data, size_t alignment) {
  return alignment <= 1 || reinterpret_cast<uintptr_t>(data) % alignment == 0;
}

void SetReadOnly(const py::array& arr) {
  py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
}

// BYTES: every element as bytes (str as UTF-8), serialised with 4-byte LE lengths.
Tensor BytesTensor(const std::string& name, const py::array& input) {
  py::array arr = input;
  const char kind = arr.dtype().kind();
  if (kind != 'O') arr = arr.attr("astype")("O");  // 'S' / 'U': numpy's element semantics
  // A contiguous object array: its elements are read through the data pointer (it holds
  // references to them, and the UTF-8 of a str is cached in the str, for this call).
  py::array flat = Numpy().attr("ascontiguousarray")(arr.attr("reshape")(-1));
  const py::ssize_t n = flat.shape(0);
  auto* const* elements = static_cast<PyObject* const*>(flat.data());
  std::vector<std::string_view> items;
  items.reserve(static_cast<size_t>(n));
  for (py::ssize_t i = 0; i < n; ++i) {
    py::handle item(elements[i] != nullptr ? elements[i] : Py_None);
    const char* data = nullptr;
    Py_ssize_t size = 0;
    if (PyBytes_Check(item.ptr())) {
      PyBytes_AsStringAndSize(item.ptr(), const_cast<char**>(&data), &size);
    } else if (PyUnicode_Check(item.ptr())) {
      data = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
      if (data == nullptr) throw py::error_already_set();
    } else if (PyByteArray_Check(item.ptr())) {
      data = PyByteArray_AsString(item.ptr());
      size = PyByteArray_Size(item.ptr());
    } else {
      Invalid("input '" + name + "': element " + std::to_string(i) + " is a " +
              py::str(py::type::handle_of(item).attr("__name__")).cast<std::string>() +
              "; BYTES elements must be bytes or str");
    }
    if (static_cast<uint64_t>(size) > 0xffffffffull) {
      Invalid("input '" + name + "': element " + std::to_string(i) + " is over 4 GiB");
    }
    items.emplace_back(data, static_cast<size_t>(size));
  }
  Buffer buffer = MakeBytesBufferFromViews(items);
  ++Counters().inputs_copied;
  return Tensor{name, DataType::kBytes, ShapeOf(input), std::move(buffer)};
}

py::object BytesArray(const Tensor& tensor, bool writable) {
  auto offsets = BytesElementOffsets(tensor.data.bytes());
  if (!offsets.ok()) {
    ThrowStatus(Status::Internal("output '" + tensor.name + "': " + offsets.status().message()));
  }
  const size_t n = offsets->size() - 1;
  const int64_t expected = ElementCount(tensor.shape);
  if (expected < 0 || static_cast<size_t>(expected) != n) {
    ThrowStatus(Status::Internal("output '" + tensor.name + "' has " + std::to_string(n) +
                                 " BYTES elements but shape " + ShapeToString(tensor.shape)));
  }
  py::array arr = Numpy().attr("empty")(py::cast(tensor.shape), "O");  // filled with None
  auto** slots = static_cast<PyObject**>(arr.mutable_data());
  const std::byte* base = tensor.data.data();
  for (size_t i = 0; i < n; ++i) {
    const size_t start = (*offsets)[i] + 4;
    const size_t size = (*offsets)[i + 1] - start;
    PyObject* item = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(base + start),
                                               static_cast<Py_ssize_t>(size));
    if (item == nullptr) throw py::error_already_set();
    Py_XDECREF(slots[i]);
    slots[i] = item;
  }
  ++Counters().outputs_copied;
  if (!writable) SetReadOnly(arr);
  return arr;
}

}  // namespace

CopyCounters& Counters() {
  static auto* counters = new CopyCounters;
  return *counters;
}

DataType DataTypeForDtype(const py::dtype& dtype) {
  const size_t size = static_cast<size_t>(dtype.itemsize());
  switch (dtype.kind()) {
    case 'b':
      return size == 1 ? DataType::kBool : DataType::kInvalid;
    case 'u':
      return size == 1 ? DataType::kUint8
           : size == 2 ? DataType::kUint16
           : size == 4 ? DataType::kUint32
           : size == 8 ? DataType::kUint64
                       : DataType::kInvalid;
    case 'i':
      return size == 1 ? DataType::kInt8
           : size == 2 ? DataType::kInt16
           : size == 4 ? DataType::kInt32
           : size == 8 ? DataType::kInt64
                       : DataType::kInvalid;
    case 'f':
      return size == 2 ? DataType::kFp16
           : size == 4 ? DataType::kFp32
           : size == 8 ? DataType::kFp64
                       : DataType::kInvalid;
    case 'O':
    case 'S':
    case 'U':
      return DataType::kBytes;
    case 'V':
      return size == 2 && py::str(dtype.attr("name")).cast<std::string>() == "bfloat16"
                 ? DataType::kBf16
                 : DataType::kInvalid;
    default:
      return DataType::kInvalid;
  }
}

namespace {

py::dtype MakeDtype(DataType type) {
  switch (type) {
    case DataType::kBool: return py::dtype("bool");
    case DataType::kUint8: return py::dtype("uint8");
    case DataType::kUint16: return py::dtype("uint16");
    case DataType::kUint32: return py::dtype("uint32");
    case DataType::kUint64: return py::dtype("uint64");
    case DataType::kInt8: return py::dtype("int8");
    case DataType::kInt16: return py::dtype("int16");
    case DataType::kInt32: return py::dtype("int32");
    case DataType::kInt64: return py::dtype("int64");
    case DataType::kFp16: return py::dtype("float16");
    case DataType::kFp32: return py::dtype("float32");
    case DataType::kFp64: return py::dtype("float64");
    case DataType::kBytes: return py::dtype("O");
    case DataType::kBf16: {
      py::object bf16 = Bfloat16Dtype();
      return bf16.is_none() ? py::dtype("uint16") : py::reinterpret_borrow<py::dtype>(bf16);
    }
    case DataType::kInvalid: break;
  }
  ThrowStatus(Status::InvalidArgument("tensor has no valid data type"));
}

}  // namespace

py::dtype DtypeFor(DataType type) {
  // Made once per type (every output array needs one); never released.
  static PyObject* cache[static_cast<size_t>(DataType::kBytes) + 1] = {};
  const auto index = static_cast<size_t>(type);
  if (index >= std::size(cache) || type == DataType::kInvalid) return MakeDtype(type);
  if (cache[index] == nullptr) cache[index] = MakeDtype(type).release().ptr();
  return py::reinterpret_borrow<py::dtype>(cache[index]);
}

DataType ParseDataType(const std::string& name) {
  DataType type = DataTypeFromName(name);
  if (type == DataType::kInvalid) {
    Invalid("unknown data type '" + name +
            "' (KServe names: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, "
            "FP16, BF16, FP32, FP64, BYTES)");
  }
  return type;
}

Tensor TensorFromObject(const std::string& name, py::handle obj, DataType declared) {
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                 : py::array(Numpy().attr("asarray")(obj));
  const py::dtype dtype = arr.dtype();
  const char kind = dtype.kind();
  if (declared == DataType::kBytes || (declared == DataType::kInvalid &&
                                       (kind == 'O' || kind == 'S' || kind == 'U'))) {
    return BytesTensor(name, arr);
  }
  DataType type = DataTypeForDtype(dtype);
  if (type == DataType::kInvalid || type == DataType::kBytes) {
    if (declared == DataType::kInvalid || type == DataType::kBytes) {
      Invalid("input '" + name + "': numpy dtype " + DtypeText(dtype) +
              " has no KServe data type (bool, [u]int8..64, float16/32/64, "
              "ml_dtypes.bfloat16, or object/bytes/str for BYTES)");
    }
  }
  if (declared != DataType::kInvalid) {
    if (static_cast<size_t>(dtype.itemsize()) != DataTypeSize(declared) ||
        kind == 'O') {
      Invalid("input '" + name + "': declared " + std::string(DataTypeName(declared)) +
              " needs " + std::to_string(DataTypeSize(declared)) +
              "-byte elements, but the array's dtype is " + DtypeText(dtype));
    }
    type = declared;
  }
  bool copied = false;
  if (!IsNative(dtype)) {
    arr = arr.attr("astype")(dtype.attr("newbyteorder")("="));
    copied = true;
  }
  if ((arr.flags() & py::array::c_style) == 0 || !Aligned(arr.data(), DataTypeSize(type))) {
    arr = Numpy().attr("ascontiguousarray")(arr);  // also aligns: numpy allocates aligned
    copied = true;
  }
  ++(copied ? Counters().inputs_copied : Counters().inputs_borrowed);
  const size_t nbytes = static_cast<size_t>(arr.nbytes());
  Buffer buffer = Buffer::Borrow(arr.data(), nbytes, Share(arr));
  return Tensor{name, type, ShapeOf(arr), std::move(buffer)};
}

std::vector<Tensor> TensorsFromMapping(py::handle inputs, py::handle datatypes) {
  if (!py::hasattr(inputs, "items") || PyUnicode_Check(inputs.ptr())) {
    throw py::type_error("inputs must be a mapping {name: numpy array}");
  }
  std::vector<Tensor> tensors;
  if (datatypes.is_none() && PyDict_CheckExact(inputs.ptr())) {
    // The common case, without the items() view and its tuples.
    const Py_ssize_t size = PyDict_Size(inputs.ptr());
    tensors.reserve(static_cast<size_t>(size));
    Py_ssize_t pos = 0;
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    while (PyDict_Next(inputs.ptr(), &pos, &key, &value)) {
      if (!PyUnicode_Check(key)) throw py::type_error("input names must be str");
      // TensorFromObject may run Python code (np.asarray), which could change the dict.
      py::object hold_key = py::reinterpret_borrow<py::object>(key);
      py::object hold_value = py::reinterpret_borrow<py::object>(value);
      tensors.push_back(
          TensorFromObject(hold_key.cast<std::string>(), hold_value, DataType::kInvalid));
      if (PyDict_Size(inputs.ptr()) != size) {
        throw std::runtime_error("inputs changed size while they were read");  // as items()
      }
    }
    return tensors;
  }
  py::dict declared_types;
  if (!datatypes.is_none()) declared_types = py::dict(py::reinterpret_borrow<py::object>(datatypes));
  py::object items = py::reinterpret_borrow<py::object>(inputs).attr("items")();
  for (py::handle item : items) {
    auto pair = py::reinterpret_borrow<py::tuple>(item);
    if (!py::isinstance<py::str>(pair[0])) throw py::type_error("input names must be str");
    const std::string name = pair[0].cast<std::string>();
    DataType declared = DataType::kInvalid;
    if (declared_types.contains(pair[0])) {
      declared = ParseDataType(py::str(declared_types[pair[0]]).cast<std::string>());
    }
    tensors.push_back(TensorFromObject(name, pair[1], declared));
  }
  for (auto item : declared_types) {
    if (!py::reinterpret_borrow<py::object>(inputs).contains(item.first)) {
      Invalid("datatypes names '" + py::str(item.first).cast<std::string>() +
              "', which is not an input");
    }
  }
  return tensors;
}

py::object ArrayFromTensor(const Tensor& tensor, bool writable) {
  if (tensor.datatype == DataType::kBytes) return BytesArray(tensor, writable);
  const py::dtype dtype = DtypeFor(tensor.datatype);
  const int64_t count = ElementCount(tensor.shape);
  const size_t item = DataTypeSize(tensor.datatype);
  if (count < 0 || tensor.data.size() != static_cast<size_t>(count) * item) {
    ThrowStatus(Status::Internal("output '" + tensor.name + "' has " +
                                 std::to_string(tensor.data.size()) + " bytes but shape " +
                                 ShapeToString(tensor.shape) + " of " +
                                 std::string(DataTypeName(tensor.datatype)) + " needs " +
                                 std::to_string(count * static_cast<int64_t>(item))));
  }
  std::vector<py::ssize_t> shape(tensor.shape.begin(), tensor.shape.end());
  if (count == 0 || !Aligned(tensor.data.data(), item)) {
    py::array arr(dtype, shape);  // fresh (aligned) memory
    if (count > 0) std::memcpy(arr.mutable_data(), tensor.data.data(), tensor.data.size());
    ++Counters().outputs_copied;
    if (!writable) SetReadOnly(arr);
    return arr;
  }
  auto* owner = new Buffer(tensor.data);
  py::capsule base(owner, [](void* p) { delete static_cast<Buffer*>(p); });
  py::array arr(dtype, shape, std::vector<py::ssize_t>{}, tensor.data.data(), base);
  ++Counters().outputs_borrowed;
  if (!writable) SetReadOnly(arr);
  return arr;
}

py::dict DictFromTensors(const std::vector<Tensor>& tensors, bool writable) {
  py::dict out;
  for (const Tensor& t : tensors) out[py::str(t.name)] = ArrayFromTensor(t, writable);
  return out;
}

template <typename T>
py::array_t<T, py::array::c_style> ContiguousArray(py::handle obj, const char* what) {
  if (py::isinstance<py::array_t<T, py::array::c_style>>(obj)) {
    auto arr = py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(obj);
    if ((arr.flags() & py::array::c_style) != 0 && IsNative(arr.dtype()) &&
        Aligned(arr.data(), sizeof(T))) {
      ++Counters().inputs_borrowed;
      return arr;
    }
  }
  py::array any = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                 : py::array(Numpy().attr("asarray")(obj));
  const char kind = any.dtype().kind();
  const bool numeric = kind == 'b' || kind == 'u' || kind == 'i' || kind == 'f';
  if (!numeric) {
    Invalid(std::string(what) + ": numpy dtype " + DtypeText(any.dtype()) +
            " is not numeric (expected " + DtypeText(py::dtype::of<T>()) + ")");
  }
  ++Counters().inputs_copied;
  return py::array_t<T, py::array::c_style>(
      Numpy().attr("ascontiguousarray")(any, py::dtype::of<T>()));
}

template py::array_t<float, py::array::c_style> ContiguousArray<float>(py::handle, const char*);
template py::array_t<int64_t, py::array::c_style> ContiguousArray<int64_t>(py::handle,
                                                                          const char*);

}  // namespace quiver::python
