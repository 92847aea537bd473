"""Migration 0004_outcome_artifact_key: a token outcome names its artifact and that artifact's sink as one key.

`token_outcomes` referred to its sink (a node) and to its artifact separately. One reference,
(run_id, artifact_id, sink_node_id) -> artifacts (run_id, artifact_id, node_id), holds both and says more:
the outcome's sink is the node that wrote the artifact. PostgreSQL checks each reference with a query of its
own per row, so this is one query fewer for every row a sink writes. The key it refers to is made unique by a
new index on artifacts (`ux_artifacts_node`); the artifact_id alone stays the primary key.
"""

from __future__ import annotations

from sqlalchemy import Connection, ForeignKeyConstraint, Index, MetaData, Table

from elspeth.landscape.migrations import m0002_purges
from elspeth.landscape.migrations.operations import reshape_table

NAME = "0004_outcome_artifact_key"

# PostgreSQL's names for the references: those it gave the unnamed ones of 0001, and the one it gives the
# new key when a table is created from schema.py.
_POSTGRES = [
    "ALTER TABLE token_outcomes DROP CONSTRAINT token_outcomes_run_id_sink_node_id_fkey",
    "ALTER TABLE token_outcomes DROP CONSTRAINT token_outcomes_run_id_artifact_id_fkey",
    "ALTER TABLE token_outcomes ADD CONSTRAINT token_outcomes_run_id_artifact_id_sink_node_id_fkey "
    "FOREIGN KEY (run_id, artifact_id, sink_node_id) REFERENCES artifacts (run_id, artifact_id, node_id) "
    "DEFERRABLE INITIALLY DEFERRED",
]


def _drop_fk(table: Table, columns: list[str]) -> None:
    (fk,) = (c for c in table.foreign_key_constraints if list(c.column_keys) == columns)
    table.constraints.discard(fk)


def build() -> MetaData:
    """0002's tables (0003 added columns to node_states only) with this migration's changes."""
    metadata = m0002_purges.build()
    artifacts, outcomes = metadata.tables["artifacts"], metadata.tables["token_outcomes"]
    Index("ux_artifacts_node", artifacts.c.run_id, artifacts.c.artifact_id, artifacts.c.node_id, unique=True)
    _drop_fk(outcomes, ["run_id", "sink_node_id"])
    _drop_fk(outcomes, ["run_id", "artifact_id"])
    outcomes.append_constraint(
        ForeignKeyConstraint(
            ["run_id", "artifact_id", "sink_node_id"],
            ["artifacts.run_id", "artifacts.artifact_id", "artifacts.node_id"],
            deferrable=True,
            initially="DEFERRED",
        )
    )
    return metadata


def apply(conn: Connection) -> None:
    tables = build().tables
    # The index first: the new reference needs a unique key to refer to (and SQLite's check before the commit).
    (key,) = tables["artifacts"].indexes
    key.create(conn)
    reshape_table(conn, tables["token_outcomes"], _POSTGRES)
