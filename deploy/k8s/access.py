"""Who may talk to whom in the cluster: a Strimzi KafkaUser per service whose ACLs allow exactly the topics
and consumer groups of the contract's routes (`oms_events.routes`, checked against the composition roots),
and a NetworkPolicy per service. Part of the base that deploy/k8s/manifests.py generates.

Kafka: each service authenticates as its own user (SCRAM-SHA-512; the User Operator writes its credentials
to a Secret named like the user) and may read the topics its consumer groups subscribe, commit offsets of
those groups only, and write the topics it publishes plus its dead-letter topic. It may not create topics:
the Strimzi KafkaTopics are the only source of topics (KAFKA_CREATE_TOPICS=false in every ConfigMap).
Idempotent producing needs no cluster ACL (Write on a topic is enough since Kafka 2.8, KIP-679). The
operators' `oms` CLI gets a user of its own that reads every OMS topic and may redrive to them. The Kafka
cluster (not part of these manifests) must enable `simple` authorization for the ACLs to take effect.

Network: a pod takes HTTP only from the ingress controller, the operators' console and Prometheus, and
reaches DNS, the Kafka brokers, PostgreSQL, Redis and the OpenTelemetry Collector; notification-service
(SMTP relay, SMS provider), payment-service (payment gateway) and fulfilment-service (carriers) also reach
their providers on the public internet, never the cluster's private ranges.
"""

from typing import Any

from oms_events import routes
from oms_events.topics import ALL_TOPICS

KAFKA_CLUSTER = "oms-kafka"
KAFKA_PORT = 9093
"""The Strimzi listener every client uses: `tls: true`, `authentication: {type: scram-sha-512}`
(KAFKA_LISTENER). The plain listener (9092) is not reachable from the OMS pods at all."""
KAFKA_LISTENER: dict[str, Any] = {
    "name": "tls",
    "port": KAFKA_PORT,
    "type": "internal",
    "tls": True,
    "authentication": {"type": "scram-sha-512"},
}
"""What the Kafka cluster (not part of these manifests) must have in `spec.kafka.listeners`."""
KAFKA_PORTS = (KAFKA_PORT,)
HTTP_PORT = 8080
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
CONSOLE_LABEL = {"app.kubernetes.io/name": "oms-console"}
"""The operators' console (a pod in the OMS namespace) that calls the services' APIs."""
POSTGRES_PORT = 5432
REDIS_PORT = 6379
OTLP_PORT = 4318
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")

EXTERNAL_PROVIDERS: dict[str, tuple[int, ...]] = {
    # The SMTP relay, the SMS provider's HTTPS API, webhook endpoints (https).
    "notification-service": (25, 465, 587, 443),
    "payment-service": (443,),  # the payment gateway's HTTPS API
    "fulfilment-service": (443,),  # carriers' APIs
}
"""Ports on the public internet a service calls its providers on (the others call nothing outside)."""

_READ = ["Read", "Describe"]
_WRITE = ["Write", "Describe"]


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "oms", "strimzi.io/cluster": KAFKA_CLUSTER}


def _acl(kind: str, name: str, operations: list[str], pattern: str = "literal") -> dict[str, Any]:
    return {
        "type": "allow",
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
    }


def topic_operations(service: str) -> dict[str, list[str]]:
    """Topic -> operations `service` may do on it: read what its groups subscribe, write what it sends."""
    found: dict[str, list[str]] = {}
    for topic in routes.topics_received_by(service):
        found.setdefault(topic, []).extend(op for op in _READ if op not in found.get(topic, []))
    for topic in routes.topics_sent_by(service):
        found.setdefault(topic, []).extend(op for op in _WRITE if op not in found.get(topic, []))
    return {topic: found[topic] for topic in sorted(found)}


def kafka_user(service: str) -> dict[str, Any]:
    acls = [_acl("topic", topic, operations) for topic, operations in topic_operations(service).items()]
    acls += [_acl("group", group.group_id, ["Read", "Describe"]) for group in routes.consumer_groups(service)]
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": service, "labels": _labels(service)},
        "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": acls}},
    }


def ops_cli_user() -> dict[str, Any]:
    """`oms orders story` reads every topic, `oms dlq redrive` writes a dead letter back to where it came from;
    the CLI reads without a consumer group, so it needs none."""
    topic_names = sorted(t.name for t in ALL_TOPICS)
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": routes.OPS_CLI, "labels": _labels(routes.OPS_CLI)},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [_acl("topic", name, ["Read", "Describe", "Write"]) for name in topic_names],
            },
        },
    }


def _port(port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"protocol": protocol, "port": port}


def network_policy(service: str) -> dict[str, Any]:
    http = [{"protocol": "TCP", "port": "http"}]
    ingress = [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}},
                {"podSelector": {"matchLabels": CONSOLE_LABEL}},
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                },
            ],
            "ports": http,
        }
    ]
    egress: list[dict[str, Any]] = [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [_port(53, "UDP"), _port(53)],
        },
        {
            "to": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": KAFKA_CLUSTER, "strimzi.io/kind": "Kafka"}}}],
            "ports": [_port(p) for p in KAFKA_PORTS],
        },
        # PostgreSQL and Redis may be in the namespace or managed outside the cluster: any destination, their
        # ports only.
        {"ports": [_port(POSTGRES_PORT), _port(REDIS_PORT)]},
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "otel-collector"}}}],
            "ports": [_port(OTLP_PORT)],
        },
    ]
    if service in EXTERNAL_PROVIDERS:
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                "ports": [_port(p) for p in EXTERNAL_PROVIDERS[service]],
            }
        )
    if service == "notification-service":
        # The cluster's own SMTP relay (SMTP_HOST=smtp-relay in the ConfigMap).
        egress.append(
            {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "smtp-relay"}}}], "ports": [_port(25)]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": service,
            "labels": {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "oms"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
