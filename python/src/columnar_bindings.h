#pragma once
// The columnar helpers for numpy (awkward.to_buffers layout: int64 offsets + contents):
// quiver.pad_jagged / unpad / reduce_lists, and Client.infer_jagged, which pads jagged
// lists, runs a model over them in batches and returns predictions aligned with the
// lists, their elements or the events. See src/columnar and docs/columnar.md.

#include <pybind11/pybind11.h>

#include "py_client.h"

namespace quiver::python {

void RegisterColumnar(py::module_& m, py::class_<PyClient>& client);

}  // namespace quiver::python
