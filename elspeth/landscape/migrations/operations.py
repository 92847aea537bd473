"""The schema changes migrations are made of, on SQLite and PostgreSQL alike.

A migration runs inside its own transaction (see migrations/__init__.py); these only emit statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table
from sqlalchemy.schema import CreateColumn, CreateTable


def add_column(conn: Connection, table: str, column: Column[Any]) -> None:
    """A new column at the end of `table`. Give it a default or make it nullable: existing rows get it."""
    preparer = conn.dialect.identifier_preparer
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {spec}")


def reshape_table(conn: Connection, new: Table, postgres: Sequence[str]) -> None:
    """Bring an existing table to the shape `new` declares, same columns, other nullability or constraints.
    PostgreSQL alters it in place with the `postgres` statements; SQLite, which cannot alter a column or a
    constraint, rebuilds the table: create it under a temporary name, copy every row, drop the old one,
    rename, and create its indexes again. Foreign keys elsewhere name the table, not the old copy, so they
    hold (the caller has foreign keys off and checks them before committing)."""
    if conn.dialect.name != "sqlite":
        for statement in postgres:
            conn.exec_driver_sql(statement)
        return
    preparer = conn.dialect.identifier_preparer
    name = preparer.format_table(new)
    temporary = preparer.quote(f"_new_{new.name}")
    create = str(CreateTable(new).compile(dialect=conn.dialect)).strip()
    head = f"CREATE TABLE {name} ("
    if not create.startswith(head):
        raise AssertionError(f"unexpected DDL for {new.name}: {create[:80]!r}")
    conn.exec_driver_sql(f"CREATE TABLE {temporary} (" + create[len(head) :])
    columns = ", ".join(preparer.quote(c.name) for c in new.columns)
    conn.exec_driver_sql(f"INSERT INTO {temporary} ({columns}) SELECT {columns} FROM {name}")
    conn.exec_driver_sql(f"DROP TABLE {name}")
    conn.exec_driver_sql(f"ALTER TABLE {temporary} RENAME TO {name}")
    for index in new.indexes:
        index.create(conn)
