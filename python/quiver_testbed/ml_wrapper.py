"""Quiver inference in coffea.ml_tools' style: `quiver_wrapper`.

It follows coffea's `triton_wrapper` conventions, so an analysis swaps the base class and
keeps its code:

    from quiver_testbed.ml_wrapper import quiver_wrapper

    class JetTagger(quiver_wrapper):
        def prepare_awkward(self, jets):
            feats = ...                         # awkward (eager) or dask-awkward (lazy)
            return [], {"output_list": ["score"], "input_dict": {"jet": feats}}

        def postprocess_awkward(self, ret, jets):
            return ret["score"][..., 0]

    tagger = JetTagger("emj_dnn", ["grpc://a:8001", "http://b:8000"],
                       fallback="local:///models")
    scores = tagger(jets)      # ak.Array -> eager; dask_awkward.Array -> a lazy dask collection

`numpy_call(output_list, input_dict)` has triton_wrapper's signature and returns
{output: numpy array}. Underneath it is a `quiver.Client`:

- `urls`: one URL or a list tried in order (failover): grpc://host[:port], http://host[:port]
  or local:///model/repository; `fallback` (typically local://...) when every server is down.
- Shared memory is used automatically for large inputs when the server is on this host.
- The rows are split into requests of the model's `max_batch_size` (read from the model
  config: HTTP `/v2/models/<m>/config`, gRPC `ModelConfig` through tritonclient when it is
  installed, or the local repository's config.pbtxt; `max_batch_size=` overrides) and sent
  concurrently with `Client.infer_async`, at most `max_in_flight` at once.
- An input may be given as a list of k arrays of one shape S (feature columns): it is sent
  as the array S + (k,), stacked in numpy (`accepts_columns`; awkward's concatenate along a
  new axis costs ~50x more). The mixins of quiver_testbed.emj_inputs use this.
- Missing values (awkward None, e.g. from `ak.pad_none`; numpy masked arrays after
  coffea's `ak.to_numpy`) are sent as zeros, so padding needs no `fill_none` per column.
- Inputs may carry extra leading dimensions: a `jet` input of the model's shape [-1, 6]
  given as [events, 4, 6] is sent as [events*4, 6] and the outputs come back as
  [events, 4, ...] (keeps per-event structure without flatten/unflatten under Dask).
- The client is created lazily in each process that calls the wrapper and is never
  pickled (coffea's `nonserializable_attribute`): a wrapper goes to Dask workers as its
  configuration.
"""

from __future__ import annotations

import json
import re
import urllib.request
import warnings
from collections import deque

import numpy as np
from coffea.ml_tools.helper import nonserializable_attribute, numpy_call_wrapper

__all__ = ["quiver_wrapper", "model_max_batch_size"]

_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_DEFAULT_PORTS = {"grpc": 8001, "http": 8000}


