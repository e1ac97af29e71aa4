"""Generates the kustomize base under deploy/k8s/base from the code, so it cannot drift from it.

    uv run --frozen python deploy/k8s/manifests.py --write    regenerate the base
    uv run --frozen python deploy/k8s/manifests.py --check    exit 1 when the checked-in base differs

What comes from the code:
- one KafkaTopic (Strimzi) per topic of `oms_events.topics.ALL_TOPICS`, dead-letter topics included;
- per service: a ConfigMap holding every non-secret field of its settings class (the default value,
  or the cluster value from `CLUSTER_VALUES`), and a Secret reference for each secret field.
The rest (Deployment, Service, ServiceAccount, PodDisruptionBudget, HorizontalPodAutoscaler) is the same
shape for every service, written here once, and so are the ServiceMonitor and the PrometheusRule with the
alerts of docs/runbook.md. The HPA's maximum is the partition count of the topics the service consumes:
a replica past it would get no partition. The KafkaUser (ACLs for exactly the service's topics and groups,
from `oms_events.routes`) and the NetworkPolicy of each service come from deploy/k8s/access.py.

The optional kustomize component deploy/k8s/components/keda-lag (also generated) replaces each HPA with a
KEDA ScaledObject that scales on the consumer lag of every group the service runs (one kafka trigger per
group and topic) and on CPU, with the same bounds. The overlays (deploy/k8s/overlays) are written by hand.

The ops console (console/, `oms-console.yaml`) gets a ConfigMap from its settings class too, pointing at
the services' Services, a Deployment, a Service with client affinity (its sign-in sessions live in a
pod's memory) and no autoscaler: it serves people, not traffic. It has no /metrics, so it is not labelled
part of the scraped services (the ServiceMonitor's selector).
"""

import importlib
import inspect
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from oms_console.settings import ConsoleSettings
from oms_events import routes
from oms_events.generated import GeneratedFiles, command
from oms_events.topics import ALL_TOPICS, SERVICES
from oms_events.version import VERSION
from oms_runtime.settings import ServiceSettings

# The sibling module, also when this file is loaded by path (tests/deploy) rather than run.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import access

BASE = Path(__file__).resolve().parent / "base"
KEDA_COMPONENT = Path(__file__).resolve().parent / "components" / "keda-lag"
KAFKA_CLUSTER = access.KAFKA_CLUSTER
HTTP_PORT = access.HTTP_PORT
# Pods get this long after SIGTERM; the service itself gives up at SHUTDOWN_GRACE_S, the preStop pause
# (for endpoints to drop the pod) comes first.
PRE_STOP_S = 5
GRACE_S = 40
IMAGE_REPOSITORY = "oms"

# The cluster CA's certificate (Strimzi's `<cluster>-cluster-ca-cert` Secret, key ca.crt) is mounted here.
KAFKA_CA_DIR = "/etc/oms/kafka-ca"
KAFKA_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"

CLUSTER_VALUES: dict[str, str] = {
    # Strimzi's listener with `tls: true` and `authentication: scram-sha-512` (access.KAFKA_LISTENER): each
    # service is its KafkaUser (KAFKA_SASL_USERNAME, per service below), its password from the Secret the
    # User Operator writes for that user, the broker verified against the cluster CA.
    "kafka_bootstrap_servers": f"{KAFKA_CLUSTER}-kafka-bootstrap:{access.KAFKA_PORT}",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_ssl_cafile": f"{KAFKA_CA_DIR}/ca.crt",
    "http_host": "0.0.0.0",
    "http_port": str(HTTP_PORT),
    "log_format": "json",
    "shutdown_grace_s": "25",
    # An OpenTelemetry Collector in the namespace (or a Service of that name pointing at one).
    "otel_traces_exporter": "otlp",
    "otel_exporter_otlp_endpoint": "http://otel-collector:4318",
    # Cluster defaults that differ from a developer's machine:
    "smtp_host": "smtp-relay",
    "smtp_port": "25",
    "seed_demo_stock": "false",
    # The Strimzi KafkaTopics are the topics; the services have no Create ACL.
    "kafka_create_topics": "false",
}
"""Values for the cluster where a setting's default (made for a developer's machine) does not fit."""

