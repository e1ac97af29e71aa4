"""Offline checks of the Kubernetes manifests: generated from the code, every overlay builds, the output
is valid for Kubernetes, every topic is a KafkaTopic, every setting a service reads is set, and no service
scales past the partitions of the topics it consumes."""

import contextlib
import importlib
import importlib.util
import json
import re
from typing import Any

import kubernetes_validate
import pytest
from prometheus_client.metrics import MetricWrapperBase

from k8s_build import KUBERNETES_VERSION, OVERLAYS, REPO, build, manifests
from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime import metrics
from oms_runtime.host import ConsumerSpec, ServiceHost


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return str(request.param), build(str(request.param))


def test_base_is_generated_from_the_current_code() -> None:
    assert manifests.differences() == [], "run: uv run --frozen python deploy/k8s/manifests.py --write"


def test_there_are_dev_and_prod_overlays_and_one_scaled_by_keda() -> None:
    assert {"dev", "prod", "prod-keda"} <= set(OVERLAYS)


def test_every_resource_validates_against_the_kubernetes_schemas(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    problems = []
    for document in documents:
        if document["apiVersion"].startswith(("kafka.strimzi.io/", "monitoring.coreos.com/", "keda.sh/")):
            continue  # custom resources: the topics, alerts and scalers are checked below
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
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"):
            assert (kind, service) in kinds, f"{overlay}: no {kind} {service}"
        # Scaled by the HPA or by KEDA (which makes its own HPA and refuses a Deployment another one scales).
        scalers = {kind for kind in ("HorizontalPodAutoscaler", "ScaledObject") if (kind, service) in kinds}
        assert len(scalers) == 1, f"{overlay}: {service} needs one of an HPA and a ScaledObject, has {scalers}"
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
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["config"]["retention.ms"] == str(spec.retention_ms)
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
    for service in SERVICES:
        dead_letters = [d for d in declared.values() if d["metadata"]["labels"].get("oms.io/dead-letter-of") == service]
        assert len(dead_letters) == 1, f"{overlay}: {service} needs exactly one dead-letter KafkaTopic"


def _partitions(documents: list[dict[str, Any]]) -> dict[str, int]:
    return {d["spec"]["topicName"]: d["spec"]["partitions"] for d in documents if d["kind"] == "KafkaTopic"}


def test_no_service_scales_past_the_partitions_of_what_it_consumes(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    partitions = _partitions(documents)
    for service in SERVICES:
        consumed = [partitions[t] for group in manifests.CONSUMER_GROUPS[service].values() for t in group]
        scalers = ("HorizontalPodAutoscaler", "ScaledObject")
        for document in documents:
            if document["metadata"]["name"] != service or document["kind"] not in scalers:
                continue
            spec = document["spec"]
            low, high = (
                (spec["minReplicas"], spec["maxReplicas"])
                if document["kind"] == "HorizontalPodAutoscaler"
                else (spec["minReplicaCount"], spec["maxReplicaCount"])
            )
            assert 1 <= low <= high <= min(consumed), f"{overlay}: {document['kind']} {service} {low}..{high}"
            if overlay != "dev":  # dev pins one replica on purpose
                assert high == max(consumed), f"{overlay}: {service} should scale up to its topics' partitions"


def test_keda_scales_each_service_on_the_lag_of_every_group_and_topic_it_reads_and_on_cpu(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, documents = built
    scaled = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ScaledObject"}
    if overlay != "prod-keda":
        assert not scaled, f"{overlay}: KEDA is opt-in (overlay prod-keda or the keda-lag component)"
        return
    assert set(scaled) == set(SERVICES)
    for service, scaler in scaled.items():
        [deployment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == service]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        bootstrap = _config_data(documents, container)["KAFKA_BOOTSTRAP_SERVERS"]
        assert scaler["spec"]["scaleTargetRef"]["name"] == service
        assert scaler["spec"]["minReplicaCount"] == deployment["spec"]["replicas"] == 3
        triggers = scaler["spec"]["triggers"]
        lag = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers if t["type"] == "kafka"}
        wanted = {(g, t) for g, group_topics in manifests.CONSUMER_GROUPS[service].items() for t in group_topics}
        assert lag == wanted, f"{service}: lag triggers {sorted(lag)}, consumers {sorted(wanted)}"
        for trigger in triggers:
            if trigger["type"] == "kafka":
                assert trigger["metadata"]["bootstrapServers"] == bootstrap
                assert int(trigger["metadata"]["lagThreshold"]) > 0
                assert trigger["metadata"]["allowIdleConsumers"] == "false"
        assert [t["metadata"]["value"] for t in triggers if t["type"] == "cpu"] == ["70"]


async def test_the_consumer_groups_of_the_manifests_are_those_the_composition_roots_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CONSUMER_GROUPS (what the lag triggers and the replica bounds read) against what each service's
    `build` really subscribes, seen through ServiceHost.add_consumer."""
    monkeypatch.setenv("TRACKING_TOKEN_SECRET", "test-tracking-secret-0123456789")
    seen: dict[str, dict[str, tuple[str, ...]]] = {}

    def record(host: ServiceHost, spec: ConsumerSpec) -> None:
        seen.setdefault(host.service, {})[spec.group_id] = tuple(spec.topics)

    monkeypatch.setattr(ServiceHost, "add_consumer", record)
    for service in SERVICES:
        composition_root = importlib.import_module(f"{service.replace('-', '_')}.main")
        host = composition_root.build(manifests.settings_class(service)())
        with contextlib.suppress(Exception):
            await host.producer.stop()
        await host.db.dispose()
    assert seen == {s: {g: tuple(t) for g, t in groups.items()} for s, groups in manifests.CONSUMER_GROUPS.items()}


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
