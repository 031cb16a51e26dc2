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
#include <string>

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

// The C++ object behind `self`, an instance of a pybind11 class bound to T (or of a
// Python subclass). TypeError when its __init__ never ran (Client.__new__(Client)): a
// pybind11 cast would hand out uninitialised memory.
template <typename T>
T& Self(PyObject* self, const char* type_name) {
  auto* instance = reinterpret_cast<py::detail::instance*>(self);
  if (!instance->get_value_and_holder().holder_constructed()) {
    throw py::type_error(std::string(type_name) + ".__init__() was not called");
  }
  return py::handle(self).cast<T&>();
}

// Runs `body` (returning a py::object) and hands its result to CPython; a C++ exception
// becomes the Python exception pybind11's dispatcher would raise, and null is returned.
// Only pybind11's built-in translations apply (this module registers no translator of
// its own; quiver errors are raised as Python exceptions before the throw).
template <typename Body>
PyObject* Guarded(Body&& body) noexcept {
  try {
    py::detail::loader_life_support life_support;  // as the dispatcher: casts' temporaries
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