SECRET_FIELDS = {"database_url", "redis_url", "api_keys", "carrier_webhook_secrets"}
"""Settings that carry credentials although they are plain strings in the code."""

KAFKA_USER_SECRET_KEYS = {"KAFKA_SASL_PASSWORD": "password"}
"""Secret settings read from the service's KafkaUser Secret (named like the user, written by Strimzi's User
Operator), not from `<service>-secrets`."""

RESOURCES = {
    "order-service": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
}
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"cpu": "500m", "memory": "384Mi"}}

CONSUMER_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    service: {group.group_id: group.topics for group in routes.consumer_groups(service)} for service in SERVICES
}
"""Each service's consumer groups and the topics they read, from the contract's routes (tests/deploy checks
them against the composition roots): what the lag triggers watch, what bounds the replicas, and what the
KafkaUser ACLs allow to read."""

MIN_REPLICAS = 2
CPU_TARGET_PERCENT = 70
LAG_PER_REPLICA = 500
"""KEDA's lagThreshold: records behind per replica (summed over a topic's partitions) that adds a replica."""


def max_replicas(service: str) -> int:
    """The most replicas that get work: the partitions of the widest topic the service consumes."""
    partitions = {t.name: t.partitions for t in ALL_TOPICS}
    return max(partitions[topic] for group in CONSUMER_GROUPS[service].values() for topic in group)


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class a service's composition root defines (its `main` module)."""
    module = importlib.import_module(f"{service.replace('-', '_')}.main")
    found = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise RuntimeError(f"{module.__name__} should define exactly one ServiceSettings subclass, found {found}")
    return found[0]


def is_secret(name: str, annotation: Any) -> bool:
    return name in SECRET_FIELDS or "SecretStr" in repr(annotation) or annotation is SecretStr


def env_value(value: Any) -> str | None:
    """How pydantic-settings reads the value back from an environment variable."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def config_and_secrets(service: str) -> tuple[dict[str, str], dict[str, bool]]:
    """The ConfigMap's data, and the secret settings (name -> optional: a setting that may be unset)."""
    return settings_config(settings_class(service), {**CLUSTER_VALUES, "kafka_sasl_username": service})


def settings_config(
    cls: type[ServiceSettings] | type[ConsoleSettings], cluster_values: dict[str, str]
) -> tuple[dict[str, str], dict[str, bool]]:
    defaults = cls.model_construct().model_dump(mode="json")
    config: dict[str, str] = {}
    secrets: dict[str, bool] = {}
    for name, info in sorted(cls.model_fields.items()):
        if is_secret(name, info.annotation):
            # Optional in the Secret when the service starts without it (no default credentials at all).
            secrets[name.upper()] = defaults.get(name) in (None, {}, [], "")
            continue
        value = cluster_values.get(name, env_value(defaults.get(name)))
        # An optional setting without a value stays unset, but is still listed (empty means "not set").
        config[name.upper()] = value if value is not None else ""
    return config, secrets


def _labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "oms"}


# Every container: an unprivileged user, a read-only root file system (scratch space in /tmp), no capabilities.
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "capabilities": {"drop": ["ALL"]},
}


def _service_account(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "labels": labels},
        "automountServiceAccountToken": False,
    }


