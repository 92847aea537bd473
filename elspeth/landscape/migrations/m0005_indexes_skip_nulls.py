"""Migration 0005_indexes_skip_nulls: the secondary indexes of tokens and node_states hold only the rows that
have the column they are for: tokens by row (row_id set), tokens by parent (parent_token_id set), states by
token (token_id set, not a sink's or a source's operation).

Every lookup through them names that column, so they serve it as before. What they no longer serve is
PostgreSQL's check of a reference to a token or a state, a query on (run_id, id): planned while the table
is small (a new Landscape, a run's first commits), it cost the same through any index starting with
run_id, and the plan it picked was kept for the connection's life. Through ix_tokens_parent it read every
token of the run for each reference, quadratic in the run's size: 33 s of server CPU for 30,000 rows
flushed every 1,000 entries, against 1.4 s by primary key. A partial index cannot answer that query, so the
check always goes by primary key. Source tokens are no longer written into ix_tokens_parent at all.
"""

from __future__ import annotations

from sqlalchemy import Connection, Index, MetaData, Table, text

from elspeth.landscape.migrations import m0004_outcome_artifact_key

NAME = "0005_indexes_skip_nulls"


def _without_nulls(table: Table, name: str, column: str) -> None:
    where = text(f"{column} IS NOT NULL")
    Index(name, table.c.run_id, table.c[column], sqlite_where=where, postgresql_where=where)


def build() -> MetaData:
    """0004's tables with this migration's indexes."""
    metadata = m0004_outcome_artifact_key.build()
    tokens, states = metadata.tables["tokens"], metadata.tables["node_states"]
    tokens.indexes.clear()
    states.indexes.clear()
    _without_nulls(tokens, "ix_tokens_row", "row_id")
    _without_nulls(tokens, "ix_tokens_parent", "parent_token_id")
    _without_nulls(states, "ix_node_states_token", "token_id")
    return metadata


def apply(conn: Connection) -> None:
    tables = build().tables
    for table in (tables["tokens"], tables["node_states"]):
        for index in table.indexes:
            conn.exec_driver_sql(f"DROP INDEX {conn.dialect.identifier_preparer.quote(str(index.name))}")
            index.create(conn)
