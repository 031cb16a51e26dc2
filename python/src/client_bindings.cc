// quiver.Client's methods: infer (blocking, GIL released, Ctrl-C aware), infer_async
// (a concurrent.futures.Future completed by the thread waiting for it, or else on the
// completion thread), infer_batched, and the metadata/health calls. The client's lifecycle is in py_client.cc.

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <utility>

#include "client/remote_service.h"
#include "client/url.h"
#include "columnar/batch_runner.h"
#include "errors.h"
#include "numpy_tensor.h"
#include "py_client.h"
#include "py_runtime.h"

namespace quiver::python {
namespace {

using std::chrono::milliseconds;

// A blocking call's outcome, filled in by the callback on a transport thread.
struct SyncCall {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<InferResponse>> result;  // guarded by mutex
};

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

PyObject*& FutureTypeSlot();

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
  }
}

// One infer_async call, shared by its Python future (as `_call`), the transport callback
// and the completion thread. The callback stores the result here; exactly one party then
// takes it (Claim, under `mutex`) and completes the future:
//   - the caller, when the call ended before Infer returned (local://, refused up front);
//   - a thread waiting in the future's result() or exception(), which the callback wakes
//     directly: one thread wake-up from the response to the waiting Python code, instead
//     of two plus a GIL hand-off through the completion thread;
//   - else the completion thread, to which the callback posts only when nobody waits
//     (done-callbacks, asyncio, concurrent.futures.wait, a result() that comes later).
// The Python objects of the call (the future, the input arrays) are released by that
// party, with the GIL, not by the transport thread that ends the call: a reference dropped
// without the GIL would wake the completion thread a few ms later just to drop it.
struct AsyncCall {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<InferResponse>> result;  // guarded by mutex; empty once claimed
  bool arrived = false;                         // guarded by mutex: the callback ran
  bool claimed = false;                         // guarded by mutex: result was taken
  bool caller_inside = true;                    // guarded by mutex: in infer_async still
  int waiters = 0;                              // guarded by mutex: threads in Wait()
  // Set before the call is sent; reset with the GIL by the party that completes it (the
  // future refers to this call too: the cycle ends there).
  std::shared_ptr<PyObject> future;
  std::vector<Buffer> inputs;  // co-owns the request's input arrays until completion

  // The transport callback: stores `r`; true when nobody is there to take it, so the
  // callback must post the completion.
  // Notifies after unlocking: on a busy core the woken thread would otherwise run at once
  // only to block on `mutex`, two more context switches per call.
  bool Deliver(Result<InferResponse> r) {
    bool taken_here = false;
    {
      std::lock_guard lock(mutex);
      result.emplace(std::move(r));
      arrived = true;
      taken_here = caller_inside || waiters > 0;
    }
    if (taken_here) cv.notify_all();
    return !taken_here;
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
  // Completes the future with what this thread claimed and drops the call's Python
  // references. GIL held; once per call (only the claiming party calls it).
  void Finish(const Result<InferResponse>& claimed_result);
  // Drops the Python references of a call that was never sent. GIL held.
  void Abandon() {
    future.reset();
    inputs.clear();
  }
};

void AsyncCall::Finish(const Result<InferResponse>& claimed_result) {
  Complete(future.get(), claimed_result);
  Abandon();
}

// The Python face of an AsyncCall: quiver._Future's `_call`.
struct PyAsyncCall {
  std::shared_ptr<AsyncCall> call;
};

// Future.result()/exception() of an infer_async call (quiver._Future, GIL held): waits
// for the call with the GIL released (Ctrl-C checked every 100 ms) for at most `timeout`
// seconds (None: no limit) and completes the call's future when this thread takes the result.
// Returns the time left of `timeout` (None for None) for the wait on the future itself,
// which another thread may be completing.
py::object WaitAsync(AsyncCall& call, const py::object& timeout) {
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
        ++call.waiters;
        registered = true;
      }
      const Clock::time_point until = std::min(deadline, Clock::now() + milliseconds(100));
      call.cv.wait_until(lock, until, [&] { return call.arrived || call.claimed; });
      taken = call.ClaimLocked();
      done = taken.has_value() || call.claimed || Clock::now() >= deadline;
      if (done) --call.waiters;
    }
    if (taken) call.Finish(*taken);
    if (done) return left();
    if (PyErr_CheckSignals() != 0) {
      // Leaving: a result that arrived meanwhile (the callback saw this waiter and did not
      // post) is completed here, so that the future still completes exactly once.
      {
        std::lock_guard lock(call.mutex);
        --call.waiters;
        taken = call.ClaimLocked();
      }
      if (taken) call.Finish(*taken);
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
  static PyObject* plain =
      py::object(py::module_::import("concurrent.futures").attr("Future")).release().ptr();
  py::object future = py::reinterpret_borrow<py::object>(plain)();
  future.attr("set_running_or_notify_cancel")();
  return future;
}

