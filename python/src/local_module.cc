// quiver._quiver_local: local:// URLs for the `quiver` package. Its only export is the
// opener of an in-process Engine (client::OpenLocalService), as a capsule that quiver._quiver
// installs on the first local:// URL. Apart from _quiver so that `import quiver` for remote
// servers never loads the engine's backends (libtorch: most of the import time and memory).

#include <pybind11/pybind11.h>

#include "client/client.h"
#include "client/local_service.h"

namespace py = pybind11;

PYBIND11_MODULE(_quiver_local, m) {
  m.doc() = "local:// support of the quiver package (an in-process engine); internal.";
  const quiver::client::LocalOpener opener = &quiver::client::OpenLocalService;
  m.attr("local_opener") =
      py::capsule(reinterpret_cast<void*>(opener), "quiver.client.LocalOpener");
}
