"""Named schema migrations: what each Landscape has applied, and applying the rest.

Each migration is a module `mNNNN_what.py` holding NAME and `apply(conn)`, listed in MIGRATIONS in order. A
database records every migration it applied in `elspeth_migrations` (name, when, which elspeth did it), each
in a transaction of its own, and `elspeth_meta.schema_version` counts them, which is what an elspeth from
before named migrations reads to refuse a newer database. Databases from before named migrations have
`schema_version = 1` and no ledger: they are at 0001_initial, and the ledger is written on their first
upgrade. How to add a migration: docs/landscape.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from attrs import frozen
from sqlalchemy import Connection, Engine, inspect, select, text

from elspeth import __version__
from elspeth.errors import LandscapeError
from elspeth.landscape import schema
from elspeth.landscape.migrations import (
    m0001_initial,
    m0002_purges,
    m0003_node_state_outputs,
    m0004_outcome_artifact_key,
    m0005_indexes_skip_nulls,
)


@frozen
class Migration:
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(m.NAME, m.apply)
    for m in (
        m0001_initial,
        m0002_purges,
        m0003_node_state_outputs,
        m0004_outcome_artifact_key,
        m0005_indexes_skip_nulls,
    )
)
HEAD = MIGRATIONS[-1].name

_PG_LOCK = 0x656C7370  # an arbitrary advisory-lock key ("elsp"): one upgrader at a time per database


@frozen
class SchemaState:
    applied: tuple[str, ...]
    """Names of the migrations this database has, in order."""
    applied_by: str | None
    """The elspeth version that applied the latest of them, when the ledger says."""

    @property
    def empty(self) -> bool:
        return not self.applied

    @property
    def pending(self) -> tuple[Migration, ...]:
        return MIGRATIONS[len(self.applied) :]

    @property
    def version(self) -> str:
        return self.applied[-1] if self.applied else "empty"


def schema_state(conn: Connection) -> SchemaState:
    """Which migrations the database has; a LandscapeError when it has some this elspeth does not know."""
    tables = set(inspect(conn).get_table_names())
    if schema.migrations_ledger.name in tables:
        ledger = schema.migrations_ledger.c
        rows = conn.execute(select(ledger.name, ledger.elspeth_version).order_by(ledger.name)).all()
        state = SchemaState(tuple(r.name for r in rows), rows[-1].elspeth_version if rows else None)
    elif schema.meta.name in tables:
        version = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
        if version != "1" and schema.migrations_ledger.name in set(inspect(conn).get_table_names()):
            # Another process upgraded it between the two reads (each its own snapshot): read it again.
            return schema_state(conn)
        if version != "1":
            raise LandscapeError(
                f"this landscape says schema_version {version!r} but has no elspeth_migrations table; "
                "it was not written by any released elspeth"
            )
        state = SchemaState((m0001_initial.NAME,), None)
    else:
        state = SchemaState((), None)
    known = [m.name for m in MIGRATIONS]
    if list(state.applied) != known[: len(state.applied)]:
        by = f" by elspeth {state.applied_by}" if state.applied_by else ""
        raise LandscapeError(
            f"this landscape is at schema {state.version} (applied{by}), which this elspeth ({__version__}) "
            f"does not know: it knows schemas up to {HEAD}; use a newer elspeth with this landscape"
        )
    return state


def upgrade(engine: Engine) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction; the names applied. A migration
    another process applied meanwhile is skipped: the ledger is read again under a lock. An empty database
    gets them all in one transaction: a process killed while creating a Landscape leaves it empty, never at
    some schema between (which every later run would refuse until an upgrade)."""
    with engine.connect() as conn:
        state = schema_state(conn)
    if state.empty:
        return _apply(engine, state.pending)
    return [name for m in state.pending for name in _apply(engine, (m,))]


def _apply(engine: Engine, batch: Sequence[Migration]) -> list[str]:
    """`batch` in one transaction, the database locked against other upgraders; the names applied."""
    if engine.dialect.name == "sqlite":
        return _apply_sqlite(engine, batch)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        return [m.name for m in batch if _apply_locked(conn, m)]


def _apply_sqlite(engine: Engine, batch: Sequence[Migration]) -> list[str]:
    """SQLite rebuilds a table to change a column or a constraint, and a rebuild drops a table others refer
    to: so foreign keys are off during a migration (they cannot be switched inside a transaction), every
    reference is checked before the commit, and the transaction is begun by hand, since the driver would
    run DDL outside one."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                done = [m.name for m in batch if _apply_locked(conn, m)]
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise LandscapeError(
                        f"migration {batch[-1].name} would leave {len(broken)} broken references "
                        f"(first: {tuple(broken[0])}); nothing was changed"
                    )
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    return done


def _apply_locked(conn: Connection, migration: Migration) -> bool:
    """Inside the migration's transaction, with the database locked against other upgraders."""
    state = schema_state(conn)
    if migration.name in state.applied:
        return False
    if state.pending[0] != migration:
        raise LandscapeError(f"cannot apply {migration.name} to a landscape at schema {state.version}")
    ledger = schema.migrations_ledger
    ledger.create(conn, checkfirst=True)
    recorded = set(conn.execute(select(ledger.c.name)).scalars())
    # A database from before the ledger has 0001_initial without a record of when, or by which elspeth.
    missing = [{"name": name} for name in state.applied if name not in recorded]
    if missing:
        conn.execute(ledger.insert(), missing)
    migration.apply(conn)
    conn.execute(ledger.insert().values(name=migration.name, applied_at=time.time(), elspeth_version=__version__))
    meta = schema.meta
    conn.execute(meta.delete().where(meta.c.key == "schema_version"))
    conn.execute(meta.insert().values(key="schema_version", value=str(len(state.applied) + 1)))
    return True
