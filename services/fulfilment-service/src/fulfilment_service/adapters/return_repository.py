"""Returns in the event store, and their projection. Every method runs inside the caller's transaction."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.tables import return_views
from fulfilment_service.domain.returns import STREAM_TYPE, Return, stream_id
from oms_events import Message, MessageRegistry
from oms_runtime.eventstore import EventStore
from oms_runtime.messaging import MessageContext


class ReturnRepository:
    def __init__(self, store: EventStore | None = None) -> None:
        self._store = store or EventStore()

    async def load(self, session: AsyncSession, registry: MessageRegistry, return_id: UUID) -> Return:
        stored = await self._store.load(session, stream_id(return_id))
        return Return.rebuild(return_id, (registry.decode(s.envelope) for s in stored))

    async def save(self, ctx: MessageContext, returned: Return, events: Sequence[Message]) -> None:
        if not events:
            return
        await ctx.record(self._store, stream_id(returned.return_id), STREAM_TYPE, returned.version, events)
        for event in events:
            returned.apply(event)
        await self.project(ctx.session, returned)

    async def project(self, session: AsyncSession, returned: Return) -> None:
        """Writes the return's row of the projection as the aggregate is now."""
        assert returned.order_id is not None
        assert returned.status is not None
        values: dict[str, Any] = {
            "return_id": returned.return_id,
            "order_id": returned.order_id,
            "status": returned.status.value,
            "lines": [line.model_dump(mode="json") for line in returned.lines],
            "sellable": [line.model_dump(mode="json") for line in returned.sellable],
            "unsellable": [line.model_dump(mode="json") for line in returned.unsellable],
            "version": returned.version,
        }
        statement = insert(return_views).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[return_views.c.return_id],
                set_={**{k: statement.excluded[k] for k in values if k != "return_id"}, "updated_at": func.now()},
            )
        )

    async def view(self, session: AsyncSession, return_id: UUID) -> dict[str, Any] | None:
        row = (
            (await session.execute(select(return_views).where(return_views.c.return_id == return_id)))
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def by_status(self, session: AsyncSession, statuses: Sequence[str], limit: int) -> list[dict[str, Any]]:
        result = await session.execute(
            select(return_views)
            .where(return_views.c.status.in_(statuses))
            .order_by(return_views.c.created_at, return_views.c.return_id)
            .limit(limit)
        )
        return [dict(row) for row in result.mappings().all()]
