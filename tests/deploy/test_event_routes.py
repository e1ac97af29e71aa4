"""The routes of the contract (`oms_events.routes`: who sends and who receives what, which the AsyncAPI
operations, the manifests' consumer groups and the KafkaUser ACLs are generated from) against the code:
the consumer groups each composition root really runs, and the messages each service's code constructs."""

import ast
import contextlib
import importlib
from pathlib import Path

import pytest

from oms_events import asyncapi, routes
from oms_events.messages import MESSAGE_TYPES
from oms_events.topics import ALL_TOPICS, SERVICES, dead_letter_topic
from oms_runtime.host import ConsumerSpec, ServiceHost
from oms_runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]


async def _consumers_of_the_composition_roots(monkeypatch: pytest.MonkeyPatch) -> set[routes.ConsumerGroup]:
    monkeypatch.setenv("TRACKING_TOKEN_SECRET", "test-tracking-secret-0123456789")
    seen: set[routes.ConsumerGroup] = set()

    def record(host: ServiceHost, spec: ConsumerSpec) -> None:
        seen.add(routes.ConsumerGroup(host.service, spec.group_id, tuple(spec.topics), spec.handlers.message_types))

    monkeypatch.setattr(ServiceHost, "add_consumer", record)
    for service in SERVICES:
        composition_root = importlib.import_module(f"{service.replace('-', '_')}.main")
        settings_class = next(
            value
            for value in vars(composition_root).values()
            if isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value.__module__ == composition_root.__name__
        )
        host = composition_root.build(settings_class())
        with contextlib.suppress(Exception):
            await host.producer.stop()
        await host.db.dispose()
    return seen


async def test_the_consumers_of_the_routes_are_those_the_composition_roots_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = await _consumers_of_the_composition_roots(monkeypatch)
    declared = set(routes.CONSUMERS)
    assert real - declared == set(), "consumers the routes do not declare (add them to oms_events.routes)"
    assert declared - real == set(), "consumers the routes declare that no service runs"


def _constructed_messages(service: str) -> set[str]:
    """Every message class that the service's own code (not its tests) calls, i.e. builds to send."""
    names = {cls.__name__ for cls in MESSAGE_TYPES}
    found: set[str] = set()
    for source in (REPO / "services" / service / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in names:
                    found.add(name)
    return found


def test_every_message_a_service_builds_goes_to_a_topic_the_routes_let_it_send_to() -> None:
    topic_of = {cls.__name__: cls.topic for cls in MESSAGE_TYPES}
    for service in SERVICES:
        built = _constructed_messages(service)
        assert built, f"{service} builds no message? the scan is broken"
        sent = set(routes.topics_sent_by(service))
        wrong = {name: topic_of[name] for name in built if topic_of[name] not in sent}
        assert wrong == {}, f"{service} builds messages for topics the routes give to another sender"


def test_every_topic_has_one_sender_and_every_consumed_type_travels_on_its_topic() -> None:
    dead_letters = {dead_letter_topic(s) for s in SERVICES}
    assert set(routes.PUBLISHERS) == {t.name for t in ALL_TOPICS} - dead_letters
    topic_of = {cls.message_type: cls.topic for cls in MESSAGE_TYPES}
    for group in routes.CONSUMERS:
        for message_type in group.message_types:
            assert topic_of[message_type] in group.topics, f"{group.group_id} handles {message_type} off its topics"


def test_the_asyncapi_operations_say_every_send_and_receive_of_the_routes() -> None:
    operations = asyncapi.generate()["operations"]
    receives = {
        (op["bindings"]["kafka"]["groupId"]["enum"][0], op["channel"]["$ref"].rsplit("/", 1)[1])
        for op in operations.values()
        if op["action"] == "receive" and "groupId" in op["bindings"]["kafka"]
    }
    wanted = {(g.group_id, t.replace(".", "-")) for g in routes.CONSUMERS for t in g.topics}
    assert receives == wanted
    sends = {(op["tags"][0]["name"], op["channel"]["$ref"]) for op in operations.values() if op["action"] == "send"}
    for service in SERVICES:
        for topic in routes.topics_sent_by(service):
            assert (service, f"#/channels/{topic.replace('.', '-')}") in sends
