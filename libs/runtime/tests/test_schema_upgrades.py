"""Tables released before get their later columns wherever the schema is made: Database.create_schema runs
the metadata's upgrades after create_all(), every time, under its lock."""

from sqlalchemy import Column, Integer, MetaData, String, Table, text

from oms_runtime.db import add_upgrades
from oms_runtime.testing import throwaway_schema


def first_release() -> MetaData:
    metadata = MetaData()
    Table("parcels", metadata, Column("parcel_id", Integer, primary_key=True))
    return metadata


def second_release() -> MetaData:
    metadata = MetaData()
    Table(
        "parcels",
        metadata,
        Column("parcel_id", Integer, primary_key=True),
        Column("label", String(20), nullable=False, server_default="none"),
    )
    add_upgrades(metadata, ["ALTER TABLE parcels ADD COLUMN IF NOT EXISTS label VARCHAR(20) NOT NULL DEFAULT 'none'"])
    add_upgrades(metadata, ["CREATE INDEX IF NOT EXISTS ix_parcels_label ON parcels (label)"])
    return metadata


async def test_an_existing_table_gets_the_later_columns_and_a_second_run_changes_nothing() -> None:
    async with throwaway_schema("test_upgrades", first_release()) as db:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO parcels (parcel_id) VALUES (1)"))

        await db.create_schema(second_release())
        await db.create_schema(second_release())

        async with db.transaction() as session:
            rows = (await session.execute(text("SELECT parcel_id, label FROM parcels"))).all()
            indexes = (
                await session.execute(
                    text("SELECT indexname FROM pg_indexes WHERE schemaname = :s AND tablename = 'parcels'"),
                    {"s": db.schema},
                )
            ).scalars()
            assert set(indexes) >= {"ix_parcels_label"}
        assert [tuple(r) for r in rows] == [(1, "none")]


async def test_a_new_database_gets_the_table_whole_and_the_upgrades_are_no_ops() -> None:
    async with throwaway_schema("test_upgrades", second_release()) as db, db.transaction() as session:
        await session.execute(text("INSERT INTO parcels (parcel_id) VALUES (7)"))
        label = (await session.execute(text("SELECT label FROM parcels"))).scalar_one()
    assert label == "none"
