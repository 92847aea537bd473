"""Migration 0003_node_state_outputs: a transform step's output kept when it differs from its input.

Adds two nullable columns at the end of `node_states`: `output_json` (the canonical JSON the state's
`output_hash` is taken from) and `output_ref` (its payload-store reference when it is too big to keep
inline). States recorded before this migration have neither: `explain` and `report` show their hashes only.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, String, Text

from elspeth.landscape.migrations.operations import add_column

NAME = "0003_node_state_outputs"


def apply(conn: Connection) -> None:
    add_column(conn, "node_states", Column("output_json", Text))
    add_column(conn, "node_states", Column("output_ref", String(64)))