InferRequest BuildRequest(const std::string& model, const py::object& inputs,
                          const py::object& version, const py::object& outputs,
                          const py::object& timeout, const py::object& datatypes) {
  InferRequest request;
  request.model = model;
  request.version = VersionArg(version);
  request.requested_outputs = NamesArg(outputs, "outputs");
  const double seconds = SecondsArg(timeout, "timeout");
  if (seconds > 0) {
    request.deadline = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(seconds));
  }
  request.inputs = TensorsFromMapping(inputs, datatypes);
  return request;
}

py::list TensorMetadataList(const std::vector<TensorMetadata>& tensors) {
  py::list out;
  for (const TensorMetadata& t : tensors) {
    py::dict d;
    d["name"] = t.name;
    d["datatype"] = std::string(DataTypeName(t.datatype));
    d["shape"] = py::cast(t.shape);
    out.append(d);
  }
  return out;
}

std::shared_ptr<client::Client> Ready(PyClient& self) {
  Result<std::shared_ptr<client::Client>> client = [&] {
    GilRelease release;
    return self.Acquire();
  }();
  return Unwrap(std::move(client));
}

// Runs `fn(client)` with the GIL released; its Result is unwrapped with the GIL held.
template <typename Fn>
auto Call(PyClient& self, Fn&& fn) {
  std::shared_ptr<client::Client> client = Ready(self);
  auto result = [&] {
    GilRelease release;
    return fn(*client);
  }();
  return result;
}

const char* kClientDoc =
    R"doc(A client of KServe v2 inference servers (quiver serve, NVIDIA Triton, the
Quiver gateway) or of an in-process model repository.

Client(urls, fallback=None, timeout=None, retries=4, *, attempt_timeout=None,
       max_in_flight=256, connections=4, shared_memory=True, validate_inputs=True,
       token=None)

urls: one URL or a list, tried in this order (failover): "grpc://host[:port]",
  "http://host[:port]" or "local:///path/to/model_repository" (the models run in this
  process). An empty list is allowed with a fallback.
