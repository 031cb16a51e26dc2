#include "py_fastcall.h"

#include <cassert>

namespace quiver::python {

bool BindArguments(const char* function, std::span<const char* const> names, size_t required,
                   PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                   std::span<PyObject*> slots) {
  assert(slots.size() == names.size());
  const size_t positional = static_cast<size_t>(nargs);
  if (positional > names.size()) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zu arguments (%zu given)", function,
                 names.size(), positional);
    return false;
  }
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = i < positional ? args[i] : nullptr;
  const Py_ssize_t keywords = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < keywords; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    size_t i = 0;
    while (i < names.size() && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == names.size()) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", function,
                   key);
      return false;
    }
    if (slots[i] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", function,
                   names[i]);
      return false;
    }
    slots[i] = args[nargs + k];
  }
  for (size_t i = 0; i < required; ++i) {
    if (slots[i] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zu)", function,
                   names[i], i + 1);
      return false;
    }
  }
  return true;
}

void AddFastMethod(py::handle type, PyMethodDef* def) {
  py::object descriptor = py::reinterpret_steal<py::object>(
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(type.ptr()), def));
  if (!descriptor) throw py::error_already_set();
  py::setattr(type, def->ml_name, descriptor);
}

}  // namespace quiver::python
