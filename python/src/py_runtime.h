#pragma once
// The module's contract with the interpreter for work that happens on C++ threads
// (transport callbacks, the completion of futures, releasing numpy arrays borrowed by
// tensors):
//
//   - No transport thread ever waits for the GIL. Work that needs Python is posted to one
//     completion thread per process, which takes the GIL once per batch of tasks.
//   - Python references held by C++ objects (a numpy array a Buffer borrows, a Future a
//     callback completes) are released with the GIL: inline when the releasing thread
//     holds it, else later, in a batch, by the next call into the module or by the
//     completion thread (within ~5 ms).
//   - At interpreter exit (an atexit handler), BeginFinalization() waits for the batch in
//     progress and from then on nothing of this module touches Python again: pending
//     tasks and references are leaked (the process is ending), so shutdown with calls in
//     flight cannot crash or hang on the GIL.
//   - After fork(), the child starts with fresh state (AfterForkChild).

#include <pybind11/pybind11.h>

#include <functional>
#include <memory>

namespace quiver::python {

namespace py = pybind11;

// Runs `task` with the GIL held on the completion thread, in posting order. Callable
// from any thread, GIL held or not; never blocks on the GIL. Tasks must not throw (a
// Python error left set is reported as unraisable). After finalization began the task
// is leaked, never run or destroyed. The task is destroyed with the GIL held.
void Post(std::function<void()> task);

// A shared reference to `obj` (GIL held on the call). The last owner releases it with
// the GIL as described above, from any thread. Used as a Buffer keepalive and to hand
// Python objects to callbacks.
std::shared_ptr<PyObject> Share(py::handle obj);

// Drops the references released on threads without the GIL that are still pending (they
// are otherwise dropped by the completion thread, at most ~5 ms later). GIL held. Called
// on the hot paths that hold the GIL anyway, so that a steady stream of calls does not
// wake the completion thread for them.
void DropReleasedReferences();

// True once the atexit handler ran (or the interpreter is finalizing).
bool Finalizing();

// Releases the GIL for its scope, like py::gil_scoped_release, except at interpreter exit:
// a (daemon) thread that comes back after the atexit handler ran never takes the GIL
// again but blocks until the process ends. (Python would end such a thread with
// pthread_exit inside the re-acquisition, which aborts the process when it unwinds
// through C++ frames.) Use it for every wait in this module.
class GilRelease {
 public:
  GilRelease();
  ~GilRelease();
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// Registers the atexit handler and the fork hook. Module import, GIL held.
void InstallRuntime(py::module_& m);

}  // namespace quiver::python