def _config_map(
    name: str, labels: dict[str, str], config: dict[str, str], secrets: Iterable[str], unset: Iterable[str]
) -> dict[str, Any]:
    """The settings of `name`; the annotations say which settings come from the Secret and which are left unset."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-config",
            "labels": labels,
            "annotations": {"oms.io/secret-settings": ",".join(secrets), "oms.io/unset-settings": ",".join(unset)},
        },
        "data": config,
    }


def _pod_spec(name: str, grace_s: int, container: dict[str, Any], tmp_limit: str) -> dict[str, Any]:
    """A pod of one container that runs as an unprivileged user, with a bounded scratch /tmp."""
    return {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": tmp_limit}}],
    }


def service_documents(service: str) -> list[dict[str, Any]]:
    config, secrets = config_and_secrets(service)
    # Empty values would override nothing useful and confuse readers: optional settings left unset are
    # dropped from the ConfigMap but named in its annotation, so the settings check still sees them.
    unset = sorted(k for k, v in config.items() if v == "")
    config = {k: v for k, v in config.items() if v != ""}
    labels = _labels(service)
    secret_name = f"{service}-secrets"
    # The KafkaUser's Secret (access.kafka_user: named like the service) holds the SCRAM password.
    env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": service, "key": KAFKA_USER_SECRET_KEYS[key]}}}
        if key in KAFKA_USER_SECRET_KEYS
        else {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key, "optional": optional}}}
        for key, optional in secrets.items()
    ]
    secrets = {key: optional for key, optional in secrets.items() if key not in KAFKA_USER_SECRET_KEYS}
    probe_http = {"path": "/health/live", "port": "http"}
    container = {
        "name": service,
        "image": f"{IMAGE_REPOSITORY}/{service}:{VERSION}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"{service}-config"}}],
        "env": [*env, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}, {"name": "TMPDIR", "value": "/tmp"}],
        "resources": RESOURCES.get(service, DEFAULT_RESOURCES),
        "startupProbe": {"httpGet": probe_http, "periodSeconds": 2, "failureThreshold": 60, "timeoutSeconds": 2},
        "livenessProbe": {"httpGet": probe_http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2},
        "readinessProbe": {
            # Longer than READINESS_TIMEOUT_S (2 s): the checks run concurrently, each bounded by it.
            "httpGet": {"path": "/health/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 2,
            "timeoutSeconds": 4,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_S}}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True},
        ],
    }
    pod = _pod_spec(service, GRACE_S, container, tmp_limit="64Mi")
    pod["volumes"].append(
        {"name": "kafka-ca", "secret": {"secretName": KAFKA_CA_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    )
    return [
        _service_account(service, labels),
        _config_map(service, labels, config, secrets, unset),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": service, "labels": labels},
            "spec": {
                "replicas": 2,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(HTTP_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": pod,
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": service},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": service, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": service}}},
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": service, "labels": labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
                "minReplicas": MIN_REPLICAS,
                # More consumers than partitions would sit idle.
                "maxReplicas": max_replicas(service),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT},
                        },
                    }
                ],
            },
        },
    ]


CONSOLE = "oms-console"
CONSOLE_VALUES: dict[str, str] = {
    "console_host": "0.0.0.0",
    "console_port": str(HTTP_PORT),
    "log_format": "json",
    **{f"{s.replace('-', '_')}_url": f"http://{s}" for s in SERVICES},
}
"""The console's cluster values: every service by its Service's name (port 80)."""


def console_documents() -> list[dict[str, Any]]:
    """The ops console: the services' shape without autoscaling, scraping or a disruption budget of two."""
    config, secrets = settings_config(ConsoleSettings, CONSOLE_VALUES)
    unset = sorted(k for k, v in config.items() if v == "")
    config = {k: v for k, v in config.items() if v != ""}
    # Not `part-of: oms`: the ServiceMonitor scrapes every Service with that label, and the console has no /metrics.
    labels = {"app.kubernetes.io/name": CONSOLE, "app.kubernetes.io/component": "ops-console"}
    probe = {"path": "/health", "port": "web"}
    container = {
        "name": CONSOLE,
        "image": f"{IMAGE_REPOSITORY}/{CONSOLE}:latest",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "web", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"{CONSOLE}-config"}}],
        "env": [
            *(
                {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": f"{CONSOLE}-secrets", "key": key, "optional": optional}},
                }
                for key, optional in secrets.items()
            ),
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "TMPDIR", "value": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "startupProbe": {"httpGet": probe, "periodSeconds": 2, "failureThreshold": 30, "timeoutSeconds": 2},
        "livenessProbe": {"httpGet": probe, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2},
        "readinessProbe": {"httpGet": probe, "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 2},
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_S}}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    selector = {"app.kubernetes.io/name": CONSOLE}
    return [
        _service_account(CONSOLE, labels),
        _config_map(CONSOLE, labels, config, secrets, unset),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": CONSOLE, "labels": labels},
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(CONSOLE, 20, container, tmp_limit="16Mi"),
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": CONSOLE, "labels": labels},
            "spec": {
                "selector": selector,
                # Sign-in sessions live in one pod's memory: a browser keeps to the pod it signed in on.
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "web", "port": 80, "targetPort": "web", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": CONSOLE, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def scaled_object(service: str) -> dict[str, Any]:
    """KEDA: the service's replicas follow its consumer lag (per group and topic) and its CPU."""
    lag_triggers = [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": CLUSTER_VALUES["kafka_bootstrap_servers"],
                "consumerGroup": group,
                "topic": topic,
                "lagThreshold": str(LAG_PER_REPLICA),
                # The consumers' own auto_offset_reset: a group without offsets reads from the start.
                "offsetResetPolicy": "earliest",
                # Never more replicas than the topic's partitions (KEDA's default, said out loud).
                "allowIdleConsumers": "false",
                # The service's own listener and user: the credentials come from trigger_authentication.
                "sasl": "scram_sha512",
                "tls": "enable",
            },
            "authenticationRef": {"name": f"{service}-kafka"},
        }
        for group, group_topics in CONSUMER_GROUPS[service].items()
        for topic in group_topics
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": service, "labels": _labels(service)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
            "minReplicaCount": MIN_REPLICAS,
            "maxReplicaCount": max_replicas(service),
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                # A rebalance per scale step stalls the group: scale down slowly.
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                }
            },
            "triggers": [
                *lag_triggers,
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(CPU_TARGET_PERCENT)}},
            ],
        },
    }


