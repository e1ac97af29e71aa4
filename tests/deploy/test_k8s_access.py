"""Who may talk to whom, in every overlay: Strimzi `kafka.strimzi.io/v1` resources only (what Strimzi 1.0
accepts), a KafkaUser per service whose ACLs are exactly the topics and groups of the contract's routes,
topic creation by the services off, secrets only in Secrets, and a NetworkPolicy per service."""

from typing import Any

import jsonschema
import pytest

from k8s_build import OVERLAYS, build, manifests
from oms_events import routes
from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime.settings import ServiceSettings

# The parts of Strimzi's v1 CRDs (KafkaTopic, KafkaUser) the manifests use, with the CRDs' own constraints.
# Unknown spec fields are refused: v1 dropped fields of v1beta2 (a KafkaUser ACL's singular `operation`).
_ACL = {
    "type": "object",
    "required": ["resource", "operations"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["allow", "deny"]},
        "host": {"type": "string"},
        "resource": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string"},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "items": {
                "enum": [
                    "Read",
                    "Write",
                    "Create",
                    "Delete",
                    "Alter",
                    "Describe",
                    "ClusterAction",
                    "AlterConfigs",
                    "DescribeConfigs",
                    "IdempotentWrite",
                    "All",
                ]
            },
        },
    },
}
STRIMZI_V1 = {
    "KafkaTopic": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "topicName": {"type": "string"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object"},
        },
    },
    "KafkaUser": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
            },
            "authorization": {
                "type": "object",
                "required": ["acls", "type"],
                "additionalProperties": False,
                "properties": {"type": {"enum": ["simple"]}, "acls": {"type": "array", "items": _ACL}},
            },
            "quotas": {"type": "object"},
            "template": {"type": "object"},
        },
    },
}


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return str(request.param), build(str(request.param))


def _users(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "KafkaUser"}


