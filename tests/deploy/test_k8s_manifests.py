"""Offline checks of the Kubernetes manifests: generated from the code, every overlay builds, the output
is valid for Kubernetes, every topic is a KafkaTopic and every setting a service reads is set."""

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime import metrics

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUSTOMIZE = Path(os.environ.get("KUSTOMIZE", REPO / ".local" / "bin" / "kustomize"))
# The oldest Kubernetes minor the manifests must work on (native preStop sleep needs 1.30).
KUBERNETES_VERSION = "1.30"


def _manifests_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oms_k8s_manifests", K8S / "manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


manifests = _manifests_module()


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    if not KUSTOMIZE.is_file():
        pytest.fail(f"kustomize not found at {KUSTOMIZE}: run `make kustomize` (installs it into .local/bin)")
    overlay = str(request.param)
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"overlay {overlay} does not build:\n{result.stderr}"
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    return overlay, documents


def test_base_is_generated_from_the_current_code() -> None:
    assert manifests.differences() == [], "run: uv run --frozen python deploy/k8s/manifests.py --write"


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


def test_every_resource_validates_against_the_kubernetes_schemas(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    problems = []
    for document in documents:
        if document["apiVersion"].startswith(("kafka.strimzi.io/", "monitoring.coreos.com/")):
            continue  # custom resources: the topics and alerts are checked below
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{document['kind']}/{document['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not problems, f"{overlay}: " + "\n".join(problems)


def test_each_service_has_its_resources_probes_limits_and_a_locked_down_pod(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, documents = built
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    for service in SERVICES:
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            assert (kind, service) in kinds, f"{overlay}: no {kind} {service}"
        [deployment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == service]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == service
        [container] = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert {"requests", "limits"} <= set(container["resources"])
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security["allowPrivilegeEscalation"] is False
        config = _config_data(documents, container)
        grace = float(config["SHUTDOWN_GRACE_S"]) + container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert grace < pod["terminationGracePeriodSeconds"], "the service must stop before the kubelet kills it"


def _config_data(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        [config_map] = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
        data.update(config_map.get("data", {}))
    return data


def test_every_setting_a_service_reads_is_set_in_its_manifests(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    secrets = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Secret"}
    for service in SERVICES:
        [deployment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == service]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        provided = set(_config_data(documents, container)) | {e["name"] for e in container.get("env", [])}
        settings = manifests.settings_class(service)
        optional_unset = {
            name.upper()
            for name, field in settings.model_fields.items()
            if field.default is None and not field.is_required()
        }
        missing = {name.upper() for name in settings.model_fields} - provided - optional_unset
        assert not missing, f"{overlay}: {service} reads settings its manifests do not set: {sorted(missing)}"
        unknown = {k for k in _config_data(documents, container) if k.lower() not in settings.model_fields}
        assert not unknown, f"{overlay}: {service}'s ConfigMap sets what it does not read: {sorted(unknown)}"
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] in secrets and not ref.get("optional"):
                # Where the overlay makes the Secret itself, every required key must be in it.
                assert env["name"] in secrets[ref["name"]]["data"], f"{overlay}: {ref['name']} lacks {env['name']}"


def test_every_topic_is_a_kafka_topic_and_every_kafka_topic_is_a_topic(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, documents = built
    declared = {d["spec"]["topicName"]: d for d in documents if d["kind"] == "KafkaTopic"}
    assert set(declared) == {t.name for t in ALL_TOPICS}, overlay
    for spec in ALL_TOPICS:
        topic = declared[spec.name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["config"]["retention.ms"] == str(spec.retention_ms)
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
    for service in SERVICES:
        dead_letters = [d for d in declared.values() if d["metadata"]["labels"].get("oms.io/dead-letter-of") == service]
        assert len(dead_letters) == 1, f"{overlay}: {service} needs exactly one dead-letter KafkaTopic"


def _metric_families() -> set[str]:
    return {
        family.name
        for collector in vars(metrics).values()
        if isinstance(collector, MetricWrapperBase)
        for family in collector.describe()
    }


def _used(expression: str) -> set[str]:
    return {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"\b(oms_[a-z_]+)", expression)}


def test_prometheus_scrapes_every_service_and_the_alerts_query_exported_metrics(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, documents = built
    [monitor] = [d for d in documents if d["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in documents if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services if selector.items() <= s["metadata"]["labels"].items()} == set(
        SERVICES
    ), overlay
    [rules] = [d for d in documents if d["kind"] == "PrometheusRule"]
    alerts = [rule for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert len(alerts) >= 5
    for alert in alerts:
        assert _used(alert["expr"]), alert["alert"]
        assert _used(alert["expr"]) <= _metric_families(), alert["alert"]


def test_the_grafana_dashboard_shows_every_metric_and_queries_only_exported_ones() -> None:
    families = _metric_families()
    assert "oms_messages_consumed" in families
    dashboards = sorted((REPO / "deploy" / "grafana").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        used = {name for expr in expressions for name in _used(expr)}
        assert used <= families, f"{path.name} queries unknown metrics: {sorted(used - families)}"
        # In-flight requests are for ad-hoc looks; everything else belongs on the dashboard.
        assert families - {"oms_http_requests_in_flight"} <= used, f"{path.name} leaves out {sorted(families - used)}"
