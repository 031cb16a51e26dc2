"""Quiver: inference as a service for columnar analysis, from Python.

    import numpy as np, quiver

    client = quiver.Client(["grpc://server-a:8001", "grpc://server-b:8001"],
                           fallback="local:///path/to/models", timeout=10.0)
    out = client.infer("identity_fp32", {"INPUT0": np.arange(4, dtype=np.float32)})
    out["OUTPUT0"]                     # numpy array (read-only, zero-copy)

    future = client.infer_async("identity_fp32", {"INPUT0": x})   # concurrent.futures.Future
    scores = client.infer_jagged("tagger", jet_offsets, {"pt": pt, "eta": eta},
                                 per="event", event_offsets=event_offsets, reduce="max")

URLs: grpc://host[:port], http://host[:port] (KServe v2: quiver serve, Triton, the Quiver
gateway) or local:///model/repository (in this process). Client(..., token="...") sends a
bearer token to every remote endpoint (the gateway's tenants); without token=, the
environment variable QUIVER_TOKEN is used if set. A Client is picklable by its
configuration and reconnects lazily, so it can be passed to Dask tasks
(python/examples/dask_inference.py). Errors are quiver.Error subclasses named after the
status codes: InvalidArgument, NotFound, AlreadyExists, Unavailable, ResourceExhausted,
DeadlineExceeded, Cancelled, Unsupported, Internal, Unknown, Unauthenticated (a missing or
wrong token), TooManyRequests (over a tenant's limits).

The compiled part, quiver._quiver, is built by CMake into <build>/python/quiver/; this
package finds it there (the build tree next to this checkout, or $QUIVER_BUILD_DIR).
"""

import asyncio as _asyncio
import concurrent.futures as _futures
import os as _os
import threading as _threading
import weakref as _weakref
import pathlib as _pathlib


def _extend_path():
    """Adds the directory holding _quiver*.so to this package's search path."""
    here = _pathlib.Path(__file__).resolve().parent
    if any(here.glob("_quiver*.so")):
        return  # installed next to this file
    candidates = []
    if _os.environ.get("QUIVER_BUILD_DIR"):
        candidates.append(_pathlib.Path(_os.environ["QUIVER_BUILD_DIR"]) / "python" / "quiver")
    candidates.append(here.parents[1] / "build" / "python" / "quiver")
    for directory in candidates:
        if any(directory.glob("_quiver*.so")):
            __path__.append(str(directory))
            return
    raise ImportError(
        "quiver: the compiled module _quiver was not found in "
        + ", ".join(str(c) for c in candidates)
        + " — build it (scripts/setup, or ninja -C build _quiver) or set QUIVER_BUILD_DIR")


_extend_path()

from ._quiver import (  # noqa: E402
    AlreadyExists,
    Cancelled,
    Client,
    DeadlineExceeded,
    Error,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unknown,
    Unsupported,
    __version__,
    _set_future_type,
    pad_jagged,
    reduce_lists,
    unpad,
)

_RUNNING = "RUNNING"  # concurrent.futures' state names (stable since Python 3.2)
_FINISHED = "FINISHED"
assert _futures._base.RUNNING == _RUNNING and _futures._base.FINISHED == _FINISHED

# The attributes concurrent.futures.Future.__init__ makes. Where they are these, _Future
# makes them itself and its Condition only on first use (see _Future); otherwise (another
# Python's Future) it calls Future.__init__.
_LEAN_FUTURE = set(vars(_futures.Future())) == {
    "_condition", "_state", "_result", "_exception", "_waiters", "_done_callbacks"}


