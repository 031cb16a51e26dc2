#!/usr/bin/env python3
"""Quiver's own HTTP load generator for the KServe v2 infer endpoint (JSON or binary tensors).

A benchmark program, not a test. It measures the *server*: each worker process keeps one
keep-alive connection and sends the same request body again and again; the body (JSON text,
or the binary-extension header + raw bytes) is encoded once before the clock starts, and a
response is only framed (status line, Content-Length), not decoded. The first response of
every worker is decoded and compared with the input, so a wrong answer fails the run.

Workers are processes (no GIL between them); `--concurrency` = processes = requests in
flight. All workers warm up until a common start time, then each measures its own rate
(completed requests / elapsed time) until the common end time has passed and at least
--min-requests have completed; the throughput is the sum of the workers' rates.
Prints one JSON object on stdout:
  {"tool": "http_load.py", "format": ..., "infer_per_s": ..., "p50_us": ..., "p99_us": ...}

Usage: http_load.py --url 127.0.0.1:8000 --model identity_fp32 --elements 4 --format json
"""

import argparse
import json
import multiprocessing as mp
import socket
import sys
import time

import numpy as np


def build_request(args, values: np.ndarray) -> tuple[bytes, bytes]:
    """Returns (full HTTP request bytes, expected payload for checking)."""
    path = f"/v2/models/{args.model}/infer"
    if args.format == "json":
        body = json.dumps({
            "inputs": [{"name": args.input, "datatype": "FP32", "shape": [len(values)],
                        "data": values.tolist()}],
            "outputs": [{"name": args.output, "parameters": {"binary_data": False}}],
        }, separators=(",", ":")).encode()
        extra = "Content-Type: application/json\r\n"
    else:
        raw = values.astype("<f4").tobytes()
        header = json.dumps({
            "inputs": [{"name": args.input, "datatype": "FP32", "shape": [len(values)],
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": args.output, "parameters": {"binary_data": True}}],
        }, separators=(",", ":")).encode()
        body = header + raw
        extra = ("Content-Type: application/octet-stream\r\n"
                 f"Inference-Header-Content-Length: {len(header)}\r\n")
    head = (f"POST {path} HTTP/1.1\r\nHost: {args.url}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


class Connection:
    """One keep-alive HTTP/1.1 connection with a minimal response framer."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def roundtrip(self, request: bytes) -> tuple[dict, memoryview]:
        self.sock.sendall(request)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" not in headers:
            raise RuntimeError(f"response without Content-Length: {lines}")
        length = int(headers["content-length"])
        start = end + 4
        need = start + length
        if len(self.buf) < need:
            # Large bodies: receive straight into one preallocated buffer.
            body = bytearray(length)
            have = len(self.buf) - start
            body[:have] = self.buf[start:]
            view = memoryview(body)
            while have < length:
                n = self.sock.recv_into(view[have:], length - have)
                if n == 0:
                    raise ConnectionError("server closed the connection")
                have += n
            self.buf = bytearray()
            payload = view
        else:
            payload = memoryview(bytes(self.buf[start:need]))
            del self.buf[:need]
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {bytes(payload[:500])!r}")
        return headers, payload


def check_response(fmt: str, headers: dict, payload: memoryview, values: np.ndarray):
    if fmt == "json":
        out = json.loads(bytes(payload))["outputs"][0]
        got = np.asarray(out["data"], dtype=np.float32)
    else:
        hl = int(headers["inference-header-content-length"])
        meta = json.loads(bytes(payload[:hl]))["outputs"][0]
        size = meta["parameters"]["binary_data_size"]
        got = np.frombuffer(payload[hl:hl + size], dtype="<f4")
    if got.shape != values.shape or not np.array_equal(got, values):
        raise RuntimeError("the server did not return the input unchanged")


def worker(args, request: bytes, values: np.ndarray, t_start: float, t_end: float, queue):
    try:
        host, port = args.url.rsplit(":", 1)
        conn = Connection(host, int(port))
        headers, payload = conn.roundtrip(request)
        check_response(args.format, headers, payload, values)
        clock = time.perf_counter
        while clock() < t_start:  # warm-up
            conn.roundtrip(request)
        # Measure until the window is over and at least --min-requests have completed (slow
        # requests, e.g. 16 MiB as JSON, would otherwise leave an empty window).
        latencies = []
        begin = t1 = clock()
        while t1 < t_end or len(latencies) < args.min_requests:
            t0 = clock()
            conn.roundtrip(request)
            t1 = clock()
            latencies.append(t1 - t0)
        queue.put(("ok", latencies, len(latencies) / (t1 - begin)))
    except Exception as e:  # reported by the parent
        queue.put(("error", f"{type(e).__name__}: {e}", 0.0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="host:port of the HTTP endpoint")
    p.add_argument("--model", default="identity_fp32")
    p.add_argument("--input", default="INPUT0")
    p.add_argument("--output", default="OUTPUT0")
    p.add_argument("--elements", type=int, default=1, help="FP32 elements per request")
    p.add_argument("--format", choices=["json", "binary"], default="json")
    p.add_argument("--concurrency", type=int, default=1, help="worker processes")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before the window")
    p.add_argument("--seconds", type=float, default=2.0, help="measurement window")
    p.add_argument("--min-requests", type=int, default=3,
                   help="per worker: extend the window until this many have completed")
    args = p.parse_args()

    values = np.random.default_rng(7).standard_normal(args.elements).astype(np.float32)
    request = build_request(args, values)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    t_start = time.perf_counter() + args.warmup
    t_end = t_start + args.seconds
    procs = [ctx.Process(target=worker, args=(args, request, values, t_start, t_end, queue))
             for _ in range(args.concurrency)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    errors = [r[1] for r in results if r[0] != "ok"]
    if errors:
        print(f"http_load.py: {errors[0]}", file=sys.stderr)
        return 1
    lat = np.sort(np.concatenate([np.asarray(r[1]) for r in results]))
    print(json.dumps({
        "tool": "http_load.py",
        "format": args.format,
        "elements": args.elements,
        "concurrency": args.concurrency,
        "requests": int(len(lat)),
        "request_bytes": len(request),
        "infer_per_s": sum(r[2] for r in results),
        "p50_us": float(np.percentile(lat, 50) * 1e6),
        "p99_us": float(np.percentile(lat, 99) * 1e6),
        "avg_us": float(lat.mean() * 1e6),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
