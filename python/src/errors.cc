#include "errors.h"

#include <array>
#include <string>

namespace quiver::python {
namespace {

struct ErrorClass {
  StatusCode code;
  const char* name;        // Python class name
  PyObject* builtin_base;  // a second, built-in base class (nullptr: none)
  const char* doc;
};

// The classes, by StatusCode. Built-in bases let callers catch the usual Python kind
// (`except ValueError`) as well as ours.
const std::array<ErrorClass, 12>& Classes() {
  static const std::array<ErrorClass, 12> classes = {{
      {StatusCode::kInvalidArgument, "InvalidArgument", PyExc_ValueError,
       "Bad request content (inputs, shapes, data types, URLs). Never retried."},
      {StatusCode::kNotFound, "NotFound", PyExc_LookupError,
       "Unknown model, version, tensor or region. Never retried."},
      {StatusCode::kAlreadyExists, "AlreadyExists", nullptr, "The object already exists."},
      {StatusCode::kUnavailable, "Unavailable", PyExc_ConnectionError,
       "Server or model not ready, connection refused or lost (retried by the client "
       "before it is raised)."},
      {StatusCode::kResourceExhausted, "ResourceExhausted", nullptr,
       "Queue full or message too large."},
      {StatusCode::kDeadlineExceeded, "DeadlineExceeded", PyExc_TimeoutError,
       "The call's deadline (timeout) passed."},
      {StatusCode::kCancelled, "Cancelled", nullptr,
       "The call was cancelled (e.g. the client shut down)."},
      {StatusCode::kUnsupported, "Unsupported", PyExc_NotImplementedError,
       "A feature this build, server or model does not provide."},
      {StatusCode::kInternal, "Internal", nullptr, "A backend failed or an invariant broke."},
      {StatusCode::kUnknown, "Unknown", nullptr, "An error of unknown kind."},
      {StatusCode::kUnauthenticated, "Unauthenticated", PyExc_PermissionError,
       "A missing or wrong token (Client(token=...), QUIVER_TOKEN). Never retried."},
      {StatusCode::kTooManyRequests, "TooManyRequests", nullptr,
       "The caller (its token's tenant) is over its request rate or in-flight limit at the "
       "gateway (HTTP 429; over gRPC it arrives as ResourceExhausted). Never retried: try "
       "again later, slower."},
  }};
  return classes;
}

// Indexed by StatusCode; strong references kept for the life of the process (never
// released: safe at interpreter shutdown).
PyObject* g_base = nullptr;
std::array<PyObject*, 16> g_by_code{};

PyObject* ClassFor(StatusCode code) {
  const auto index = static_cast<size_t>(code);
  PyObject* cls = index < g_by_code.size() ? g_by_code[index] : nullptr;
  return cls != nullptr ? cls : g_base;
}

}  // namespace

void RegisterErrors(py::module_& m) {
  py::dict base_dict;
  base_dict["code"] = py::none();
  g_base = PyErr_NewExceptionWithDoc(
      "quiver.Error",
      "Base class of every error raised by quiver; `code` names the status code "
      "(e.g. 'NOT_FOUND'), str(error) is the message of the server or library.",
      PyExc_Exception, base_dict.ptr());
  if (g_base == nullptr) throw py::error_already_set();
  m.add_object("Error", py::handle(g_base));  // add_object takes its own reference
  for (const ErrorClass& c : Classes()) {
    const std::string qualified = std::string("quiver.") + c.name;
    py::tuple bases = c.builtin_base != nullptr
                          ? py::make_tuple(py::handle(g_base), py::handle(c.builtin_base))
                          : py::make_tuple(py::handle(g_base));
    py::dict dict;
    dict["code"] = py::str(std::string(StatusCodeName(c.code)));
    PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), c.doc, bases.ptr(), dict.ptr());
    if (cls == nullptr) throw py::error_already_set();
    g_by_code[static_cast<size_t>(c.code)] = cls;
    m.add_object(c.name, py::handle(cls));
  }
}

py::object ExceptionFor(const Status& status) {
  py::object cls = py::reinterpret_borrow<py::object>(ClassFor(status.code()));
  return cls(py::str(status.message()));
}

void ThrowStatus(const Status& status) {
  PyErr_SetObject(ClassFor(status.code()), py::str(status.message()).ptr());
  throw py::error_already_set();
}

}  // namespace quiver::python
