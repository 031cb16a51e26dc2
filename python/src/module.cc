// quiver._quiver: the compiled part of the `quiver` Python package (python/quiver re-exports
// it). See py_client.h (Client), numpy_tensor.h (arrays <-> tensors), columnar_bindings.h,
// errors.h and py_runtime.h (threads, the GIL and interpreter shutdown).

#include <pybind11/pybind11.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "columnar_bindings.h"
#include "errors.h"
#include "numpy_tensor.h"
#include "py_client.h"
#include "py_runtime.h"

#ifndef QUIVER_VERSION
#define QUIVER_VERSION "unknown"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_quiver, m) {
  using namespace quiver::python;
  m.doc() = "Quiver's C++ client, columnar helpers and errors (import `quiver`, not this).";
  m.attr("__version__") = QUIVER_VERSION;
  // A library is quiet by default: the engine behind local:// logs each model it loads at
  // info level. QUIVER_LOG_LEVEL=info (debug, warn, error, off) changes it.
  const char* level = std::getenv("QUIVER_LOG_LEVEL");
  spdlog::set_level(spdlog::level::from_str(level != nullptr ? level : "warn"));
  RegisterErrors(m);
  InstallRuntime(m);
  py::class_<PyClient> client = RegisterClient(m);
  RegisterColumnar(m, client);
  m.def(
      "_copy_counters",
      [] {
        CopyCounters& c = Counters();
        py::dict d;
        d["inputs_borrowed"] = c.inputs_borrowed.load();
        d["inputs_copied"] = c.inputs_copied.load();
        d["outputs_borrowed"] = c.outputs_borrowed.load();
        d["outputs_copied"] = c.outputs_copied.load();
        return d;
      },
      "Process-wide counts of arrays that crossed the boundary borrowed (zero-copy) or "
      "copied: inputs (numpy -> tensor) and outputs (tensor -> numpy). For tests and "
      "diagnostics.");
}
