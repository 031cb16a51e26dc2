"""The Kubernetes manifests (deploy/k8s): rendered with `kubectl kustomize`, checked offline.

Built-in kinds are validated strictly (unknown fields are errors) against the Kubernetes
JSON schemas that the pinned `kubernetes-validate` package ships; KEDA's ScaledObject against
the subset in tests/python/schemas/. Then what matters for running them: GPU requests,
probes on the health endpoints, selectors that match, and autoscaling metrics that the
gateway exports (docs/gateway-contract.md) with the numbers of the gateway's facility.yaml.
No cluster is needed; only kubectl (skipped without it).
"""

import functools
import json
import math
import pathlib
import re
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBE_VERSION = "1.32.0"  # kubectl's own minor version on Debian 12 here
SCALEDOBJECT_SCHEMA = json.loads(
    (pathlib.Path(__file__).parent / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
OVERLAYS = ["base", "keda", "hpa"]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


@functools.cache
def _render(overlay: str) -> str:
    out = subprocess.run(["kubectl", "kustomize", str(K8S / overlay)], check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def render(overlay: str) -> list:
    """The overlay's objects (a fresh copy each call: tests may mutate them)."""
    return [d for d in yaml.safe_load_all(_render(overlay)) if d]


def of_kind(docs: list, kind: str) -> list:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list, kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def contract_metrics() -> set:
    """The gateway's Prometheus names, from the contract's table."""
    text = (ROOT / "docs" / "gateway-contract.md").read_text()
    names = set(re.findall(r"^\| `(quiver_gateway_\w+)` \|", text, re.M))
    assert "quiver_gateway_waiting" in names and "quiver_gateway_in_flight" in names
    return names


def metric_names(promql: str) -> set:
    return set(re.findall(r"\bquiver_gateway_\w+", promql))


def label_value(promql: str, label: str) -> str:
    values = set(re.findall(label + r'="([^"]*)"', promql))
    assert len(values) == 1, f"{label} in {promql!r}: {values}"
    return values.pop()


def validate(doc: dict) -> None:
    """Raises if `doc` does not match its kind's schema (strict: no unknown fields)."""
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALEDOBJECT_SCHEMA)
        behavior = doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if "behavior" in behavior:  # KEDA passes it to an HPA: check it as one
            kubernetes_validate.validate({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "behavior-check"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                         "maxReplicas": 1, "behavior": behavior["behavior"]}},
                KUBE_VERSION, strict=True)
    else:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def container(deployment: dict, name: str) -> dict:
    found = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"container {name} in {deployment['metadata']['name']}"
    return found[0]


def port_number(c: dict, port) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
    assert numbers, f"no port named {port} in container {c['name']}"
    return numbers[0]


def servers(docs: list) -> list:
    return [d for d in of_kind(docs, "Deployment")
            if d["metadata"]["labels"].get("app.kubernetes.io/name") == "quiver-server"]


def facility(docs: list) -> dict:
    """The gateway's facility.yaml, from the ConfigMap its Deployment mounts."""
    gateway = named(docs, "Deployment", "quiver-gateway")
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    cm_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    return yaml.safe_load(named(docs, "ConfigMap", cm_name)["data"]["facility.yaml"])


def flag(command: list, name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_matches_its_schema(overlay):
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "ConfigMap"} <= kinds
    assert ("ScaledObject" in kinds) == (overlay == "keda")
    assert ("HorizontalPodAutoscaler" in kinds) == (overlay == "hpa")
    for doc in docs:
        validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "quiver", doc["metadata"]["name"]


def test_schema_check_rejects_typos():
    deployment = servers(render("base"))[0]
    c = container(deployment, "server")
    c["readinessProbe"]["httpGet"]["pth"] = c["readinessProbe"]["httpGet"].pop("path")
    with pytest.raises(jsonschema.ValidationError):
        validate(deployment)
    scaled = of_kind(render("keda"), "ScaledObject")[0]
    scaled["spec"]["minReplicas"] = 0  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)
    scaled = of_kind(render("keda"), "ScaledObject")[0]
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"][
        "stabilisationWindowSeconds"] = 15
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def test_servers_request_a_gpu_and_probe_the_health_endpoints():
    docs = render("base")
    assert servers(docs), "no quiver-server Deployment"
    for deployment in servers(docs):
        c = container(deployment, "server")
        for section in ("requests", "limits"):
            assert str(c["resources"][section]["nvidia.com/gpu"]) == "1", section
        assert port_number(c, "http") == 8000
        assert port_number(c, "grpc") == 8001
        assert port_number(c, "metrics") == 8002
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert port_number(c, c[probe]["httpGet"]["port"]) == 8000, probe
        command = c["command"]
        assert command[:2] == ["quiver", "serve"]
        assert flag(command, "--model-repository") == "/models"
        assert flag(command, "--model-control-mode") == "explicit"
        model = deployment["spec"]["template"]["metadata"]["labels"]["quiver.dev/model"]
        assert flag(command, "--load-model") == model


