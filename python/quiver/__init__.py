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
gateway) or local:///model/repository (in this process). A Client is picklable by its
configuration and reconnects lazily, so it can be passed to Dask tasks
(python/examples/dask_inference.py). Errors are quiver.Error subclasses named after the
status codes: InvalidArgument, NotFound, AlreadyExists, Unavailable, ResourceExhausted,
DeadlineExceeded, Cancelled, Unsupported, Internal, Unknown.

The compiled part, quiver._quiver, is built by CMake into <build>/python/quiver/; this
package finds it there (the build tree next to this checkout, or $QUIVER_BUILD_DIR).
"""

import asyncio as _asyncio
import os as _os
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
    Unavailable,
    Unknown,
    Unsupported,
    __version__,
    pad_jagged,
    reduce_lists,
    unpad,
)


async def _infer_aio(self, model, inputs, **kwargs):
    """asyncio variant of infer(): `outputs = await client.infer_aio(model, inputs)`."""
    return await _asyncio.wrap_future(self.infer_async(model, inputs, **kwargs))


Client.infer_aio = _infer_aio

__all__ = [
    "AlreadyExists", "Cancelled", "Client", "DeadlineExceeded", "Error", "Internal",
    "InvalidArgument", "NotFound", "ResourceExhausted", "Unavailable", "Unknown",
    "Unsupported", "__version__", "pad_jagged", "reduce_lists", "unpad",
]
