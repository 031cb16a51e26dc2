#pragma once
// Python exceptions for Status codes: quiver.Error and one subclass per StatusCode
// (quiver.InvalidArgument, quiver.NotFound, quiver.Unavailable, ...), each carrying the
// C++ message unchanged and the code's name as `code`. The one place where a Status
// becomes a Python exception (STYLE.md: bindings turn Status into exceptions at the
// boundary).

#include <pybind11/pybind11.h>

#include "core/status.h"

namespace quiver::python {

namespace py = pybind11;

// Creates the exception classes as attributes of `m` (module import, GIL held).
void RegisterErrors(py::module_& m);

// An exception instance for `status` (not OK), e.g. for Future.set_exception. GIL held.
py::object ExceptionFor(const Status& status);

// Raises the exception for `status` (not OK) as a Python error. GIL held.
[[noreturn]] void ThrowStatus(const Status& status);

// The value of `result`, or ThrowStatus. GIL held.
template <typename T>
T Unwrap(Result<T> result) {
  if (!result.ok()) ThrowStatus(result.status());
  return std::move(result).value();
}

}  // namespace quiver::python
