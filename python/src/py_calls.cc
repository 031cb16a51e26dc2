#include "py_calls.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "errors.h"
#include "numpy_tensor.h"
#include "py_runtime.h"

namespace quiver::python {

using std::chrono::milliseconds;

// Waits for `call` with the GIL released, checking for signals (Ctrl-C) every 100 ms.
// On KeyboardInterrupt the call goes on in the background; its result is dropped.
Result<InferResponse> Wait(const std::shared_ptr<SyncCall>& call) {
  while (true) {
    {
      GilRelease release;
      std::unique_lock lock(call->mutex);
      if (call->cv.wait_for(lock, milliseconds(100), [&] { return call->result.has_value(); })) {
        Result<InferResponse> result = std::move(*call->result);
        call->result.reset();
        return result;
      }
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

namespace {

// Completes a quiver._Future whose Condition was never made (see _Future in
// quiver/__init__.py) by setting its state, as set_result()/set_exception() would: nobody
// can be waiting on a Condition that does not exist, and no callback was added (that makes
// it). Returns false, leaving it alone, where that does not hold. GIL held; nothing here
// runs Python code between the check and the state change (both values are replaced, the
// dict does not grow), so no other thread can make the Condition in between.
bool CompleteLean(py::handle f, py::handle value, bool is_exception) {
  static PyObject* const cond_key = PyUnicode_InternFromString("_cond");
  static PyObject* const state_key = PyUnicode_InternFromString("_state");
  static PyObject* const result_key = PyUnicode_InternFromString("_result");
  static PyObject* const exception_key = PyUnicode_InternFromString("_exception");
  static PyObject* const running = PyUnicode_InternFromString("RUNNING");
  static PyObject* const finished = PyUnicode_InternFromString("FINISHED");
  PyObject* type = FutureTypeSlot();
  if (type == nullptr || Py_TYPE(f.ptr()) != reinterpret_cast<PyTypeObject*>(type)) return false;
  py::object owned = py::reinterpret_steal<py::object>(PyObject_GenericGetDict(f.ptr(), nullptr));
  PyObject* dict = owned.ptr();
  if (dict == nullptr) {
    PyErr_Clear();
    return false;
  }
  if (PyDict_GetItemWithError(dict, cond_key) != nullptr) return false;
  PyObject* state = PyDict_GetItemWithError(dict, state_key);
  PyObject* slot = PyDict_GetItemWithError(dict, is_exception ? exception_key : result_key);
  if (PyErr_Occurred() != nullptr) PyErr_Clear();
  if (state == nullptr || slot == nullptr || PyUnicode_Compare(state, running) != 0) return false;
  // Both keys exist (set in _Future.__init__): replacing their values neither grows the
  // dict nor runs Python code (the old values are None and the interned "RUNNING").
  if (PyDict_SetItem(dict, is_exception ? exception_key : result_key, value.ptr()) != 0 ||
      PyDict_SetItem(dict, state_key, finished) != 0) {
    PyErr_Clear();
    return false;
  }
  return true;
}

// Completes `future` (a concurrent.futures.Future) with the response or the exception.
void Complete(PyObject* future, const Result<InferResponse>& result) {
  py::handle f(future);
  try {
    if (result.ok()) {
      py::dict outputs = DictFromTensors(result->outputs, /*writable=*/false);
      if (!CompleteLean(f, outputs, /*is_exception=*/false)) f.attr("set_result")(outputs);
    } else {
      py::object error = ExceptionFor(result.status());
      if (!CompleteLean(f, error, /*is_exception=*/true)) f.attr("set_exception")(error);
    }
  } catch (py::error_already_set& e) {
    try {
      if (!CompleteLean(f, e.value(), /*is_exception=*/true)) {
        f.attr("set_exception")(e.value());  // e.g. an output that numpy cannot hold
      }
    } catch (py::error_already_set&) {
      // Already done (cancelled): nobody is waiting for it.
    }
  } catch (const std::exception& e) {
    // Not from Python (std::bad_alloc, a pybind11 cast error): the future must still end.
    try {
      py::object error =
          ExceptionFor(Status::Internal(std::string("completing the call: ") + e.what()));
      if (!CompleteLean(f, error, /*is_exception=*/true)) f.attr("set_exception")(error);
    } catch (...) {
      PyErr_Clear();  // nothing more can be done here; the call's references are dropped
    }
  }
}

}  // namespace

std::vector<Buffer> InputBuffers(const InferRequest& request) {
  std::vector<Buffer> buffers;
  buffers.reserve(request.inputs.size());
  for (const Tensor& t : request.inputs) buffers.push_back(t.data);
  return buffers;
}

DeliveryBatch* TakeDeliveryBatch(Result<InferResponse>& r) {
  return r.ok() ? std::exchange(r->delivery_batch, nullptr) : nullptr;
}

void WakeAfter(DeliveryBatch* batch, std::function<void()> wake) {
  if (batch != nullptr) {
    batch->AfterDelivery(std::move(wake));
  } else {
    wake();
  }
}

void AsyncCall::OnResult(const std::shared_ptr<AsyncCall>& call, Result<InferResponse> r) {
  DeliveryBatch* batch = TakeDeliveryBatch(r);
  switch (call->Store(std::move(r))) {
    case Arrival::kWake:
      WakeAfter(batch, [call] { call->cv.notify_all(); });
      return;
    case Arrival::kKeep:
      WakeAfter(batch, [call] { call->ReleaseIfUnclaimed(); });
      return;
    case Arrival::kPost:
      WakeAfter(batch, [call] {
        if (call->Claimed()) return;  // a thread woken in the same batch took it
        Post([call] {
          if (auto taken = call->Claim()) call->Finish(*taken, py::handle(call->future.get()));
        });
      });
      return;
  }
}

void AsyncCall::ReleaseIfUnclaimed() {
  // A claimer releases them itself, with the GIL. One that claims after this check only
  // finds them gone: it completes the future it was handed, not the member.
  if (!Claimed()) Abandon();
}

void AsyncCall::CompleteWhenDone(py::handle f) {
  std::optional<Result<InferResponse>> taken;
  {
    std::lock_guard lock(mutex);
    lean = false;
    taken = ClaimLocked();
  }
  if (taken) {
    Finish(*taken, f);
  } else if (auto helper = link.Helper()) {
    // Other waiters (done-callbacks, asyncio, wait()) do not run a held request: the
    // engine's workers take it now.
    helper->Release();
  }
}

void AsyncCall::Finish(const Result<InferResponse>& claimed_result, py::handle f) {
  if (f.ptr() != nullptr) Complete(f.ptr(), claimed_result);  // does not throw
  Abandon();
}

// Future.result()/exception() of an infer_async call (quiver._Future, GIL held): waits
// for the call with the GIL released (Ctrl-C checked every 100 ms) for at most `timeout`
// seconds (None: no limit) and completes the call's future when this thread takes the result.
// Returns the time left of `timeout` (None for None) for the wait on the future itself,
// which another thread may be completing.
py::object WaitAsync(AsyncCall& call, py::handle future, const py::object& timeout) {
  using Clock = std::chrono::steady_clock;
  const bool bounded = !timeout.is_none();
  const Clock::time_point deadline =
      bounded ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(
                                       std::max(0.0, timeout.cast<double>())))
              : Clock::time_point::max();
  auto left = [&]() -> py::object {
    if (!bounded) return py::none();
    return py::float_(std::max(0.0, std::chrono::duration<double>(deadline - Clock::now()).count()));
  };
  std::optional<Result<InferResponse>> taken;
  bool registered = false;
  while (true) {
    bool done = false;
    {
      GilRelease release;
      std::unique_lock lock(call.mutex);
      if (!registered) {
        ++call.waiters;  // before helping: the response then wakes nobody and stays here
        registered = true;
      }
      // Held for this thread (local://; read on every pass: a retry may be held later):
      // run the queue until the result is there; with a timeout, hand it to the workers
      // instead (an execution here could outlast the timeout).
      if (!call.arrived) {
        lock.unlock();
        if (std::shared_ptr<QueueHelper> helper = call.link.Helper()) {
          if (bounded) {
            helper->Release();
          } else {
            while (!call.Arrived() && helper->RunQueued()) {
            }
          }
        }
        lock.lock();
      }
      const Clock::time_point until = std::min(deadline, Clock::now() + milliseconds(100));
      call.cv.wait_until(lock, until, [&] { return call.arrived || call.claimed; });
      taken = call.ClaimLocked();
      done = taken.has_value() || call.claimed || Clock::now() >= deadline;
      if (done) --call.waiters;
    }
    if (taken) call.Finish(*taken, future);
    if (done) return left();
    if (PyErr_CheckSignals() != 0) {
      // Leaving: a result that arrived meanwhile (the callback saw this waiter and did not
      // post) is completed here, so that the future still completes exactly once.
      {
        std::lock_guard lock(call.mutex);
        --call.waiters;
        taken = call.ClaimLocked();
      }
      if (taken) call.Finish(*taken, future);
      throw py::error_already_set();
    }
  }
}

// quiver._Future (a concurrent.futures.Future subclass defined in quiver/__init__.py and
// registered at import), or concurrent.futures.Future when it is not registered.
PyObject*& FutureTypeSlot() {
  static PyObject* type = nullptr;  // a strong reference, never released
  return type;
}

// A running future for `call`.
py::object NewFuture(const std::shared_ptr<AsyncCall>& call) {
  if (PyObject* type = FutureTypeSlot()) {
    return py::reinterpret_borrow<py::object>(type)(PyAsyncCall{call});
  }
  {
    std::lock_guard lock(call->mutex);
    call->lean = false;  // a plain Future: no result() of ours will come for the result
  }
  static PyObject* plain =
      py::object(py::module_::import("concurrent.futures").attr("Future")).release().ptr();
  py::object future = py::reinterpret_borrow<py::object>(plain)();
  future.attr("set_running_or_notify_cancel")();
  return future;
}

}  // namespace quiver::python
