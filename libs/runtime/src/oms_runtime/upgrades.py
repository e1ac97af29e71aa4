"""Idempotent DDL for tables released before: `create_all()` makes new tables and their indexes but
never alters existing ones. A table module registers its upgrades beside its definition;
`Database.create_schema` runs them after `create_all()`, under its lock, wherever the tables are made
(service start, rebuild tools)."""

from collections.abc import Sequence

from sqlalchemy import MetaData

_UPGRADES = "oms_upgrades"


def add_upgrades(metadata: MetaData, statements: Sequence[str]) -> None:
    """Statements such as `ADD COLUMN IF NOT EXISTS` or `CREATE INDEX IF NOT EXISTS` for `metadata`'s tables."""
    metadata.info[_UPGRADES] = (*metadata.info.get(_UPGRADES, ()), *statements)


def upgrades_of(metadata: MetaData) -> tuple[str, ...]:
    return tuple(metadata.info.get(_UPGRADES, ()))