def _acls(user: dict[str, Any], kind: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl["type"] == "allow"
        assert acl["resource"]["patternType"] == "literal", f"{acl}: a prefix or wildcard grants more than needed"
        if acl["resource"]["type"] == kind:
            found.setdefault(acl["resource"]["name"], set()).update(acl["operations"])
    return found


def test_every_strimzi_resource_is_v1_and_valid_for_its_crd(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    strimzi = [d for d in documents if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["kind"] for d in strimzi} == {"KafkaTopic", "KafkaUser"}
    for document in strimzi:
        name = f"{overlay}: {document['kind']}/{document['metadata']['name']}"
        assert document["apiVersion"] == "kafka.strimzi.io/v1", name
        assert document["metadata"]["labels"]["strimzi.io/cluster"] == manifests.KAFKA_CLUSTER, name
        jsonschema.validate(document["spec"], STRIMZI_V1[document["kind"]])


def test_the_schema_refuses_what_v1_dropped() -> None:
    old_style = {"resource": {"type": "topic", "name": "t", "patternType": "literal"}, "operation": "Read"}
    user = {"authorization": {"type": "simple", "acls": [old_style]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(user, STRIMZI_V1["KafkaUser"])


def test_each_service_may_use_exactly_its_topics_and_groups(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    users = _users(documents)
    assert set(users) == {*SERVICES, routes.OPS_CLI}, overlay
    for service in SERVICES:
        user = users[service]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        reads = set(routes.topics_received_by(service))
        writes = set(routes.topics_sent_by(service))
        wanted = {
            t: {"Describe"} | ({"Read"} if t in reads else set()) | ({"Write"} if t in writes else set())
            for t in reads | writes
        }
        assert _acls(user, "topic") == wanted, f"{overlay}: {service}"
        groups = {g.group_id: {"Read", "Describe"} for g in routes.consumer_groups(service)}
        assert _acls(user, "group") == groups, f"{overlay}: {service}"
        assert _acls(user, "cluster") == {}, f"{overlay}: {service} needs no cluster right (no topic creation)"
    # The consumer groups the ACLs grant are the ones the lag triggers and replica bounds read.
    for service in SERVICES:
        assert set(manifests.CONSUMER_GROUPS[service]) == set(_acls(users[service], "group"))
    cli = _acls(users[routes.OPS_CLI], "topic")
    assert set(cli) == {t.name for t in ALL_TOPICS}
    assert _acls(users[routes.OPS_CLI], "group") == {}


def test_no_service_creates_topics_in_kubernetes_but_does_locally(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    for document in documents:
        if document["kind"] == "ConfigMap" and document["metadata"]["name"].endswith("-service-config"):
            assert document["data"]["KAFKA_CREATE_TOPICS"] == "false", f"{overlay}: {document['metadata']['name']}"
    assert ServiceSettings().kafka_create_topics is True


def test_every_service_talks_sasl_ssl_to_the_scram_listener_as_its_own_kafka_user(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    """The settings of oms_runtime.kafka_connection, as Strimzi provides them: the bootstrap Service on the
    listener with TLS and SCRAM-SHA-512, the KafkaUser's name and the password from the Secret its User
    Operator writes (named like the user, key `password`), the broker checked against the cluster CA (the
    `<cluster>-cluster-ca-cert` Secret, key ca.crt) mounted where KAFKA_SSL_CAFILE points."""
    overlay, documents = built
    assert manifests.access.KAFKA_LISTENER["tls"] is True
    assert manifests.access.KAFKA_LISTENER["authentication"] == {"type": "scram-sha-512"}
    port = manifests.access.KAFKA_LISTENER["port"]
    users = _users(documents)
    for service in SERVICES:
        [deployment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == service]
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        [config] = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{service}-config"]
        data = config["data"]
        assert data["KAFKA_BOOTSTRAP_SERVERS"] == f"{manifests.KAFKA_CLUSTER}-kafka-bootstrap:{port}", overlay
        assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert data["KAFKA_SASL_USERNAME"] == service
        assert service in users
        env = {e["name"]: e for e in container["env"]}
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": service, "key": "password"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        [ca_volume] = [
            n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == "oms-kafka-cluster-ca-cert"
        ]
        [item] = volumes[ca_volume]["secret"]["items"]
        assert data["KAFKA_SSL_CAFILE"] == f"{mounts[ca_volume]}/{item['path']}"
        assert item["key"] == "ca.crt"
        # What the services read them with accepts them (the CA file exists only in the pod).
        settings = {k.lower(): v for k, v in data.items() if k.startswith("KAFKA_") and k != "KAFKA_SSL_CAFILE"}
        connection = ServiceSettings.model_validate({**settings, "kafka_sasl_password": "x"}).kafka_connection()
        assert connection.client_args()["sasl_plain_username"] == service
    authentications = {d["metadata"]["name"]: d for d in documents if d["kind"] == "TriggerAuthentication"}
    for scaler in (d for d in documents if d["kind"] == "ScaledObject"):
        service = scaler["metadata"]["name"]
        for trigger in (t for t in scaler["spec"]["triggers"] if t["type"] == "kafka"):
            assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")
            spec = authentications[trigger["authenticationRef"]["name"]]["spec"]
            assert {r["parameter"]: (r["name"], r["key"]) for r in spec["secretTargetRef"]} == {
                "password": (service, "password"),
                "ca": ("oms-kafka-cluster-ca-cert", "ca.crt"),
            }
            assert spec["env"] == [{"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": service}]


_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "API_KEY", "API_KEYS", "DATABASE_URL", "REDIS_URL")


def test_secrets_are_only_in_secrets(built: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, documents = built
    for document in documents:
        if document["kind"] != "ConfigMap":
            continue
        leaked = [k for k in document.get("data", {}) if any(word in k for word in _SECRET_WORDS)]
        assert leaked == [], f"{overlay}: {document['metadata']['name']} holds secrets: {leaked}"
    [fulfilment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "fulfilment-service"]
    env = {e["name"]: e for e in fulfilment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CARRIER_WEBHOOK_SECRETS"]["valueFrom"]["secretKeyRef"]["name"].startswith("fulfilment-service-secrets")


def _peers(rule: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list(rule.get(key, []))


def test_each_service_has_a_network_policy_with_only_its_callers_and_dependencies(
    built: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, documents = built
    policies = {d["metadata"]["name"]: d for d in documents if d["kind"] == "NetworkPolicy"}
    assert set(policies) == set(SERVICES), overlay
    for service, policy in policies.items():
        spec = policy["spec"]
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": service}}
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        [ingress] = spec["ingress"]
        assert ingress["ports"] == [{"protocol": "TCP", "port": "http"}]
        callers = _peers(ingress, "from")
        assert len(callers) == 3
        assert all(peer.get("namespaceSelector") or peer.get("podSelector") for peer in callers), "no open ingress"
        ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
        assert {("UDP", 53), ("TCP", 9093), ("TCP", 5432), ("TCP", 6379)} <= ports, f"{overlay}: {service}"
        assert ("TCP", 9092) not in ports, f"{overlay}: {service} must not reach the unauthenticated listener"
        external = [rule for rule in spec["egress"] if any("ipBlock" in peer for peer in _peers(rule, "to"))]
        if service in {"notification-service", "payment-service", "fulfilment-service"}:
            [rule] = external
            [peer] = rule["to"]
            assert "10.0.0.0/8" in peer["ipBlock"]["except"], "providers are on the internet, not the cluster"
            assert ("TCP", 443) in {(p["protocol"], p["port"]) for p in rule["ports"]}
        else:
            assert external == [], f"{overlay}: {service} calls nothing outside the cluster"