def trigger_authentication(service: str) -> dict[str, Any]:
    """KEDA reads the lag as the service itself: its KafkaUser (the username from the container's
    environment, the password from the User Operator's Secret), the broker checked against the cluster CA."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": f"{service}-kafka", "labels": _labels(service)},
        "spec": {
            "env": [{"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": service}],
            "secretTargetRef": [
                {"parameter": "password", "name": service, "key": KAFKA_USER_SECRET_KEYS["KAFKA_SASL_PASSWORD"]},
                {"parameter": "ca", "name": KAFKA_CA_SECRET, "key": "ca.crt"},
            ],
        },
    }


def keda_component() -> dict[str, str]:
    """A kustomize Component: the ScaledObjects, and the base's HPAs removed (KEDA makes its own HPA per
    ScaledObject and refuses a Deployment that another HPA scales)."""
    component = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["scaled-objects.yaml"],
        "patches": [
            {
                "target": {"kind": "HorizontalPodAutoscaler", "name": service},
                "patch": yaml.dump(
                    {
                        "$patch": "delete",
                        "apiVersion": "autoscaling/v2",
                        "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": service},
                    },
                    sort_keys=False,
                ),
            }
            for service in SERVICES
        ],
    }
    return {
        "scaled-objects.yaml": _dump(
            [doc for s in SERVICES for doc in (trigger_authentication(s), scaled_object(s))],
            "KEDA ScaledObjects: consumer lag and CPU per service, each reading the lag as the service's KafkaUser",
        ),
        "kustomization.yaml": _dump(
            [component], "Optional component: scale on consumer lag with KEDA instead of the CPU-only HPA"
        ),
    }


def topic_documents() -> list[dict[str, Any]]:
    documents = []
    for spec in ALL_TOPICS:
        dead_letter_of = next((s for s in SERVICES if spec.name == f"oms.{s.removesuffix('-service')}.dlq"), None)
        labels = {"strimzi.io/cluster": KAFKA_CLUSTER, "app.kubernetes.io/part-of": "oms"}
        if dead_letter_of:
            labels["oms.io/dead-letter-of"] = dead_letter_of
        documents.append(
            {
                "apiVersion": "kafka.strimzi.io/v1",
                "kind": "KafkaTopic",
                "metadata": {
                    "name": spec.name,
                    "labels": labels,
                    "annotations": {"oms.io/description": spec.description},
                },
                "spec": {
                    "topicName": spec.name,
                    "partitions": spec.partitions,
                    "replicas": 3,
                    "config": {
                        "retention.ms": str(spec.retention_ms),
                        "cleanup.policy": "delete",
                        "min.insync.replicas": "2",
                    },
                },
            }
        )
    return documents


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text_block(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # Multi-line strings (the component's inline patches) as readable `|` blocks.
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_NoAliases.add_representer(str, _text_block)


ALERTS = [
    ("OmsServiceUnready", "min by (service) (oms_ready) == 0", "2m", "critical", "{{ $labels.service }} is not ready"),
    (
        "OmsOutboxNotDraining",
        "max by (service) (oms_outbox_lag_seconds) > 60",
        "5m",
        "critical",
        "{{ $labels.service }} has not published its outbox for {{ $value }}s (broker down?)",
    ),
    (
        "OmsDeadLetters",
        "sum by (consumer) (increase(oms_dead_letters_total[10m])) > 0",
        "0m",
        "warning",
        "{{ $labels.consumer }} dead-lettered {{ $value }} messages (oms dlq list)",
    ),
    (
        "OmsConsumerLag",
        "sum by (group) (max by (group, topic, partition) (oms_consumer_lag_messages)) > 1000",
        "10m",
        "warning",
        "consumer group {{ $labels.group }} is {{ $value }} messages behind",
    ),
    (
        "OmsSagaStepsTimedOut",
        'sum by (step) (increase(oms_saga_steps_total{outcome="timed_out"}[15m])) > 0',
        "0m",
        "warning",
        "saga step {{ $labels.step }} timed out (oms orders stuck)",
    ),
    (
        "OmsHandlerErrors",
        "sum by (consumer) (rate(oms_handler_errors_total[5m])) > 1",
        "5m",
        "warning",
        "{{ $labels.consumer }} handlers fail {{ $value }} times a second",
    ),
]
"""Alerts of docs/runbook.md: name, PromQL, for, severity, summary."""


def monitoring_documents() -> list[dict[str, Any]]:
    """Prometheus Operator resources: scrape every OMS Service, and the runbook's alerts."""
    labels = {"app.kubernetes.io/part-of": "oms"}
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "oms-services", "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "oms-alerts", "labels": labels},
            "spec": {
                "groups": [
                    {
                        "name": "oms",
                        "rules": [
                            {
                                "alert": name,
                                "expr": expr,
                                "for": duration,
                                "labels": {"severity": severity},
                                "annotations": {
                                    "summary": summary,
                                    "runbook_url": "docs/runbook.md",
                                },
                            }
                            for name, expr, duration, severity, summary in ALERTS
                        ],
                    }
                ]
            },
        },
    ]


