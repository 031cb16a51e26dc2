#pragma once
// Methods called once per inference (quiver.Client.infer and infer_async, the wait of an
// infer_async call) are bound as CPython METH_FASTCALL method descriptors rather than
// through pybind11's dispatcher: no argument tuple, no bound-method object and no
// per-call vectors. On a core shared with a local:// model the Python work around each
// call runs with cold caches, where that dispatch cost several microseconds per call
// (docs/benchmarks.md, "Per-batch budget on local://").

#include <pybind11/pybind11.h>

#include <cstddef>
#include <span>

namespace quiver::python {

namespace py = pybind11;

// Binds the arguments of a METH_FASTCALL | METH_KEYWORDS call to `names` (each positional
// or keyword, in this order); the first `required` must be given. `slots` (one per name)
// get borrowed references; those not given stay null. False, with TypeError set, for a
// missing, repeated or unknown argument, or too many positional ones.
bool BindArguments(const char* function, std::span<const char* const> names, size_t required,
                   PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                   std::span<PyObject*> slots);

// A slot as a py::object (None when the argument was not given).
inline py::object ArgOrNone(PyObject* slot) {
  return slot != nullptr ? py::reinterpret_borrow<py::object>(slot) : py::none();
}

// Adds `def` (METH_FASTCALL | METH_KEYWORDS, static storage) to `type` as a method
// descriptor, which checks that self is an instance of `type`.
void AddFastMethod(py::handle type, PyMethodDef* def);

// Runs `body` (returning a py::object) and hands its result to CPython; a C++ exception
// becomes the Python exception pybind11's dispatcher would raise, and null is returned.
template <typename Body>
PyObject* Guarded(Body&& body) noexcept {
  try {
    return body().release().ptr();
  } catch (...) {
    py::detail::translate_exception(std::current_exception());
    if (PyErr_Occurred() == nullptr) {
      PyErr_SetString(PyExc_SystemError, "quiver: unknown C++ exception");
    }
    return nullptr;
  }
}

}  // namespace quiver::python
