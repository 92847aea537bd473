"""Schema migrations: a list of small functions, applied in order, the version kept in elspeth_meta."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select

from elspeth.errors import LandscapeError
from elspeth.landscape import schema


def _m001_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [_m001_initial]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema.meta.name):
        return 0
    value = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def migrate(engine: Engine) -> int:
    """Bring the schema up to SCHEMA_VERSION; returns the version found before."""
    with engine.begin() as conn:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise LandscapeError(
                f"this landscape has schema version {found}, newer than this elspeth understands "
                f"({SCHEMA_VERSION}); upgrade elspeth"
            )
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](conn)
            table = schema.meta
            conn.execute(table.delete().where(table.c.key == "schema_version"))
            conn.execute(table.insert().values(key="schema_version", value=str(version + 1)))
    return found