def _dump(documents: list[dict[str, Any]], header: str) -> str:
    body = "---\n".join(yaml.dump(d, Dumper=_NoAliases, sort_keys=False, width=120) for d in documents)
    return f"# {header}\n# Generated by deploy/k8s/manifests.py from the code: do not edit by hand.\n{body}"


def generate() -> dict[str, str]:
    files = {
        f"{service}.yaml": _dump(
            [*service_documents(service), access.kafka_user(service), access.network_policy(service)], service
        )
        for service in SERVICES
    }
    files["oms-cli.yaml"] = _dump([access.ops_cli_user()], "The operators' oms CLI: its Kafka user")
    files[f"{CONSOLE}.yaml"] = _dump(console_documents(), "The ops console (console/)")
    files["kafka-topics.yaml"] = _dump(topic_documents(), "Strimzi KafkaTopics: every topic of oms_events.topics")
    files["monitoring.yaml"] = _dump(monitoring_documents(), "Prometheus Operator: scraping and the runbook's alerts")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/managed-by": "kustomize"}}],
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = _dump(
        [kustomization], "The OMS base: five services, the ops console and their topics"
    )
    return files


def generated_files(directory: Path = BASE) -> GeneratedFiles:
    return GeneratedFiles(directory, generate, owned="*.yaml")


def keda_files(directory: Path = KEDA_COMPONENT) -> GeneratedFiles:
    return GeneratedFiles(directory, keda_component, owned="*.yaml")


def differences(directory: Path = BASE, keda_directory: Path = KEDA_COMPONENT) -> list[str]:
    return generated_files(directory).differences() + keda_files(keda_directory).differences()


def write(directory: Path = BASE, keda_directory: Path = KEDA_COMPONENT) -> None:
    generated_files(directory).write()
    keda_files(keda_directory).write()


def main() -> int:
    return command(
        __doc__,
        [generated_files(), keda_files()],
        report="deploy/k8s: {problem} (run: python deploy/k8s/manifests.py --write)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