class _Future(_futures.Future):
    """What infer_async returns: a concurrent.futures.Future whose result() and exception()
    wait for the call itself (GIL released) and complete the future in the waiting thread,
    without the hop through Quiver's completion thread. A result that arrives while nobody
    waits stays in the call until result()/exception(), or the first use of the Condition
    (done(), add_done_callback(), wait(), as_completed(), asyncio), completes the future;
    once the Condition exists, Quiver's completion thread completes it on arrival, so
    done-callbacks, asyncio and concurrent.futures.wait() see it completed as before.

    Its threading.Condition is made on first use: a future that nothing but result() or
    exception() ever touches (the common case) never needs one. Every waiter other than
    result()/exception() (done-callbacks, wait(), as_completed(), asyncio) goes through the
    Condition, so Quiver completes a future without it (setting the state under the GIL)
    only while it does not exist, and through set_result()/set_exception() otherwise."""

    def __init__(self, call):
        if _LEAN_FUTURE:
            self._state = _RUNNING  # set_running_or_notify_cancel() before anyone sees it
            self._result = None
            self._exception = None
            self._waiters = []
            self._done_callbacks = []
        else:
            super().__init__()
            self._state = _RUNNING
            call.complete_when_done(self)  # the Condition exists: complete it on arrival
        self._call = call  # quiver._quiver._AsyncCall

    @property
    def _condition(self):
        cond = self.__dict__.get("_cond")
        if cond is None:  # setdefault: two threads that race here get the same one
            cond = self.__dict__.setdefault("_cond", _threading.Condition())
            # From here on something other than result() may wait (done(), callbacks,
            # wait(), asyncio): the call completes the future when its result arrives, and
            # now if it has arrived already.
            self._call.complete_when_done(self)
        return cond

    @_condition.setter
    def _condition(self, cond):
        self.__dict__["_cond"] = cond

    def result(self, timeout=None):
        call = self._call
        if call is not None and self._state == _RUNNING:
            timeout = call.wait(self, timeout)
        if self._state == _FINISHED:
            if self._exception is None:
                return self._result
            try:
                raise self._exception
            finally:
                self = None  # as Future.result: no cycle through the traceback
        return super().result(timeout)

    def exception(self, timeout=None):
        call = self._call
        if call is not None and self._state == _RUNNING:
            timeout = call.wait(self, timeout)
        if self._state == _FINISHED:
            return self._exception
        return super().exception(timeout)


_set_future_type(_Future)


class _LoopRelay:
    """Hands completed infer_async futures to one event loop: the first completion of a
    batch schedules one loop callback (call_soon_threadsafe: a write to the loop's
    self-pipe), which completes every waiter gathered meanwhile; calls that end together
    cost one loop wake-up, not one each. Runs on Quiver's completion thread (GIL held)."""

    def __init__(self, loop):
        self.loop = _weakref.ref(loop)  # not a strong one: the loop is this relay's key
        self.pending = []  # (asyncio future, concurrent future); the GIL guards it
        self.scheduled = False

    def add(self, waiter, future):
        self.pending.append((waiter, future))
        if not self.scheduled:
            loop = self.loop()
            if loop is None or loop.is_closed():
                self.pending.clear()  # nobody can await these any more
                return
            self.scheduled = True
            loop.call_soon_threadsafe(self.flush)

    def flush(self):
        self.scheduled = False
        pending, self.pending = self.pending, []
        for waiter, future in pending:
            _relay_result(waiter, future)


def _relay_result(waiter, future):
    if waiter.cancelled():
        return  # the await was cancelled; the call ended anyway, its result is dropped
    error = future.exception(timeout=0)
    if error is None:
        waiter.set_result(future.result(timeout=0))
    else:
        waiter.set_exception(error)


_relays = _weakref.WeakKeyDictionary()  # event loop -> _LoopRelay


async def _infer_aio(self, model, inputs, **kwargs):
    """asyncio variant of infer(): `outputs = await client.infer_aio(model, inputs)`.
    Cancelling the await drops the result; the call itself runs to its end."""
    future = self.infer_async(model, inputs, **kwargs)
    if future.done():  # ran inline (local://) or was refused: no trip through the loop
        return future.result(timeout=0)
    loop = _asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = _LoopRelay(loop)
    waiter = loop.create_future()
    future.add_done_callback(lambda f: relay.add(waiter, f))
    return await waiter


Client.infer_aio = _infer_aio

__all__ = [
    "AlreadyExists", "Cancelled", "Client", "DeadlineExceeded", "Error", "Internal",
    "InvalidArgument", "NotFound", "ResourceExhausted", "TooManyRequests", "Unauthenticated",
    "Unavailable", "Unknown", "Unsupported", "__version__", "pad_jagged", "reduce_lists",
    "unpad",
]