def test_gateway_reads_its_facility_file_and_probes_health():
    docs = render("base")
    gateway = named(docs, "Deployment", "quiver-gateway")
    c = container(gateway, "gateway")
    assert c["command"][:2] == ["quiver", "gateway"]
    config_path = pathlib.PurePosixPath(flag(c["command"], "--config"))
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(config_path.parent) in mounts
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["path"].startswith("/v2/health/"), probe
        assert port_number(c, c[probe]["httpGet"]["port"]) == 8000, probe

    f = facility(docs)
    g = f["gateway"]
    assert (g["http_port"], g["grpc_port"], g["metrics_port"]) == (8000, 8001, 8002)
    assert port_number(c, "http") == g["http_port"] and port_number(c, "metrics") == 8002
    assert f["autoscale"]["provider"] == "kubernetes"
    for deployment in servers(docs):
        model = deployment["spec"]["template"]["metadata"]["labels"]["quiver.dev/model"]
        assert model in f["autoscale"]["models"], model


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_and_references_match(overlay):
    docs = render(overlay)
    deployments = of_kind(docs, "Deployment")
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), d["metadata"]["name"]
        for volume in d["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                named(docs, "ConfigMap", volume["configMap"]["name"])
    for s in of_kind(docs, "Service"):
        selector = s["spec"]["selector"]
        matched = [d for d in deployments
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert matched, f"Service {s['metadata']['name']} selects no pods"
        for d in matched:
            c = d["spec"]["template"]["spec"]["containers"][0]
            for p in s["spec"]["ports"]:
                port_number(c, p["targetPort"])
    for scaler in of_kind(docs, "ScaledObject") + of_kind(docs, "HorizontalPodAutoscaler"):
        ref = scaler["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment")
        target = named(docs, "Deployment", ref["name"])
        assert target in servers(docs), "only the servers are autoscaled"


def test_prometheus_scrapes_the_gateway_and_every_server(tmp_path):
    docs = render("base")
    prometheus = named(docs, "Deployment", "prometheus")
    volumes = prometheus["spec"]["template"]["spec"]["volumes"]
    cm_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    text = named(docs, "ConfigMap", cm_name)["data"]["prometheus.yml"]
    jobs = {j["job_name"]: j for j in yaml.safe_load(text)["scrape_configs"]}

    gateway_service = named(docs, "Service", "quiver-gateway")
    metrics_port = next(p["port"] for p in gateway_service["spec"]["ports"]
                        if p["name"] == "metrics")
    assert jobs["quiver-gateway"]["static_configs"][0]["targets"] == [
        f"quiver-gateway:{metrics_port}"]

    dns = jobs["quiver-server"]["dns_sd_configs"][0]
    headless = named(docs, "Service", dns["names"][0])
    assert headless["spec"]["clusterIP"] == "None"  # one A record per pod
    assert dns["port"] == next(p["port"] for p in headless["spec"]["ports"]
                               if p["name"] == "metrics")

    if shutil.which("promtool"):
        config = tmp_path / "prometheus.yml"
        config.write_text(text)
        check = subprocess.run(["promtool", "check", "config", str(config)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


def _target_per_replica(docs: list, model: str) -> float:
    f = facility(docs)
    return f["gateway"]["upstream_max_in_flight"] * f["autoscale"]["models"][model][
        "target_utilisation"]


def test_keda_scales_on_the_gateways_per_model_demand():
    docs = render("keda")
    f = facility(docs)
    for scaled in of_kind(docs, "ScaledObject"):
        spec = scaled["spec"]
        server = named(docs, "Deployment", spec["scaleTargetRef"]["name"])
        model = server["spec"]["template"]["metadata"]["labels"]["quiver.dev/model"]
        options = f["autoscale"]["models"][model]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        assert metric_names(meta["query"]) <= contract_metrics()
        assert "quiver_gateway_waiting" in metric_names(meta["query"])  # zero replicas
        assert label_value(meta["query"], "model") == model
        assert label_value(meta["query"], "job") == "quiver-gateway"
        assert meta["serverAddress"] == "http://prometheus.quiver.svc:9090"
        named(docs, "Service", "prometheus")
        assert math.isclose(float(meta["threshold"]), _target_per_replica(docs, model),
                            abs_tol=1)
        assert float(meta["activationThreshold"]) == 0  # the first request wakes it
        assert spec["minReplicaCount"] == options["min_replicas"] == 0
        assert spec["maxReplicaCount"] == options["max_replicas"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == options["scale_up_window_s"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == options[
            "scale_down_window_s"]


def test_hpa_scales_on_the_adapters_external_metric():
    docs = render("hpa")
    f = facility(docs)
    adapter = yaml.safe_load(named(docs, "ConfigMap", "prometheus-adapter-config")["data"][
        "config.yaml"])
    rules = {r["name"]["as"]: r for r in adapter["externalRules"]}
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        server = named(docs, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        model = server["spec"]["template"]["metadata"]["labels"]["quiver.dev/model"]
        options = f["autoscale"]["models"][model]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "External"
        name = metric["external"]["metric"]["name"]
        assert name in rules, f"no prometheus-adapter rule makes {name}"
        rule = rules[name]
        used = metric_names(rule["seriesQuery"]) | metric_names(rule["metricsQuery"])
        assert used <= contract_metrics()
        assert {"quiver_gateway_in_flight", "quiver_gateway_waiting"} <= used
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]  # the HPA's model selector
        assert "by (model)" in rule["metricsQuery"]
        assert metric["external"]["metric"]["selector"]["matchLabels"] == {"model": model}
        target = metric["external"]["target"]
        assert target["type"] == "AverageValue"
        assert math.isclose(float(target["averageValue"]), _target_per_replica(docs, model),
                            abs_tol=1)
        assert hpa["spec"]["maxReplicas"] == options["max_replicas"]
        assert hpa["spec"]["minReplicas"] >= 1  # an HPA cannot scale to zero
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == options[
            "scale_down_window_s"]


def test_overlays_change_only_what_they_add():
    base = {(d["kind"], d["metadata"]["name"]): d for d in render("base")}
    for overlay in ("keda", "hpa"):
        docs = {(d["kind"], d["metadata"]["name"]): d for d in render(overlay)}
        for key, doc in base.items():
            assert docs.get(key) == doc, f"{overlay} changed {key}"
