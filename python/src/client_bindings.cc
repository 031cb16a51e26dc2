// quiver.Client's methods: infer (blocking, GIL released, Ctrl-C aware), infer_async
// (a concurrent.futures.Future completed by the thread waiting for it, or else on the
// completion thread), infer_batched, and the metadata/health calls. The client's
// lifecycle is in py_client.cc, the call objects behind infer/infer_async in py_calls.h.

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <utility>

#include "client/remote_service.h"
#include "client/url.h"
#include "columnar/batch_runner.h"
#include "errors.h"
#include "numpy_tensor.h"
#include "py_calls.h"
#include "py_client.h"
#include "py_fastcall.h"
#include "py_runtime.h"

namespace quiver::python {
namespace {

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

// infer(): the call waits here with the GIL released.
py::object Infer(PyClient& self, const std::string& model, const py::object& inputs,
                 const py::object& version, const py::object& outputs, const py::object& timeout,
                 const py::object& datatypes) {
  DropReleasedReferences();  // those of earlier calls, without waking a thread for them
  InferRequest request = BuildRequest(model, inputs, version, outputs, timeout, datatypes);
  auto call = std::make_shared<SyncCall>();
  // Co-owns the input arrays, so that the last reference to each is dropped here, with
  // the GIL, not on the thread that ends the call (see AsyncCall).
  const std::vector<Buffer> held_inputs = InputBuffers(request);
  {
    GilRelease release;
    auto client = self.Acquire();
    auto done = [call](Result<InferResponse> r) {
      DeliveryBatch* batch = TakeDeliveryBatch(r);
      {
        std::lock_guard lock(call->mutex);
        call->result.emplace(std::move(r));
      }
      WakeAfter(batch, [call] { call->cv.notify_all(); });  // unlocked: see Store
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
}

// infer_async(): a running quiver._Future.
py::object InferAsync(PyClient& self, const std::string& model, const py::object& inputs,
                      const py::object& version, const py::object& outputs,
                      const py::object& timeout, const py::object& datatypes) {
  DropReleasedReferences();  // those of earlier calls, without waking a thread for them
  InferRequest request = BuildRequest(model, inputs, version, outputs, timeout, datatypes);
  // local://: a model with dynamic batching gets the request queued rather than run
  // here, so that infer_async returns at once and calls sent in a row are batched
  // (as the C++ client's are when it sends from its callbacks).
  request.queue_for_batching = true;
  auto call = std::make_shared<AsyncCall>();
  py::object future = NewFuture(call);
  // A lean future is waited for by result()/exception() only: that thread may run it.
  if (call->lean) request.waiter = std::shared_ptr<WaiterLink>(call, &call->link);
  call->future = Share(future);
  call->inputs = InputBuffers(request);
  // A call that completes before Infer returns (local://, or refused up front) is
  // completed here, by the caller, once it holds the GIL again: the hop through the
  // completion thread costs two thread wake-ups, more than a small local inference.
  std::optional<Result<InferResponse>> inline_result;
  Status error;
  try {
    GilRelease release;
    auto client = self.Acquire();
    if (client.ok()) {
      (*client)->Infer(std::move(request), [call](Result<InferResponse> r) {
        AsyncCall::OnResult(call, std::move(r));
      });
    } else {
      error = client.status();
    }
    std::lock_guard lock(call->mutex);
    call->caller_inside = false;
    inline_result = call->ClaimLocked();
  } catch (...) {
    call->Abandon();  // GIL held again; the future <-> call cycle must not stay
    throw;
  }
  if (!error.ok()) {
    call->Abandon();
    ThrowStatus(error);
  }
  if (inline_result) call->Finish(*inline_result, future);
  return future;
}

// The model argument: a str, or bytes or bytearray as pybind11's std::string conversion
// takes them.
std::string ModelArg(PyObject* model) {
  Py_ssize_t size = 0;
  if (PyUnicode_Check(model)) {
    const char* data = PyUnicode_AsUTF8AndSize(model, &size);
    if (data == nullptr) throw py::error_already_set();
    return std::string(data, static_cast<size_t>(size));
  }
  if (PyBytes_Check(model)) return std::string(PyBytes_AS_STRING(model), PyBytes_GET_SIZE(model));
  if (PyByteArray_Check(model)) {
    return std::string(PyByteArray_AS_STRING(model), PyByteArray_GET_SIZE(model));
  }
  throw py::type_error("model must be a str (or bytes)");
}

constexpr const char* kInferArguments[] = {"model", "inputs", "version", "outputs", "timeout",
                                           "datatypes"};

// infer and infer_async as METH_FASTCALL methods (py_fastcall.h says why).
template <py::object (*Method)(PyClient&, const std::string&, const py::object&,
                               const py::object&, const py::object&, const py::object&,
                               const py::object&)>
PyObject* InferMethod(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  PyObject* slots[std::size(kInferArguments)];
  const char* name = Method == &Infer ? "infer" : "infer_async";
  if (!BindArguments(name, kInferArguments, 2, args, nargs, kwnames, slots)) return nullptr;
  return Guarded([&] {
    PyClient& client = Self<PyClient>(self, "quiver.Client");
    return Method(client, ModelArg(slots[0]), py::reinterpret_borrow<py::object>(slots[1]),
                  ArgOrNone(slots[2]), ArgOrNone(slots[3]), ArgOrNone(slots[4]),
                  ArgOrNone(slots[5]));
  });
}

PyMethodDef kInferDef = {
    "infer", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&InferMethod<&Infer>)),
    METH_FASTCALL | METH_KEYWORDS,
    "infer($self, /, model, inputs, version=None, outputs=None, timeout=None, "
    "datatypes=None)\n--\n\n"
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
The GIL is released while the call waits; Ctrl-C interrupts the wait.)doc"};

PyMethodDef kInferAsyncDef = {
    "infer_async",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&InferMethod<&InferAsync>)),
    METH_FASTCALL | METH_KEYWORDS,
    "infer_async($self, /, model, inputs, version=None, outputs=None, timeout=None, "
    "datatypes=None)\n--\n\n"
    R"doc(As infer(), but returns a concurrent.futures.Future of the outputs at once.

The future's exception is the quiver.Error of the call. A thread waiting in its result()
or exception() is woken by the response itself and completes the future there (GIL
released while it waits). A response that comes while nobody waits is kept until
result()/exception() or done(), add_done_callback(), concurrent.futures.wait() or asyncio
first look at the future; after such a look, Quiver's completion thread completes it
when the response comes. asyncio: infer_aio (or `await asyncio.wrap_future(f)`).
local://, in a process that may use several CPUs: a call sent while the model is idle,
that only result()/exception() waits for, is held for the thread that waits, which runs
the model itself (no hand-off to the model's worker thread on another core and back). It
goes to the worker as usual when nobody comes to wait for it within 200 us (holding then
pauses for 100 ms), or when a done-callback, asyncio or a result() timeout waits for it.
Blocks only while max_in_flight calls are
outstanding (backpressure) or while the model's metadata is fetched for validation the
first time. Keep the input arrays unmodified until the future is done. Done-callbacks run
on the thread that completes the future (often the one completion thread): keep them
short, and never wait there with concurrent.futures.wait() for another quiver future.)doc"};

// _AsyncCall.wait(future, timeout), called by every quiver._Future.result().
PyObject* AsyncCallWait(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                        PyObject* kwnames) {
  static constexpr const char* kNames[] = {"future", "timeout"};
  PyObject* slots[2];
  if (!BindArguments("wait", kNames, 2, args, nargs, kwnames, slots)) return nullptr;
  return Guarded([&] {
    AsyncCall& call = *Self<PyAsyncCall>(self, "quiver._quiver._AsyncCall").call;
    return WaitAsync(call, py::handle(slots[0]), py::reinterpret_borrow<py::object>(slots[1]));
  });
}

PyMethodDef kAsyncCallWaitDef = {
    "wait", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&AsyncCallWait)),
    METH_FASTCALL | METH_KEYWORDS,
    "wait($self, /, future, timeout)\n--\n\n"
    "Waits for the call (GIL released) at most `timeout` s and completes `future` (this "
    "call's) if this thread takes the result; returns the time left (None for None)."};

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
  py::class_<PyAsyncCall> async_call(m, "_AsyncCall",
                                     "An infer_async call in flight (quiver._Future._call).");
  AddFastMethod(async_call, &kAsyncCallWaitDef);
  async_call.def(
      "complete_when_done",
      [](PyAsyncCall& self, const py::object& future) { self.call->CompleteWhenDone(future); },
      py::arg("future"),
      "`future` (this call's) has other waiters than result(): completes it now if its "
      "result arrived, and as soon as it arrives from now on.");
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

  AddFastMethod(cls, &kInferDef);
  AddFastMethod(cls, &kInferAsyncDef);

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
