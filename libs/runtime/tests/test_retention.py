"""Old inbox rows and old published outbox rows are pruned; nothing else is."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import insert, select, text

from oms_runtime.db import Database
from oms_runtime.inbox import inbox_table
from oms_runtime.outbox import outbox_table
from oms_runtime.retention import RetentionPruner

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


async def test_pruning_keeps_recent_inbox_rows_and_every_unpublished_outbox_row(db: Database) -> None:
    old, recent = NOW - timedelta(days=9), NOW - timedelta(days=7)
    shared_id = uuid4()  # one message seen by two consumers: only the old record of it goes
    inbox_rows = [
        *({"consumer": "c", "message_id": uuid4(), "message_type": "T", "processed_at": old} for _ in range(5)),
        {"consumer": "c", "message_id": shared_id, "message_type": "T", "processed_at": old},
        {"consumer": "d", "message_id": shared_id, "message_type": "T", "processed_at": recent},
        {"consumer": "c", "message_id": uuid4(), "message_type": "T", "processed_at": recent},
    ]

    def outbox_row(created: datetime, published: datetime | None, name: str) -> dict[str, object]:
        return {
            "topic": "t",
            "message_key": name,
            "event_id": uuid4(),
            "event_type": "T",
            "value": b"{}",
            "headers": {},
            "created_at": created,
            "published_at": published,
        }

    two_days = NOW - timedelta(days=2)
    async with db.transaction() as session:
        await session.execute(insert(inbox_table), inbox_rows)
        await session.execute(
            insert(outbox_table),
            [
                outbox_row(two_days, two_days, "old-published"),
                outbox_row(two_days, None, "old-unpublished"),
                outbox_row(NOW - timedelta(hours=1), NOW - timedelta(hours=1), "recent-published"),
            ],
        )

    pruned = await RetentionPruner(db, chunk=2).prune(now=NOW)  # chunks smaller than the work: it loops

    assert (pruned.inbox, pruned.outbox) == (6, 1)
    async with db.transaction() as session:
        left = (await session.execute(select(inbox_table.c.consumer, inbox_table.c.processed_at))).all()
        keys = set((await session.scalars(select(outbox_table.c.message_key))).all())
    assert sorted(consumer for consumer, _ in left) == ["c", "d"]
    assert all(processed_at == recent for _, processed_at in left)
    assert keys == {"old-unpublished", "recent-published"}


async def test_the_pruning_indexes_exist_and_are_brin(db: Database) -> None:
    async with db.transaction() as session:
        found: dict[str, str] = dict(
            (
                await session.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s"), {"s": db.schema}
                )
            ).all()
        )
    assert "USING brin (processed_at)" in found["ix_inbox_processed_at"]
    assert "USING brin (created_at)" in found["ix_outbox_created_at"]
