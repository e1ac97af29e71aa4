"""The Return aggregate: delivered units coming back to the warehouses they left from. Pure.

    authorised --receive--> received --inspect--> inspected

The saga (order-service) asks for it (`AuthoriseReturn`); warehouse staff receive the parcel and inspect
every unit: the inspection says, per line, how many units can be sold again. The saga then restocks those
and refunds the returned lines. A return is a stream of its own, `return-<return_id>`.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from oms_events import Message
from oms_events.messages import ReturnAuthorised, ReturnInspected, ReturnReceived
from oms_events.values import Allocation

STREAM_TYPE = "return"


def stream_id(return_id: UUID) -> str:
    return f"return-{return_id}"


class ReturnStatus(StrEnum):
    AUTHORISED = "authorised"
    RECEIVED = "received"
    INSPECTED = "inspected"


class ReturnStateError(Exception):
    """The return's status does not allow what was asked."""


class InspectionError(ValueError):
    """An inspection that does not fit the return (a line it does not have, more units than came back)."""

    def __init__(self, message: str, line: tuple[str, str]) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Return:
    return_id: UUID
    version: int = 0
    order_id: UUID | None = None
    status: ReturnStatus | None = None
    lines: list[Allocation] = field(default_factory=list)
    sellable: list[Allocation] = field(default_factory=list)
    unsellable: list[Allocation] = field(default_factory=list)

    @classmethod
    def rebuild(cls, return_id: UUID, events: Iterable[Message]) -> "Return":
        returned = cls(return_id)
        for event in events:
            returned.apply(event)
        return returned

    @property
    def exists(self) -> bool:
        return self.status is not None

    def apply(self, event: Message) -> None:
        match event:
            case ReturnAuthorised():
                self.order_id = event.order_id
                self.lines = list(event.lines)
                self.status = ReturnStatus.AUTHORISED
            case ReturnReceived():
                self.status = ReturnStatus.RECEIVED
            case ReturnInspected():
                self.sellable = list(event.sellable)
                self.unsellable = list(event.unsellable)
                self.status = ReturnStatus.INSPECTED
            case _:
                raise ReturnStateError(f"{type(event).__name__} is not a return event")
        self.version += 1

    def _require(self, wanted: ReturnStatus, doing: str) -> UUID:
        if self.order_id is None or self.status is None:
            raise ReturnStateError(f"return {self.return_id} does not exist")
        if self.status is not wanted:
            raise ReturnStateError(f"cannot {doing} a return that is {self.status.value} (needs {wanted.value})")
        return self.order_id

    def authorise(self, order_id: UUID, lines: Sequence[Allocation]) -> list[Message]:
        if self.exists:
            return []
        return [ReturnAuthorised(order_id=order_id, return_id=self.return_id, lines=list(lines))]

    def receive(self, received_by: str) -> list[Message]:
        order_id = self._require(ReturnStatus.AUTHORISED, "receive")
        return [ReturnReceived(order_id=order_id, return_id=self.return_id, received_by=received_by)]

    def inspect(self, sellable: Mapping[tuple[str, str], int], inspected_by: str) -> list[Message]:
        """`sellable`: units that can be sold again per (sku, warehouse); lines not named have none."""
        order_id = self._require(ReturnStatus.RECEIVED, "inspect")
        returned = {(line.sku, line.warehouse_id): line.quantity for line in self.lines}
        for key, quantity in sellable.items():
            if key not in returned:
                raise InspectionError(f"{key[0]} from {key[1]} is not part of this return", key)
            if not 0 <= quantity <= returned[key]:
                raise InspectionError(f"{key[0]}: {quantity} sellable, but {returned[key]} came back", key)
        good, bad = [], []
        for line in self.lines:
            ok = sellable.get((line.sku, line.warehouse_id), 0)
            if ok:
                good.append(line.model_copy(update={"quantity": ok}))
            if ok < line.quantity:
                bad.append(line.model_copy(update={"quantity": line.quantity - ok}))
        return [
            ReturnInspected(
                order_id=order_id, return_id=self.return_id, sellable=good, unsellable=bad, inspected_by=inspected_by
            )
        ]
