"""The dead letters of a service over HTTP: `GET /ops/dead-letters`, redrive and discard one. ops keys only.

Operators (and the ops console, which talks only to HTTP APIs) see a service's dead-letter topic with
each record's reason, and act on one record at a time. The reading, redriving and the ledger of what
operators did are `oms_runtime.dead_letters`, the same code the `oms dlq` commands run, so an action
taken in one shows in the other. The host mounts this router in every service's API (`ServiceHost.serve_http`),
so it is in each service's OpenAPI document.

A record is named by `partition` and `offset` on the service's own dead-letter topic: an operator never
names a topic, so one service's key-holder cannot read another topic through it.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import INT64_MAX, PlainText
from oms_runtime import dead_letters
from oms_runtime.http_api import ApiKeyAuthenticator, ErrorBody, Principal
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

MAX_PREVIEW_CHARS = 2000
"""A dead letter's value is shown up to this many characters: enough to recognise it, never megabytes."""

KAFKA_TIMEOUT_S = 15.0
"""A broker that does not answer within this is a 503, not a request that hangs."""


class DeadLetterActionView(BaseModel):
    action: str = Field(description="redriven or discarded")
    reason: str
    operator: str
    republished_to: str | None = None
    acted_at: datetime


class DeadLetterView(BaseModel):
    partition: int
    offset: int
    key: str | None = Field(description="The record's Kafka key (an order id for messages about an order)")
    message_type: str | None
    reason: str = Field(description="Why it was dead-lettered (`dlq.reason`)")
    consumer: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    failed_at: str | None
    dead_lettered_at: datetime = Field(description="When the record reached the dead-letter topic")
    status: str = Field(description="pending, redriven or discarded (the latest action)")
    actions: list[DeadLetterActionView]
    value_preview: str = Field(description=f"The original bytes as text, at most {MAX_PREVIEW_CHARS} characters")


class DeadLetterList(BaseModel):
    topic: str
    total: int = Field(description="Dead letters on the topic (of this order, with `order_id`)")
    pending: int
    dead_letters: list[DeadLetterView] = Field(description="Newest first, at most `limit`")


class DeadLetterActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: PlainText = Field(min_length=1, max_length=200, description="Who acts (recorded)")
    reason: PlainText = Field(min_length=1, max_length=2000, description="Why (recorded)")
    force: bool = Field(default=False, description="Act on a record that was redriven or discarded before")


class DeadLetterActionResult(BaseModel):
    topic: str
    partition: int
    offset: int
    action: Literal["redriven", "discarded"]
    republished_to: str | None = None


Partition = Annotated[int, Path(ge=0, le=100_000)]
Offset = Annotated[int, Path(ge=0, le=INT64_MAX)]


def _view(letter: dead_letters.DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        partition=letter.record.partition,
        offset=letter.record.offset,
        key=letter.key,
        message_type=letter.message_type,
        reason=letter.reason,
        consumer=letter.consumer,
        source_topic=letter.source_topic,
        source_partition=letter.source_partition,
        source_offset=letter.source_offset,
        failed_at=letter.failed_at,
        dead_lettered_at=datetime.fromtimestamp(letter.record.timestamp_ms / 1000).astimezone(),
        status=letter.status,
        actions=[
            DeadLetterActionView(
                action=a["action"],
                reason=a["reason"],
                operator=a["operator"],
                republished_to=a.get("republished_to"),
                acted_at=a["acted_at"],
            )
            for a in letter.actions
        ],
        value_preview=letter.record.value.decode(errors="replace")[:MAX_PREVIEW_CHARS],
    )