fallback: a URL used when every remote endpoint is down (typically local://...).
timeout: the total time of each call in seconds (None: no limit); infer(timeout=...)
  overrides it. It covers everything the call does: fetching the model's metadata for the
  input checks, every attempt and retry, backoff waits and failover. No call waits past
  it (a few milliseconds of slack for timers and sockets): it then fails with
  quiver.DeadlineExceeded naming the endpoints tried and the last error. Sync methods
  (metadata, config, ready, statistics, load/unload) are bounded by it too. local:// calls
  are not cut short once they run.
retries: attempts after the first one for retryable errors (UNAVAILABLE, per-attempt
  timeouts), over all endpoints, with exponential backoff and jitter, all within timeout.
attempt_timeout: the limit of one attempt in seconds (None: none); an attempt past it is
  retried. Connecting to a server, registering shared memory and each sync call give up
  after 3 s at most, or earlier when timeout says so.
max_in_flight: calls outstanding at once; infer_async blocks beyond it (backpressure).
connections: connections (HTTP) or channels (gRPC) per remote endpoint.
shared_memory: pass large inputs through POSIX shared memory to servers on this host.
validate_inputs: check input names, data types and shapes against the model's metadata
  before sending (errors without a round trip).
token: a bearer token sent to every remote endpoint (HTTP "Authorization: Bearer <token>",
  gRPC metadata "authorization"), e.g. for the Quiver gateway's tenants. None: the
  environment variable QUIVER_TOKEN if set, else no token; "": no token. Read once, here.
  Visible ASCII without spaces (quiver.InvalidArgument otherwise). Never shown in repr(),
  `config` or error messages; pickling keeps it. A missing or wrong token raises
  quiver.Unauthenticated, a tenant over its limits quiver.TooManyRequests (HTTP) or
  quiver.ResourceExhausted (gRPC); neither is retried.

URLs are checked at once (quiver.InvalidArgument); nothing connects before the first
call. Thread-safe: one client may serve many threads. The GIL is released while a call
waits. Picklable by configuration: an unpickled client (e.g. on a Dask worker) connects
on first use, sharing one connection set per process and configuration. After fork()
the child makes its own connections; gRPC itself does not work in a child forked from a
process that used it (use the 'spawn' start method, Dask's default, or http://).
Errors are quiver.Error subclasses (quiver.NotFound, quiver.Unavailable, ...) with the
server's message.)doc";

}  // namespace

py::class_<PyClient> RegisterClient(py::module_& m) {
  InstallClientHooks();
  py::class_<PyAsyncCall>(m, "_AsyncCall", "An infer_async call in flight (quiver._Future._call).")
      .def(
          "wait",
          [](PyAsyncCall& self, const py::object& timeout) { return WaitAsync(*self.call, timeout); },
          py::arg("timeout"),
          "Waits for the call (GIL released) at most `timeout` s and completes its future if "
          "this thread takes the result; returns the time left (None for None).");
  m.def(
      "_set_future_type",
      [](const py::object& type) {
        PyObject*& slot = FutureTypeSlot();
        Py_XDECREF(slot);
        slot = type.inc_ref().ptr();
      },
      "Registers quiver._Future as the type infer_async returns (package import).");
  py::class_<PyClient> cls(m, "Client", kClientDoc);
  cls.def(py::init([](const py::object& urls, const py::object& fallback, const py::object& timeout,
                      int retries, const py::object& attempt_timeout, size_t max_in_flight,
                      size_t connections, bool shared_memory, bool validate_inputs,
                      const py::object& token) {
            ClientConfig c;
            if (py::isinstance<py::str>(urls)) {
              c.urls = {urls.cast<std::string>()};
            } else if (!urls.is_none()) {
              c.urls = NamesArg(urls, "urls");
            }
            if (!fallback.is_none()) c.fallback = fallback.cast<std::string>();
            if (c.urls.empty() && c.fallback.empty()) {
              ThrowStatus(Status::InvalidArgument("quiver.Client: no URL given"));
            }
            for (const std::string& url : c.urls) Unwrap(client::ParseUrl(url));
            if (!c.fallback.empty()) {
              auto parsed = client::ParseUrl(c.fallback);
              if (!parsed.ok()) ThrowStatus(parsed.status().WithContext("fallback"));
            }
            c.timeout_s = SecondsArg(timeout, "timeout");
            if (retries < 0) ThrowStatus(Status::InvalidArgument("retries must be >= 0"));
            c.retries = retries;
            c.attempt_timeout_s = SecondsArg(attempt_timeout, "attempt_timeout");
            if (max_in_flight == 0 || connections == 0) {
              ThrowStatus(Status::InvalidArgument("max_in_flight and connections must be >= 1"));
            }
            c.max_in_flight = max_in_flight;
            c.connections = connections;
            c.shared_memory = shared_memory;
            c.validate_inputs = validate_inputs;
            if (py::isinstance<py::str>(token)) {
              c.token = token.cast<std::string>();
            } else if (!token.is_none()) {
              throw py::type_error("token must be a str or None");
            } else if (const char* env = std::getenv("QUIVER_TOKEN")) {
              c.token = env;
            }
            if (Status s = client::CheckToken(c.token); !s.ok()) ThrowStatus(s);
            return std::make_unique<PyClient>(std::move(c), /*shared=*/false);
          }),
          py::arg("urls"), py::arg("fallback") = py::none(), py::arg("timeout") = py::none(),
          py::arg("retries") = 4, py::kw_only(), py::arg("attempt_timeout") = py::none(),
          py::arg("max_in_flight") = 256, py::arg("connections") = 4,
          py::arg("shared_memory") = true, py::arg("validate_inputs") = true,
          py::arg("token") = py::none());

  cls.def(
      "infer",
      [](PyClient& self, const std::string& model, const py::object& inputs,
         const py::object& version, const py::object& outputs, const py::object& timeout,
         const py::object& datatypes) {
        DropReleasedReferences();  // those of earlier calls, without waking a thread for them
        InferRequest request = BuildRequest(model, inputs, version, outputs, timeout, datatypes);
        auto call = std::make_shared<SyncCall>();
        // Co-owns the input arrays, so that the last reference to each is dropped here, with
        // the GIL, not on the thread that ends the call (see AsyncCall).
        std::vector<Buffer> held_inputs;
        held_inputs.reserve(request.inputs.size());
        for (const Tensor& t : request.inputs) held_inputs.push_back(t.data);
        {
          GilRelease release;
          auto client = self.Acquire();
          auto done = [call](Result<InferResponse> r) {
            {
              std::lock_guard lock(call->mutex);
              call->result.emplace(std::move(r));
            }
            call->cv.notify_all();  // unlocked: see AsyncCall::Deliver
          };
          if (client.ok()) {
            (*client)->Infer(std::move(request), std::move(done));
          } else {
            done(client.status());
          }
        }
        Result<InferResponse> response = Wait(call);
        if (!response.ok()) ThrowStatus(response.status());
        return DictFromTensors(response->outputs, /*writable=*/false);
      },
      py::arg("model"), py::arg("inputs"), py::arg("version") = py::none(),
      py::arg("outputs") = py::none(), py::arg("timeout") = py::none(),
      py::arg("datatypes") = py::none(),
      R"doc(Runs `model` on `inputs` and returns {output name: numpy array}.

inputs: {name: array}; C-contiguous arrays of a fixed-size dtype are sent without a copy
  (do not modify them until the call returns), others are converted once. Object, bytes
  ('S') or str ('U') arrays are BYTES tensors.
version: None (the model's default), an int or a str.
outputs: names of the outputs to return (None: all).
timeout: deadline in seconds for this call (None: the client's); quiver.DeadlineExceeded.
datatypes: {input name: KServe data type} to send an array's bits as another type of the
  same item size, e.g. {"x": "BF16"} for a uint16 array of bfloat16 bit patterns.
Returns read-only arrays that share the response's memory (np.array(a) for a writable
copy); BYTES outputs are object arrays of bytes; BF16 outputs are ml_dtypes.bfloat16
arrays (uint16 bit patterns without ml_dtypes).
The GIL is released while the call waits; Ctrl-C interrupts the wait.)doc");

  cls.def(
      "infer_async",
      [](PyClient& self, const std::string& model, const py::object& inputs,
         const py::object& version, const py::object& outputs, const py::object& timeout,
         const py::object& datatypes) {
        DropReleasedReferences();  // those of earlier calls, without waking a thread for them
        InferRequest request = BuildRequest(model, inputs, version, outputs, timeout, datatypes);
        // local://: a model with dynamic batching gets the request queued rather than run
        // here, so that infer_async returns at once and calls sent in a row are batched
        // (as the C++ client's are when it sends from its callbacks).
        request.queue_for_batching = true;
        auto call = std::make_shared<AsyncCall>();
        py::object future = NewFuture(call);
        call->future = Share(future);
        call->inputs.reserve(request.inputs.size());
        for (const Tensor& t : request.inputs) call->inputs.push_back(t.data);
        // A call that completes before Infer returns (local://, or refused up front) is
        // completed here, by the caller, once it holds the GIL again: the hop through the
        // completion thread costs two thread wake-ups, more than a small local inference.
        std::optional<Result<InferResponse>> inline_result;
        Status error;
        {
          GilRelease release;
          auto client = self.Acquire();
          if (client.ok()) {
            (*client)->Infer(std::move(request), [call](Result<InferResponse> r) {
              if (!call->Deliver(std::move(r))) return;  // the caller or a waiter takes it
              Post([call] {
                if (auto taken = call->Claim()) call->Finish(*taken);
              });
            });
          } else {
            error = client.status();
          }
          std::lock_guard lock(call->mutex);
          call->caller_inside = false;
          inline_result = call->ClaimLocked();
        }
        if (!error.ok()) {
          call->Abandon();
          ThrowStatus(error);
        }
        if (inline_result) call->Finish(*inline_result);
        return future;
      },
      py::arg("model"), py::arg("inputs"), py::arg("version") = py::none(),
      py::arg("outputs") = py::none(), py::arg("timeout") = py::none(),
      py::arg("datatypes") = py::none(),
      R"doc(As infer(), but returns a concurrent.futures.Future of the outputs at once.

The future's exception is the quiver.Error of the call. A thread waiting in its result()
or exception() is woken by the response itself and completes the future there (GIL
released while it waits); otherwise Quiver's completion thread completes it. asyncio:
infer_aio (or `await asyncio.wrap_future(f)`). Blocks only while max_in_flight calls are
outstanding (backpressure) or while the model's metadata is fetched for validation the
first time. Keep the input arrays unmodified until the future is done. Done-callbacks run
on the thread that completes the future (often the one completion thread): keep them
short, and never wait there with concurrent.futures.wait() for another quiver future.)doc");

  cls.def(
      "infer_batched",
      [](PyClient& self, const std::string& model, const py::object& inputs,
         const py::object& version, const py::object& outputs, int64_t max_batch_size,
         int max_in_flight, const py::object& datatypes) {
        if (max_in_flight < 1) ThrowStatus(Status::InvalidArgument("max_in_flight must be >= 1"));
        if (max_batch_size < 0) {
          ThrowStatus(Status::InvalidArgument("max_batch_size must be >= 0"));
        }
        std::vector<Tensor> tensors = TensorsFromMapping(inputs, datatypes);
        columnar::BatchOptions options;
        options.version = VersionArg(version);
        options.requested_outputs = NamesArg(outputs, "outputs");
        options.max_batch_size = max_batch_size;
        options.max_in_flight = max_in_flight;
        Result<columnar::TensorMap> result = [&]() -> Result<columnar::TensorMap> {
          GilRelease release;
          auto client = self.Acquire();
          if (!client.ok()) return client.status();
          return columnar::RunBatched(**client, model, tensors, options);
        }();
        columnar::TensorMap map = Unwrap(std::move(result));
        py::dict out;
        for (const auto& [name, tensor] : map) out[py::str(name)] = ArrayFromTensor(tensor, false);
        return out;
      },
      py::arg("model"), py::arg("inputs"), py::arg("version") = py::none(),
      py::arg("outputs") = py::none(), py::arg("max_batch_size") = 0,
      py::arg("max_in_flight") = 4, py::arg("datatypes") = py::none(),
      R"doc(Runs `model` on row-aligned inputs of any length (dimension 0 = rows), split
into requests of at most max_batch_size rows (0: the model config's), max_in_flight of
them outstanding, outputs gathered back in row order. Inputs are sliced without copies.
Returns {output name: array with the same rows}. Errors name the failed rows.)doc");

  cls.def(
      "live", [](PyClient& self) { return Call(self, [](client::Client& c) { return c.Live(); }); },
      "True when a server (or the fallback) answers as live.");
  cls.def(
      "ready", [](PyClient& self) { return Call(self, [](client::Client& c) { return c.Ready(); }); },
      "True when a server (or the fallback) is ready.");
  cls.def(
      "model_ready",
      [](PyClient& self, const std::string& model, const py::object& version) {
        const std::string v = VersionArg(version);
        return Call(self, [&](client::Client& c) { return c.ModelReady(model, v); });
      },
      py::arg("model"), py::arg("version") = py::none(), "True when the model can be served.");
  cls.def(
      "server_metadata",
      [](PyClient& self) {
        ServerMetadata md =
            Unwrap(Call(self, [](client::Client& c) { return c.GetServerMetadata(); }));
        py::dict d;
        d["name"] = md.name;
        d["version"] = md.version;
        d["extensions"] = py::cast(md.extensions);
        return d;
      },
      "{'name', 'version', 'extensions'} of the first server that answers.");
  cls.def(
      "model_metadata",
      [](PyClient& self, const std::string& model, const py::object& version) {
        const std::string v = VersionArg(version);
        ModelMetadata md = Unwrap(
            Call(self, [&](client::Client& c) { return c.GetModelMetadata(model, v); }));
        py::dict d;
        d["name"] = md.name;
        d["versions"] = py::cast(md.versions);
        d["platform"] = md.platform;
        d["inputs"] = TensorMetadataList(md.inputs);
        d["outputs"] = TensorMetadataList(md.outputs);
        return d;
      },
      py::arg("model"), py::arg("version") = py::none(),
      "{'name', 'versions', 'platform', 'inputs', 'outputs'}; each tensor as {'name', "
      "'datatype', 'shape'} (-1: any size). quiver.NotFound for an unknown model.");
  cls.def(
      "stats",
      [](PyClient& self) {
        client::ClientStats s;
        if (auto client = self.Current()) s = client->Stats();
        py::dict d;
        d["calls"] = s.calls;
        d["attempts"] = s.attempts;
        d["retries"] = s.retries;
        d["fallback_calls"] = s.fallback_calls;
        d["failed_calls"] = s.failed_calls;
        return d;
      },
      "Counters of this process's C++ client: calls, attempts, retries, fallback_calls, "
      "failed_calls (zeros before the first call). Unpickled clients of one configuration "
      "share a C++ client, hence these counters, per process.");
  cls.def("close", &PyClient::Close,
          "Waits for in-flight calls and closes connections (or unloads the local engine). "
          "The client stays usable: the next call connects again.");
  cls.def("__enter__", [](py::object self) { return self; });
  cls.def("__exit__", [](PyClient& self, const py::args&) { self.Close(); });
  cls.def_property_readonly("urls", [](const PyClient& self) { return self.config().urls; });
  cls.def_property_readonly("fallback", [](const PyClient& self) -> py::object {
    return self.config().ToDict()["fallback"];
  });
  cls.def_property_readonly("timeout", [](const PyClient& self) -> py::object {
    return self.config().ToDict()["timeout"];
  });
  cls.def_property_readonly("retries", [](const PyClient& self) { return self.config().retries; });
  cls.def_property_readonly(
      "config", [](const PyClient& self) { return self.config().ToDict(); },
      "The configuration, as keyword arguments of Client(); without the token (pickling "
      "keeps it).");
  cls.def("__repr__", [](const PyClient& self) {
    std::string urls;
    for (const std::string& u : self.config().urls) urls += (urls.empty() ? "'" : ", '") + u + "'";
    std::string repr = "quiver.Client([" + urls + "]";
    if (!self.config().fallback.empty()) repr += ", fallback='" + self.config().fallback + "'";
    return repr + ")";
  });
  cls.def(py::pickle([](const PyClient& self) { return self.config().ToDict(/*with_token=*/true); },
                     [](const py::dict& state) {
                       return std::make_unique<PyClient>(ClientConfig::FromDict(state),
                                                         /*shared=*/true);
                     }));
  return cls;
}

}  // namespace quiver::python