def _host_port(url: str) -> tuple[str, str]:
    scheme, rest = url.split("://", 1)
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [v6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
        host = f"[{host}]"
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host, port = rest, ""
    return scheme, f"{host}:{port or _DEFAULT_PORTS[scheme]}"


def model_max_batch_size(url: str, model: str, version=None, timeout: float = 3.0) -> int:
    """The model's `max_batch_size` from its config at `url` (0: the model does not batch).

    Raises OSError/ValueError/ImportError when the config cannot be read there.
    """
    version = "" if version is None else str(version)
    if url.startswith("local://"):
        path = url[len("local://"):]
        import pathlib
        text = (pathlib.Path(path) / model / "config.pbtxt").read_text()
        text = re.sub(r"#[^\n]*", "", text)
        m = re.search(r"\bmax_batch_size\s*:\s*(\d+)", text)
        return int(m.group(1)) if m else 0
    scheme, hostport = _host_port(url)
    if scheme == "http":
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/config"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as the client
        with opener.open(f"http://{hostport}{path}", timeout=timeout) as r:
            return int(json.load(r).get("max_batch_size", 0))
    if scheme == "grpc":
        import tritonclient.grpc as grpcclient  # optional: only to read the config over gRPC

        client = grpcclient.InferenceServerClient(url=hostport)
        try:
            cfg = client.get_model_config(model, version, as_json=True, client_timeout=timeout)
        finally:
            client.close()
        return int(cfg["config"].get("max_batch_size", 0))
    raise ValueError(f"unsupported URL {url!r}")


def _stack_columns(columns, dtype) -> np.ndarray:
    """[*shape, k] of k arrays of one shape, converted to dtype in the same pass."""
    first = np.asarray(columns[0])
    out = np.empty(first.shape + (len(columns),), dtype or first.dtype)
    for i, c in enumerate(columns):
        out[..., i] = c.filled(0) if isinstance(c, np.ma.MaskedArray) else c
    return out


def _shape(value) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(np.shape(value[0])) + (len(value),)
    return tuple(np.shape(value))


class quiver_wrapper(nonserializable_attribute, numpy_call_wrapper):
    """coffea.ml_tools-style wrapper over a `quiver.Client` (see the module docstring).

    Parameters
    ----------
    model : str
        Model name.
    urls : str or list[str]
        Server URL(s) in failover order (grpc://, http://, local://).
    fallback : str, optional
        URL used when every server is down (e.g. local:///path/to/models).
    version : int or str, optional
        Model version (None: the server's default).
    timeout : float, optional
        Total time of each request in seconds (quiver's semantics: retries and failover
        included).
    max_batch_size : int, optional
        Rows per request; None reads the model config (its max_batch_size).
    max_in_flight : int
        Requests outstanding at once per numpy_call.
    client_options : dict, optional
        Further keyword arguments of quiver.Client (retries, connections, shared_memory, ...).
    """

    accepts_columns = True  # an input may be a list of feature columns (stacked here)

    def __init__(self, model: str, urls, *, fallback=None, version=None, timeout=60.0,
                 max_batch_size=None, max_in_flight: int = 16, client_options=None):
        nonserializable_attribute.__init__(self, ["client", "model_info"])
        numpy_call_wrapper.__init__(self)
        self.model = model
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.fallback = fallback
        self.version = version
        self.timeout = timeout
        self._max_batch_size = max_batch_size
        self.max_in_flight = max(1, int(max_in_flight))
        self.client_options = dict(client_options or {})

    # -- lazily created, per process ------------------------------------------------------
    def _create_client(self):
        import quiver

        return quiver.Client(self.urls, fallback=self.fallback, timeout=self.timeout,
                             **self.client_options)

    def _create_model_info(self) -> dict:
        """Inputs/outputs from the model's metadata and the rows per request."""
        meta = self.client.model_metadata(self.model, self.version)
        info = {
            "inputs": {t["name"]: {"shape": tuple(int(s) for s in t["shape"]),
                                   "datatype": t["datatype"]} for t in meta["inputs"]},
            "outputs": {t["name"]: {"shape": tuple(int(s) for s in t["shape"]),
                                    "datatype": t["datatype"]} for t in meta["outputs"]},
        }
        mbs = self._max_batch_size
        if mbs is None:
            errors = []
            for url in self.urls + ([self.fallback] if self.fallback else []):
                try:
                    mbs = model_max_batch_size(url, self.model, self.version)
                    break
                except Exception as err:  # next endpoint (failover), as the client does
                    errors.append(f"{url}: {err}")
            if mbs is None:
                warnings.warn(f"quiver_wrapper: no model config for {self.model!r} "
                              f"({'; '.join(errors)}); the client splits by the config itself")
                mbs = -1  # numpy_call uses Client.infer_batched(max_batch_size=0)
        info["max_batch_size"] = int(mbs)
        return info

    @property
    def batch_size(self) -> int:
        """Rows per request (0: the model does not batch: one request; -1: the client's)."""
        return self.model_info["max_batch_size"]

    # -- numpy level ----------------------------------------------------------------------
    def validate_numpy_input(self, output_list, input_dict) -> None:
        inputs, outputs = self.model_info["inputs"], self.model_info["outputs"]
        for name in input_dict:
            if name not in inputs:
                raise ValueError(f"input {name!r} is not an input of model {self.model!r} "
                                 f"(inputs: {list(inputs)})")
        for name, spec in inputs.items():
            if name not in input_dict:
                raise ValueError(f"input {name!r} of model {self.model!r} not given")
            shape, mshape = _shape(input_dict[name]), spec["shape"]
            # the trailing dims must match the model's (after the batch dim when it batches)
            trailing = mshape[1:] if self.batch_size != 0 else mshape
            if len(shape) < len(trailing) + (1 if self.batch_size != 0 else 0):
                raise ValueError(f"input {name!r}: shape {shape} has too few dimensions "
                                 f"for the model's {mshape}")
            got = shape[len(shape) - len(trailing):]
            if any(m > 0 and g != m for g, m in zip(got, trailing)):
                raise ValueError(f"input {name!r}: shape {shape} does not end in the "
                                 f"model's {trailing} (-1: any)")
        for name in output_list:
            if name not in outputs:
                raise ValueError(f"{name!r} is not an output of model {self.model!r} "
                                 f"(outputs: {list(outputs)})")

    def numpy_call(self, output_list, input_dict) -> dict:
        """Runs the model on {input: array} and returns {output: array} for output_list.

        Leading dimensions beyond the model's batch dimension are folded into the batch and
        restored on the outputs. Rows go in requests of `batch_size`, sent concurrently.
        """
        info = self.model_info
        output_list = list(output_list)
        arrays = {}
        for name, arr in input_dict.items():
            dtype = _DTYPES.get(info["inputs"][name]["datatype"])
            if isinstance(arr, (list, tuple)):
                arr = _stack_columns(arr, dtype)
            else:
                if isinstance(arr, np.ma.MaskedArray):  # awkward None (padding): zeros
                    arr = arr.filled(0)
                arr = np.asarray(arr)
                if dtype is not None and arr.dtype != dtype:
                    arr = arr.astype(dtype)
            arrays[name] = np.ascontiguousarray(arr)
        if self.batch_size == 0:  # a model without a batch dimension: one request as given
            out = self.client.infer(self.model, arrays, version=self.version,
                                    outputs=output_list)
            return {o: np.array(out[o]) for o in output_list}

        lead = None
        flat = {}
        for name, arr in arrays.items():
            spec = info["inputs"][name]
            n_trailing = len(spec["shape"]) - 1
            this_lead = arr.shape[:arr.ndim - n_trailing]
            if lead is None:
                lead = this_lead
            elif this_lead != lead:
                raise ValueError(f"input {name!r}: leading dimensions {this_lead} differ from "
                                 f"the other inputs' {lead}")
            flat[name] = np.ascontiguousarray(arr.reshape((-1,) + arr.shape[len(this_lead):]))
        rows = int(np.prod(lead)) if lead else 0

        if rows == 0:
            return {o: np.zeros(tuple(lead) + tuple(max(s, 0) for s in
                                                  info["outputs"][o]["shape"][1:]),
                                _DTYPES.get(info["outputs"][o]["datatype"], np.float32))
                    for o in output_list}

        mbs = self.batch_size
        if mbs < 0:
            out = self.client.infer_batched(self.model, flat, version=self.version,
                                            outputs=output_list, max_batch_size=0,
                                            max_in_flight=self.max_in_flight)
            out = {o: np.asarray(out[o]) for o in output_list}
        else:
            step = mbs
            parts = {o: [] for o in output_list}
            pending = deque()

            def collect(future):
                result = future.result()
                for o in output_list:
                    parts[o].append(result[o])

            for start in range(0, rows, step):
                chunk = {k: v[start:start + step] for k, v in flat.items()}
                if len(pending) >= self.max_in_flight:
                    collect(pending.popleft())
                pending.append(self.client.infer_async(self.model, chunk, version=self.version,
                                                       outputs=output_list))
            while pending:
                collect(pending.popleft())
            out = {o: (np.concatenate(p) if len(p) > 1 else np.array(p[0]))
                   for o, p in parts.items()}
        return {o: a.reshape(tuple(lead) + a.shape[1:]) for o, a in out.items()}

    # -- awkward level: subclasses implement prepare_awkward (and postprocess_awkward) -----
    def prepare_awkward(self, *args, **kwargs):
        raise NotImplementedError(
            "subclass quiver_wrapper and implement prepare_awkward(...) returning "
            "([], {'output_list': [...], 'input_dict': {name: array}})")
