"""Sending the recorder's buffered rows to the database, each dialect its fastest way, inside the open
transaction: the recorder commits.

One executemany per table of an INSERT compiled once, the rows handed straight to the driver (SQLAlchemy's
per-row parameter processing costs more than the database's insert itself, and these columns need no
conversion); on SQLite with the flush's constants in the statement, see sqlite_inserts.py. PostgreSQL
through psycopg: COPY, see postgres_copy.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

Rows = Sequence[Sequence[Any]]
"""Rows of one table, each a sequence of values in the table's column order (schema.py)."""

Inserter = Callable[[Sequence[tuple[Table, Rows]]], None]
"""insert([(table, rows), ...]): one flush of the recorder's buffer, parent tables before their children."""


def inserter(conn: Connection) -> Inserter:
    """How `conn` inserts many rows of the Landscape's tables at once."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        from elspeth.landscape.postgres_copy import CopyInserter

        return CopyInserter(conn)
    if conn.dialect.name == "sqlite":
        from elspeth.landscape.sqlite_inserts import sqlite_inserter

        return sqlite_inserter(conn)
    return _executemany(conn)


def _executemany(conn: Connection) -> Inserter:
    compiled: dict[Table, tuple[str, Callable[[Sequence[Any]], Any]]] = {}

    def insert(flush: Sequence[tuple[Table, Rows]]) -> None:
        for table, rows in flush:
            if table not in compiled:
                compiled[table] = _compiled_insert(table, conn)
            sql, arrange = compiled[table]
            conn.exec_driver_sql(sql, list(map(arrange, rows)))

    return insert


def _compiled_insert(table: Table, conn: Connection) -> tuple[str, Callable[[Sequence[Any]], Any]]:
    """The INSERT for `table` compiled for this dialect, and how to turn one row into the driver's parameters."""
    columns = [c.name for c in table.columns]
    compiled = table.insert().compile(dialect=conn.dialect)
    if compiled.positional and list(compiled.positiontup or ()) == columns:
        return str(compiled), tuple
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup or ()]
        return str(compiled), lambda values: tuple(values[i] for i in order)
    return str(compiled), lambda values: dict(zip(columns, values, strict=True))
