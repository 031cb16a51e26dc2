"""End-to-end smoke test of `quiver perf` against the shared `quiver serve` (port 0).

Short windows (-p 100, at most 3 per level) keep it quick; a level that does not stabilise
in that time is still reported (exit code 3), so both 0 and 3 count as success. Nothing
here asserts a timing: only the output's form and that requests went through.
"""

import csv
import json
import subprocess

import pytest

from conftest import QUIVER, ROOT

CSV_COLUMNS = [
    "Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv",
    "Server Queue", "Server Compute Input", "Server Compute Infer", "Server Compute Output",
    "Client Recv", "p50 latency", "p90 latency", "p95 latency", "p99 latency",
]
QUICK = ["--measurement-interval", "100", "--max-trials", "3"]
OK_CODES = (0, 3)  # 3: measured, but some level did not stabilise within 3 windows


def perf(*args, timeout=120):
    return subprocess.run([str(QUIVER), "perf", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_concurrency_sweep_writes_perf_analyzers_csv(server, tmp_path, protocol):
    url = server.grpc_url if protocol == "grpc" else server.http_url
    report = tmp_path / "results.csv"
    r = perf("-m", "identity_fp32", "-u", url, "-i", protocol, "--shape", "INPUT0:4",
             "--concurrency-range", "1:2", "-f", report, *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    with open(report, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert sorted(int(row["Concurrency"]) for row in rows) == [1, 2]
    for row in rows:
        assert float(row["Inferences/Second"]) > 0
        assert int(row["p99 latency"]) >= int(row["p50 latency"])
    # The table: a title line, a header line, one line per level.
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4, r.stdout
    assert "infer/s" in lines[1]


def test_batched_model_json_output(server):
    r = perf("-m", "simple_mlp", "-u", server.grpc_url, "-i", "grpc", "-b", "8", "--json",
             *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    doc = json.loads(r.stdout)  # stdout holds only the document; the table went to stderr
    assert doc["model"] == "simple_mlp"
    assert doc["batch_size"] == 8
    assert doc["server_statistics"] is True
    [row] = doc["results"]
    assert row["concurrency"] == 1
    assert row["infer_per_sec"] > 0
    assert row["request_count"] > 0
    # The server saw at least the requests the client counted (8 inferences each).
    assert row["server"]["inference_count"] >= 8 * row["request_count"] * 0.5


def test_request_rate_mode_and_input_file(server, tmp_path):
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"data": [{"INPUT0": [1, 2, 3]}, {"INPUT0": [4, 5, 6]}]}))
    report = tmp_path / "rate.csv"
    r = perf("-m", "identity_fp32", "-u", server.http_url, "--shape", "INPUT0:3",
             "--input-data", data, "--request-rate-range", "200", "--request-distribution",
             "poisson", "-f", report, *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    with open(report, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[0] == "Request Rate"
        [row] = list(reader)
    assert float(row["Request Rate"]) == 200
    assert float(row["Inferences/Second"]) > 0


def test_system_shared_memory(server):
    r = perf("-m", "identity_fp32", "-u", server.grpc_url, "-i", "grpc", "--shape",
             "INPUT0:1024", "--shared-memory", "system", "--json", *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["shared_memory_used"] is True
    assert doc["results"][0]["infer_per_sec"] > 0


def test_errors_are_reported_not_retried(server):
    r = perf("-m", "no_such_model", "-u", server.grpc_url, "-i", "grpc", *QUICK)
    assert r.returncode == 1
    assert "no_such_model" in r.stderr
    # A variable-shape input without --shape is a flag error, named.
    r = perf("-m", "identity_fp32", "-u", server.http_url, *QUICK)
    assert r.returncode == 2
    assert "--shape INPUT0" in r.stderr
    # A request the server rejects (batch above max_batch_size) is refused up front.
    r = perf("-m", "simple_mlp", "-u", server.http_url, "-b", "1000", *QUICK)
    assert r.returncode == 2
    assert "max_batch_size" in r.stderr


def test_url_scheme_chooses_the_protocol(server):
    # No -i: the grpc:// scheme alone must make it speak gRPC to the gRPC port.
    url = f"grpc://{server.grpc_url}"
    r = perf("-m", "identity_fp32", "-u", url, "--shape", "INPUT0:4", "--json", *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["protocol"] == "grpc"
    assert doc["results"][0]["infer_per_sec"] > 0
    # A scheme that contradicts an explicit -i is a flag error naming both, not a switch.
    r = perf("-m", "identity_fp32", "-u", url, "-i", "http", "--shape", "INPUT0:4", *QUICK)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"-u {url}" in r.stderr and "-i http" in r.stderr, r.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_through_the_client_library(server, protocol):
    url = server.grpc_url if protocol == "grpc" else server.http_url
    r = perf("-m", "simple_mlp", "-u", url, "-i", protocol, "-b", "4", "--client",
             "--concurrency-range", "2", "--json", *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["client_library"] is True
    assert doc["protocol"] == protocol
    assert doc["endpoint"].startswith(protocol + "://")
    [row] = doc["results"]
    assert row["infer_per_sec"] > 0
    assert row["server"]["inference_count"] >= 4 * row["request_count"] * 0.5


def test_local_repository_in_process():
    r = perf("-m", "simple_mlp", "-u", f"local://{ROOT / 'models'}", "-b", "4",
             "--concurrency-range", "1:2", "--json", *QUICK)
    assert r.returncode in OK_CODES, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["protocol"] == "local"
    assert doc["client_library"] is True
    assert doc["server_statistics"] is True  # the in-process Engine's statistics
    assert [row["concurrency"] for row in doc["results"]] == [1, 2]
    for row in doc["results"]:
        assert row["request_count"] > 0
        assert row["server"]["inference_count"] >= 4 * row["request_count"] * 0.5
    # In-process has no shared memory; an unknown repository is named.
    r = perf("-m", "simple_mlp", "-u", f"local://{ROOT / 'models'}", "--shared-memory",
             "system", *QUICK)
    assert r.returncode == 2 and "local://" in r.stderr
    r = perf("-m", "simple_mlp", "-u", "local:///no/such/repository", *QUICK)
    assert r.returncode == 1 and "/no/such/repository" in r.stderr
