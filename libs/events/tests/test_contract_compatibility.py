"""The contract against the last released one: the CI check, fed real model changes that break it and that
do not."""

import json
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from oms_events import compatibility
from oms_events.compatibility import breaking_changes, check, latest_release, problems, released_files
from oms_events.messages import ContractMessage, Event, OrderPaymentDeclined
from oms_events.previous import PREVIOUS_VERSIONS
from oms_events.schema import SCHEMA_DIR, generate, message_schema, render, schema_file_name
from oms_events.topics import ORDERS_EVENTS
from oms_events.upcasters import UPCASTERS
from oms_events.values import FieldProblem
from oms_events.version import VERSION


def _released() -> dict[str, str]:
    release = latest_release()
    assert release is not None
    return released_files(release)


def _with(*variants: type[ContractMessage], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The current contract with some messages' schemas replaced by (or added from) `variants`."""
    files = {name: text for name, text in generate().items() if name not in drop}
    for variant in variants:
        files[schema_file_name(variant)] = render(message_schema(variant))
    return files


# A released message, changed in the ways a developer might try.


class DeclinedWithoutReason(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    topic = ORDERS_EVENTS
    reason_code: str


class DeclinedWithRenamedReason(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    topic = ORDERS_EVENTS
    reason_code: str
    reason_text: str


class DeclinedWithNumericReason(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    topic = ORDERS_EVENTS
    reason_code: str
    reason: int


class DeclinedWithANewRequiredField(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    topic = ORDERS_EVENTS
    reason_code: str
    reason: str
    gateway: str


class DeclinedWithANewOptionalField(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    topic = ORDERS_EVENTS
    reason_code: str
    reason: str
    gateway: str | None = None
    retryable: bool = False


class DeclinedV2(Event):
    message_type: ClassVar[str] = "OrderPaymentDeclined"
    schema_version: ClassVar[int] = 2
    topic = ORDERS_EVENTS
    reason_code: str


class ActionWithoutSkip(Event):
    message_type: ClassVar[str] = "OrderOperatorActionTaken"
    topic = ORDERS_EVENTS
    action: Literal["retry", "resolve"]
    operator: str
    note: str


class RejectedWithRequiredChannel(Event):
    message_type: ClassVar[str] = "OrderIntakeRejected"
    topic = ORDERS_EVENTS
    channel: str
    external_reference: str | None = None
    errors: list[FieldProblem]


class RejectedWithFlatErrors(Event):
    message_type: ClassVar[str] = "OrderIntakeRejected"
    topic = ORDERS_EVENTS
    channel: str | None = None
    external_reference: str | None = None
    errors: list[str]


def test_the_current_contract_keeps_the_last_released_one() -> None:
    assert check() == [], "a breaking change: bump the message's schema_version and add an upcaster"


def test_the_last_release_is_the_current_version_or_an_earlier_one() -> None:
    release = latest_release()
    assert release is not None
    parse = compatibility.version_key
    assert parse(release.name) <= parse(VERSION)


def test_every_released_schema_version_is_still_published() -> None:
    published = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert set(_released()) <= published
    assert {"OrderCancelled.v1.json", "OrderCancelled.v2.json"} <= published
    for cls in PREVIOUS_VERSIONS:
        assert (cls.message_type, cls.schema_version) in UPCASTERS, f"{cls.message_type} v{cls.schema_version}"


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (DeclinedWithoutReason, "OrderPaymentDeclined v1: reason: removed (or renamed)"),
        (DeclinedWithRenamedReason, "OrderPaymentDeclined v1: reason: removed (or renamed)"),
        (DeclinedWithRenamedReason, "OrderPaymentDeclined v1: reason_text: added as required"),
        (DeclinedWithNumericReason, "OrderPaymentDeclined v1: reason: retyped from ['string'] to ['integer']"),
        (DeclinedWithANewRequiredField, "OrderPaymentDeclined v1: gateway: added as required"),
        (ActionWithoutSkip, "OrderOperatorActionTaken v1: action: enum value 'skip' removed"),
        (RejectedWithRequiredChannel, "OrderIntakeRejected v1: channel: made required"),
        (RejectedWithFlatErrors, "OrderIntakeRejected v1: errors[]: retyped from ['object'] to ['string']"),
    ],
)
def test_a_breaking_change_of_a_released_version_fails(variant: type[ContractMessage], expected: str) -> None:
    found = problems(_released(), _with(variant), UPCASTERS)
    assert any(problem.startswith(expected) for problem in found), found


def test_an_optional_field_added_passes() -> None:
    assert problems(_released(), _with(DeclinedWithANewOptionalField), UPCASTERS) == []


def test_a_new_version_needs_an_upcaster_from_the_released_one_and_keeps_the_old_schema() -> None:
    released = _released()
    old = render(message_schema(OrderPaymentDeclined))
    bumped = {**_with(DeclinedV2, drop=("OrderPaymentDeclined.v1.json",)), "OrderPaymentDeclined.v1.json": old}
    assert problems(released, bumped, UPCASTERS) == ["OrderPaymentDeclined: v2 has no upcaster from v1"]
    with_upcaster = {*UPCASTERS, ("OrderPaymentDeclined", 1)}
    assert problems(released, bumped, with_upcaster) == []
    forgotten = _with(DeclinedV2, drop=("OrderPaymentDeclined.v1.json",))
    assert problems(released, forgotten, with_upcaster) == [
        "OrderPaymentDeclined v1: released schema no longer published"
    ]


def test_a_removed_message_or_a_changed_superseded_version_fails() -> None:
    released = _released()
    assert problems(released, _with(drop=("OrderOperatorActionTaken.v1.json",)), UPCASTERS) == [
        "OrderOperatorActionTaken: removed from the contract"
    ]
    changed_v1 = json.loads(released["OrderCancelled.v1.json"])
    changed_v1["properties"]["reason"]["maxLength"] = 10
    current = {**generate(), "OrderCancelled.v1.json": render(changed_v1)}
    assert problems(released, current, UPCASTERS) == ["OrderCancelled v1: the schema of a superseded version changed"]


def test_the_check_reads_the_newest_snapshot_on_disk(tmp_path: Path) -> None:
    """A snapshot that had a field the models no longer have fails the check through the files, like CI."""
    for name, text in _released().items():
        (tmp_path / "0.9.0").mkdir(exist_ok=True)
        (tmp_path / "0.9.0" / name).write_text(text)
        body = json.loads(text)
        if name == "OrderPaymentDeclined.v1.json":
            body["properties"]["gateway"] = {"type": "string"}
        (tmp_path / "0.10.0").mkdir(exist_ok=True)
        (tmp_path / "0.10.0" / name).write_text(render(body))
    assert check(tmp_path) == [
        "OrderPaymentDeclined v1: gateway: removed (or renamed) (bump its schema_version and add an upcaster)"
    ]
    assert compatibility.main(["--check"]) == 0


def test_nested_and_optional_values_are_compared_through_refs() -> None:
    old = {
        "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}},
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string", "enum": ["p", "q"]}}}},
    }
    new = {
        "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}},
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string", "enum": ["p"]}}}},
    }
    assert breaking_changes(old, new) == ["a.x: enum value 'q' removed"]
    widened = {
        "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": ["null", "string"]}]}},
        "$defs": old["$defs"],
    }
    assert breaking_changes(old, widened) == []
    assert breaking_changes(widened, old) == ["a: retyped from ['null', 'string'] to ['null', 'object']"]
