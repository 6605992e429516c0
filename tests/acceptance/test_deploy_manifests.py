"""Deployment files: every Kustomize overlay renders and passes the Kubernetes 1.32 schemas
offline; the Compose file passes ``docker-compose config``; no secret is written in either."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S_VERSION = "1.32.0"  # the kubectl on these machines
SECRET_NAMES = ("SECRET_KEY", "API_KEYS", "DATABASE_URL")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for the deployment tests ({package}; .ci/run installs it)")
    return path


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = _tool("kubectl", "kubectl 1.32 with kustomize v5")
    out = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_overlays_are_the_two_documented_ones() -> None:
    assert OVERLAYS == ["postgres", "single"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_passes_the_schemas(overlay: str) -> None:
    docs = _render(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor"} <= set(
        kinds
    )
    assert "Secret" not in kinds, "secrets are referenced, never shipped in the manifests"
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: no schema ships with kubernetes-validate; checked below
        # strict: an unknown or misspelt field fails instead of being silently dropped
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_probed_limited_restricted_and_secretless(overlay: str) -> None:
    docs = _render(overlay)
    deployment = _one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    # the restricted Pod Security Standard also forbids these
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")

    env = {e["name"]: e for e in container.get("env", [])}
    config = {
        key: value
        for doc in docs
        if doc["kind"] == "ConfigMap"
        for key, value in doc.get("data", {}).items()
    }
    for name in ("SECRET_KEY", "API_KEYS"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "selfheal"
    for name in SECRET_NAMES:
        assert "value" not in env.get(name, {}), f"{name} written in the manifest"
    if overlay == "postgres":
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
        assert deployment["spec"]["replicas"] >= 2
    else:
        # SQLite: one replica, never two at once, the file on a persistent volume
        assert config["DATABASE_URL"].startswith("sqlite+aiosqlite:////data/")
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        data = next(v for v in pod["volumes"] if v["name"] == "data")
        claim = data["persistentVolumeClaim"]["claimName"]
        assert _one(docs, "PersistentVolumeClaim")["metadata"]["name"] == claim


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_budget_and_monitor_select_the_agent(overlay: str) -> None:
    docs = _render(overlay)
    labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    budget = _one(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # ServiceMonitor (monitoring.coreos.com/v1), checked by its structure
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # /metrics needs a key: from a Secret, as a bearer token
    assert endpoint["authorization"]["type"] == "Bearer"
    assert set(endpoint["authorization"]["credentials"]) == {"name", "key"}


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = _tool("docker", "Debian's docker-compose or docker.io")
    return [docker, "compose"]


def test_compose_file_is_valid_and_keeps_secrets_in_files() -> None:
    out = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert {"selfheal", "postgres", "prometheus", "grafana"} <= set(config["services"])
    agent = config["services"]["selfheal"]
    for name in SECRET_NAMES:
        assert name not in agent["environment"], f"{name} written in the Compose file"
        assert agent["environment"][f"{name}_FILE"].startswith("/run/secrets/")
    for secret in config["secrets"].values():
        assert Path(secret["file"]).parent == ROOT / "deploy" / "secrets"

    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "compose.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_key"
    assert "credentials" not in job["authorization"]
    grafana = config["services"]["grafana"]
    mounts = " ".join(str(v) for v in grafana["volumes"])
    assert "selfheal.json" in mounts
    assert "provisioning" in mounts
