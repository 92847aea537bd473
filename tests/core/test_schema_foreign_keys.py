"""Every foreign key of the Landscape can be searched from its child side, or has a written reason not to.

A database searches a child table by its referencing columns when a parent row is deleted or re-keyed and,
in SQLite, on every insert into the parent table while a deferred reference is pending. Without an index
that search is a scan of the whole child table: issue 11's aggregation went quadratic this way (53 s of
CPU for 40,000 rows). The Landscape never deletes or re-keys a row, and the recorder never leaves a
reference pending (tests/engine/test_no_pending_references.py), so an index whose only use would be that
search costs an insert on the hot path for nothing: such keys are listed below with their reasons.
"""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, Table

from elspeth.landscape import schema

HOT = "one entry per row on the hot path"
UNINDEXED: dict[tuple[str, tuple[str, ...]], str] = {
    ("tokens", ("run_id", "origin_node_id")): f"{HOT}; no query looks tokens up by node",
    ("tokens", ("run_id", "origin_batch_id")): (
        "one entry per token; explain finds a batch's outputs while reading the run's tokens by primary key"
    ),
    ("node_states", ("run_id", "node_id")): "one entry per row and transform on the hot path; read by token or id",
    ("token_outcomes", ("run_id", "node_id")): f"{HOT}; outcomes are read by token",
    ("token_outcomes", ("run_id", "artifact_id", "sink_node_id")): f"{HOT}; outcomes are read by token",
    ("token_outcomes", ("run_id", "batch_id")): f"{HOT}; outcomes are read by token",
    ("batches", ("run_id", "node_id")): "a batch is read by id",
    ("batches", ("run_id", "flush_state_id")): "a batch is read by id",
    ("batches", ("run_id", "retry_of")): "read by id; resume looks for a retry only of failed batches",
    ("artifacts", ("run_id", "node_id")): "one artifact per sink flush; read by id",
    ("artifacts", ("run_id", "state_id")): "one artifact per sink flush; read by id",
    ("checkpoints", ("run_id", "node_id")): "one checkpoint per sink flush; resume reads the latest, by id",
    ("checkpoints", ("run_id", "artifact_id")): "one checkpoint per sink flush; read with its run",
}


def _key(fk: ForeignKeyConstraint) -> tuple[str, tuple[str, ...]]:
    assert isinstance(fk.table, Table)
    return fk.table.name, tuple(c.name for c in fk.columns)


def _searchable(table: Table, columns: tuple[str, ...]) -> bool:
    """True when `columns` (in any order) lead the primary key or an index, so a search by them is a seek."""
    leads = [[c.name for c in table.primary_key.columns]] + [[c.name for c in ix.columns] for ix in table.indexes]
    return any(set(lead[: len(columns)]) == set(columns) for lead in leads)


def _foreign_keys() -> list[ForeignKeyConstraint]:
    return [
        c for table in schema.metadata.tables.values() for c in table.constraints if isinstance(c, ForeignKeyConstraint)
    ]


def test_every_foreign_key_is_indexed_on_its_child_side_or_says_why_not():
    missing = [
        f"{table}({', '.join(columns)}) -> {fk.referred_table.name}: add "
        f"Index('ix_{table}_{columns[-1]}', {', '.join(repr(c) for c in columns)}) to the {table} table in "
        f"elspeth/landscape/schema.py, or list it in UNINDEXED here with the reason no search needs it"
        for fk in _foreign_keys()
        for table, columns in [_key(fk)]
        if not _searchable(fk.table, columns) and (table, columns) not in UNINDEXED
    ]
    assert not missing, "foreign keys whose referencing columns lead no index:\n" + "\n".join(missing)


def test_the_list_of_unindexed_foreign_keys_holds_only_foreign_keys_without_an_index():
    unindexed = {_key(fk) for fk in _foreign_keys() if not _searchable(fk.table, _key(fk)[1])}
    stale = sorted(set(UNINDEXED) - unindexed)
    assert not stale, f"UNINDEXED lists keys that are indexed or no longer exist; remove them: {stale}"
