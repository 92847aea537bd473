"""Migration 0002_purges: retention. Bodies of old runs may be purged (`elspeth purge`), hashes kept.

Adds `purges`, one record per purged run; lets the columns that hold row and call bodies be NULL (rows and
batch members' payload_json), and drops the two checks that demanded a body (a token rebuildable from
its own payload, a call with a request body): a purged run keeps only their hashes. Unpurged runs still
always record them; the conformance kit's sweep checks it.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Float,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
)

from elspeth.landscape.migrations import m0001_initial
from elspeth.landscape.migrations.operations import reshape_table

NAME = "0002_purges"


def _drop_check(table: Table, name: str) -> Table:
    (check,) = (c for c in table.constraints if isinstance(c, CheckConstraint) and c.name == name)
    table.constraints.discard(check)
    return table


def build() -> MetaData:
    """0001's tables with this migration's changes, in a MetaData of their own (see m0001_initial.build)."""
    metadata = m0001_initial.build()
    metadata.tables["rows"].c.payload_json.nullable = True
    metadata.tables["batch_members"].c.payload_json.nullable = True
    _drop_check(metadata.tables["tokens"], "ck_token_rebuildable")
    _drop_check(metadata.tables["calls"], "ck_call_has_request")
    Table(
        "purges",
        metadata,
        Column("run_id", String(64), primary_key=True),
        Column("purged_at", Float, nullable=False),
        Column("cutoff", Float),
        Column("purged_by", String(128), nullable=False),
        Column("elspeth_version", String(32), nullable=False),
        Column("rows_cleared", Integer, nullable=False),
        Column("tokens_cleared", Integer, nullable=False),
        Column("batch_members_cleared", Integer, nullable=False),
        Column("calls_cleared", Integer, nullable=False),
        Column("payload_files_removed", Integer, nullable=False),
        ForeignKeyConstraint(["run_id"], ["runs.run_id"], deferrable=True, initially="DEFERRED"),
        sqlite_with_rowid=False,
    )
    return metadata


def apply(conn: Connection) -> None:
    tables = build().tables
    reshape_table(conn, tables["rows"], ["ALTER TABLE rows ALTER COLUMN payload_json DROP NOT NULL"])
    reshape_table(conn, tables["batch_members"], ["ALTER TABLE batch_members ALTER COLUMN payload_json DROP NOT NULL"])
    reshape_table(conn, tables["tokens"], ["ALTER TABLE tokens DROP CONSTRAINT ck_token_rebuildable"])
    reshape_table(conn, tables["calls"], ["ALTER TABLE calls DROP CONSTRAINT ck_call_has_request"])
    tables["purges"].create(conn)