def dead_letter_router(
    topic: str,
    kafka: KafkaConnection | str,
    database_url: str,
    auth: ApiKeyAuthenticator,
    *,
    ledger_schema: str = dead_letters.OPS_SCHEMA,
) -> tuple[APIRouter, Callable[[], Awaitable[None]]]:
    """The routes for one dead-letter topic (a service's own: `dead_letter_topic(service)`), and what
    closes their ledger's connections."""
    router = APIRouter(tags=["dead letters"])
    ops_key = auth.dependency(ops_only=True)
    answers: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 409: {"model": ErrorBody}}
    ledger_lock = asyncio.Lock()
    ledger_holder: list[dead_letters.Ledger] = []

    @asynccontextmanager
    async def ledger() -> AsyncIterator[dead_letters.Ledger]:
        # Opened on first use (creating its table then), so a service nobody asks about dead letters
        # holds no connection for it; kept for the process's life afterwards.
        async with ledger_lock:
            if not ledger_holder:
                opened = dead_letters.Ledger(database_url, ledger_schema)
                await opened.__aenter__()
                ledger_holder.append(opened)
        yield ledger_holder[0]

    async def bounded(call: Callable[[], Awaitable[T]]) -> T:
        return await asyncio.wait_for(call(), KAFKA_TIMEOUT_S)

    async def letters(order_id: str | None = None) -> list[dead_letters.DeadLetter]:
        async with ledger() as book:
            try:
                return await bounded(lambda: dead_letters.load(kafka, book, topic, order_id=order_id))
            except LookupError:
                return []  # the topic does not exist yet: nothing was ever dead-lettered

    async def one(partition: int, offset: int) -> dead_letters.DeadLetter:
        for letter in await letters():
            if letter.record.partition == partition and letter.record.offset == offset:
                return letter
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No dead letter {partition}:{offset} on {topic}.")

    @router.get("/ops/dead-letters", response_model=DeadLetterList, responses={403: {"model": ErrorBody}})
    async def list_dead_letters(
        _: Annotated[Principal, Depends(ops_key)],
        order_id: Annotated[PlainText | None, Query(max_length=200, description="Only this key's records")] = None,
        status_filter: Annotated[
            Literal["pending", "redriven", "discarded"] | None, Query(alias="status", description="Only these")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> DeadLetterList:
        """The service's dead letters, newest first, with their reasons and what operators did with them."""
        found = await letters(order_id)
        shown = [d for d in reversed(found) if status_filter is None or d.status == status_filter]
        return DeadLetterList(
            topic=topic,
            total=len(found),
            pending=sum(1 for d in found if d.status == "pending"),
            dead_letters=[_view(d) for d in shown[:limit]],
        )

    @router.post(
        "/ops/dead-letters/{partition}/{offset}/redrive", response_model=DeadLetterActionResult, responses=answers
    )
    async def redrive_dead_letter(
        principal: Annotated[Principal, Depends(ops_key)],
        partition: Partition,
        offset: Offset,
        body: DeadLetterActionRequest,
    ) -> DeadLetterActionResult:
        """Publishes the record's original key, bytes and headers to the topic it came from; recorded.
        `409` when it was acted on before (unless `force`), names no source topic, or had a payment token
        redacted when it was dead-lettered (sent again without it, a payment would be declined)."""
        letter = await one(partition, offset)
        if letter.status != "pending" and not body.force:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Dead letter {letter.ref} was already {letter.status}.")
        async with ledger() as book:
            try:
                result = await bounded(
                    lambda: dead_letters.redrive(
                        kafka, book, [letter], operator=body.operator, reason=body.reason, force=True
                    )
                )
            except ValueError as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        log.info("dead letter redriven", topic=topic, ref=letter.ref, operator=principal.name)
        assert result.redriven
        return DeadLetterActionResult(
            topic=topic, partition=partition, offset=offset, action="redriven", republished_to=letter.source_topic
        )

    @router.post(
        "/ops/dead-letters/{partition}/{offset}/discard", response_model=DeadLetterActionResult, responses=answers
    )
    async def discard_dead_letter(
        principal: Annotated[Principal, Depends(ops_key)],
        partition: Partition,
        offset: Offset,
        body: DeadLetterActionRequest,
    ) -> DeadLetterActionResult:
        """Records that the record is given up, with the reason; it stays on the topic (Kafka deletes nothing).
        `409` when it was acted on before (unless `force`)."""
        letter = await one(partition, offset)
        async with ledger() as book:
            try:
                await dead_letters.discard(book, letter, operator=body.operator, reason=body.reason, force=body.force)
            except ValueError as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        log.info("dead letter discarded", topic=topic, ref=letter.ref, operator=principal.name)
        return DeadLetterActionResult(topic=topic, partition=partition, offset=offset, action="discarded")

    async def close() -> None:
        if ledger_holder:
            await ledger_holder.pop().__aexit__()

    return router, close
