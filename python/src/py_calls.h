#pragma once
// The objects between a transport callback and the Python code that waits for a call:
// SyncCall for the blocking infer(), AsyncCall for infer_async() and its quiver._Future.
// Contract (py_runtime.h): transport threads never take the GIL; whoever completes a call
// holds it.

#include <pybind11/pybind11.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "service/types.h"

namespace quiver::python {

namespace py = pybind11;

// A blocking call's outcome, filled in by the callback on a transport thread.
struct SyncCall {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<InferResponse>> result;  // guarded by mutex
};

// For transport callbacks (any thread): the delivery batch `r` came in, or null, cleared
// in `r` (InferResponse::delivery_batch is valid only during the callback, never stored),
// and `wake` run now or, in a batch, after its last response was delivered.
DeliveryBatch* TakeDeliveryBatch(Result<InferResponse>& r);
// Copies of the request's input Buffers (shared owners: no bytes copied), so that the
// caller, not the thread that ends the call, drops the last reference to its arrays.
std::vector<Buffer> InputBuffers(const InferRequest& request);
void WakeAfter(DeliveryBatch* batch, std::function<void()> wake);

// Waits for `call` with the GIL released, checking for signals (Ctrl-C) every 100 ms.
// On KeyboardInterrupt the call goes on in the background; its result is dropped.
Result<InferResponse> Wait(const std::shared_ptr<SyncCall>& call);

// One infer_async call, shared by its Python future (as `_call`), the transport callback
// and the completion thread. The callback stores the result here; exactly one party then
// takes it (Claim, under `mutex`) and completes the future:
//   - the caller, when the call ended before Infer returned (local://, refused up front);
//   - a thread waiting in the future's result() or exception(), which the callback wakes
//     directly: one thread wake-up from the response to the waiting Python code, instead
//     of two plus a GIL hand-off through the completion thread;
//   - while the future is lean (nothing but result()/exception() has touched it: no
//     threading.Condition yet), a later result()/exception(), or the first use of its
//     Condition (done(), add_done_callback, wait(), asyncio, ...: CompleteWhenDone). The
//     result waits in the call; no other thread is involved;
//   - else the completion thread, to which the callback posts (the future has waiters
//     other than result(): done-callbacks, asyncio, concurrent.futures.wait).
// The Python objects of the call (the future, the input arrays) are released by that
// party, with the GIL, not by the transport thread that ends the call: a reference dropped
// without the GIL would wake the completion thread a few ms later just to drop it. Only a
// lean call's result that nobody claims by the end of its delivery drops them from the
// transport thread, so that a future the program let go of is freed.
struct AsyncCall {
  // What the transport callback does with a result it stored.
  enum class Arrival {
    kWake,  // a thread is there to take it (the caller, or a waiter): wake it
    kKeep,  // lean: it waits for result() or CompleteWhenDone
    kPost,  // post its completion to the completion thread
  };

  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<InferResponse>> result;  // guarded by mutex; empty once claimed
  bool arrived = false;                         // guarded by mutex: the callback ran
  bool claimed = false;                         // guarded by mutex: result was taken
  bool caller_inside = true;                    // guarded by mutex: in infer_async still
  bool lean = true;                             // guarded by mutex: see kKeep
  int waiters = 0;                              // guarded by mutex: threads in WaitAsync
  // Set before the call is sent; then reset by the party that completes it, with the GIL,
  // or by ReleaseIfUnclaimed (the future refers to this call too: the cycle ends there).
  std::shared_ptr<PyObject> future;
  std::vector<Buffer> inputs;  // co-owns the request's input arrays until completion
  // Given to the request when only result()/exception() will wait for it: an in-process
  // engine may then hold it for the thread that waits, which runs it
  // (InferRequest::waiter); CompleteWhenDone gives the hold up.
  WaiterLink link;

  // The transport callback: stores `r` (waiters are woken through `cv` after this returns:
  // woken under `mutex`, on a busy core one would run at once only to block on it).
  Arrival Store(Result<InferResponse> r) {
    std::lock_guard lock(mutex);
    result.emplace(std::move(r));
    arrived = true;
    if (caller_inside || waiters > 0) return Arrival::kWake;
    return lean ? Arrival::kKeep : Arrival::kPost;
  }
  bool Arrived() {
    std::lock_guard lock(mutex);
    return arrived;
  }
  bool Claimed() {
    std::lock_guard lock(mutex);
    return claimed;
  }
  // The result, if it arrived and nobody took it yet (then the caller completes the
  // future with it). Call with `mutex` held.
  std::optional<Result<InferResponse>> ClaimLocked() {
    if (!arrived || claimed) return std::nullopt;
    claimed = true;
    std::optional<Result<InferResponse>> taken = std::move(result);
    result.reset();
    return taken;
  }
  std::optional<Result<InferResponse>> Claim() {
    std::lock_guard lock(mutex);
    return ClaimLocked();
  }
  // The transport callback of infer_async (any thread, no GIL): stores the result, then
  // wakes the thread that takes it, keeps it, or posts the completion. Within a batch's
  // delivery (InferResponse::delivery_batch) the wake-up and what follows a kKeep or
  // kPost wait for the batch's last response, and are skipped if a woken thread took the
  // result meanwhile.
  static void OnResult(const std::shared_ptr<AsyncCall>& call, Result<InferResponse> r);
  // The future `future` (this call's) gets other waiters than result()/exception(): from
  // now on a result is posted to the completion thread, and one that arrived already is
  // completed here. GIL held.
  void CompleteWhenDone(py::handle future);
  // Completes `future` (this call's) with what this thread claimed and drops the call's
  // Python references. GIL held; once per call (only the claiming party calls it).
  void Finish(const Result<InferResponse>& claimed_result, py::handle future);
  // Drops the call's Python references (with the GIL: at once; without: queued). Under
  // `mutex`, as ReleaseIfUnclaimed may run on a transport thread meanwhile.
  void Abandon() {
    std::shared_ptr<PyObject> held_future;
    std::vector<Buffer> held_inputs;
    {
      std::lock_guard lock(mutex);  // against ReleaseIfUnclaimed
      held_future = std::move(future);
      held_inputs = std::move(inputs);
    }
  }
  // A kKeep result still unclaimed at the end of its delivery: drops the future and the
  // inputs (queued for a thread with the GIL), so that a future nobody holds any more is
  // freed; a later result() gets the future from Python.
  void ReleaseIfUnclaimed();
};

// The Python face of an AsyncCall: quiver._Future's `_call`.
struct PyAsyncCall {
  std::shared_ptr<AsyncCall> call;
};

// Future.result()/exception() of an infer_async call (quiver._Future, GIL held): waits
// for the call with the GIL released (Ctrl-C checked every 100 ms) for at most `timeout`
// seconds (None: no limit) and completes `future` (the call's) when this thread takes the
// result.
// Returns the time left of `timeout` (None for None) for the wait on the future itself,
// which another thread may be completing.
py::object WaitAsync(AsyncCall& call, py::handle future, const py::object& timeout);

// quiver._Future (a concurrent.futures.Future subclass defined in quiver/__init__.py and
// registered at import), or concurrent.futures.Future when it is not registered.
PyObject*& FutureTypeSlot();

// A running future for `call`.
py::object NewFuture(const std::shared_ptr<AsyncCall>& call);

}  // namespace quiver::python
