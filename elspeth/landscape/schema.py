"""The Landscape's tables (SQLAlchemy Core).

Every table below `runs` is keyed by (run_id, local id) so that runs sharing one PostgreSQL database never
collide, and every reference is a declared foreign key. Foreign keys are DEFERRABLE INITIALLY DEFERRED:
the recorder writes in batches, table by table, and the database checks every reference at commit.
On SQLite the tables are WITHOUT ROWID: the composite primary key is the table's own b-tree, which halves
the work of each insert on the hot path.
Invariants the database can hold by itself are constraints here, not code elsewhere: one terminal outcome
per token (primary key), call_index unique per state (primary key), a batch past draft has a trigger and a
flush state (check).
The schema changes only through migrations (landscape/migrations/); a test proves they add up to this file.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from elspeth.landscape.statuses import (
    BatchStatus,
    CallStatus,
    RunStatus,
    StateStatus,
    TokenOutcome,
    TriggerReason,
)

metadata = MetaData()

RUN_ID = String(64)
NODE_ID = String(128)
HASH = String(64)


def _fk(columns: list[str], target: str, target_columns: list[str]) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        columns,
        [f"{target}.{c}" for c in target_columns],
        deferrable=True,
        initially="DEFERRED",
    )


def _run_fk() -> ForeignKeyConstraint:
    return _fk(["run_id"], "runs", ["run_id"])


def _node_fk(column: str = "node_id") -> ForeignKeyConstraint:
    return _fk(["run_id", column], "nodes", ["run_id", "node_id"])


def _state_fk(column: str = "state_id") -> ForeignKeyConstraint:
    return _fk(["run_id", column], "node_states", ["run_id", "state_id"])


def _token_fk(column: str = "token_id") -> ForeignKeyConstraint:
    return _fk(["run_id", column], "tokens", ["run_id", "token_id"])


def _batch_fk(column: str = "batch_id") -> ForeignKeyConstraint:
    return _fk(["run_id", column], "batches", ["run_id", "batch_id"])


def _without_nulls(name: str, column: str) -> Index:
    """An index on (run_id, column) of the rows where `column` is set: every lookup through it names `column`."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, "run_id", column, sqlite_where=where, postgresql_where=where)


def _one_of(column: str, values: type[enum.StrEnum], nullable: bool = False) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    condition = f"{column} IN ({allowed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"ck_{column}_enum")


meta = Table(
    "elspeth_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

migrations_ledger = Table(
    "elspeth_migrations",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("applied_at", Float),
    Column("elspeth_version", String(32)),
    # Both NULL for 0001_initial in a database created before the ledger: nobody recorded when, or by whom.
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("settings_json", Text, nullable=False),
    Column("settings_hash", HASH, nullable=False),
    Column("settings_path", Text),
    Column("elspeth_version", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(128)),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    _one_of("status", RunStatus),
)

nodes = Table(
    "nodes",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("node_id", NODE_ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("plugin", String(128), nullable=False),
    Column("distribution", String(128), nullable=False),
    Column("plugin_version", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("config_json", Text, nullable=False),
    Column("config_hash", HASH, nullable=False),
    _run_fk(),
    sqlite_with_rowid=False,
)

rows = Table(
    "rows",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("row_id", Integer, primary_key=True, autoincrement=False),
    # NULL once the run is purged (see purges); payload_hash stays.
    Column("payload_json", Text),
    Column("payload_hash", HASH),
    Column("quarantined", Boolean, nullable=False),
    _run_fk(),
    sqlite_with_rowid=False,
)

tokens = Table(
    "tokens",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("token_id", Integer, primary_key=True, autoincrement=False),
    Column("row_id", Integer),
    Column("parent_token_id", Integer),
    Column("origin_node_id", NODE_ID, nullable=False),
    Column("origin_batch_id", Integer),
    Column("payload_json", Text),
    _fk(["run_id", "row_id"], "rows", ["run_id", "row_id"]),
    _token_fk("parent_token_id"),
    _node_fk("origin_node_id"),
    _batch_fk("origin_batch_id"),
    CheckConstraint("row_id IS NOT NULL OR origin_batch_id IS NOT NULL", name="ck_token_has_origin"),
    # A row's tokens are looked up by row (explain, the sweep); children by parent. Without the second, a
    # deferred foreign key pending in a transaction makes SQLite scan all tokens on every insert. Each holds
    # only the tokens that have its column: PostgreSQL could otherwise check references to tokens through
    # them, reading every token of the run each time (migration 0005); a source row's token has no parent.
    _without_nulls("ix_tokens_row", "row_id"),
    _without_nulls("ix_tokens_parent", "parent_token_id"),
    sqlite_with_rowid=False,
)

node_states = Table(
    "node_states",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("state_id", Integer, primary_key=True, autoincrement=False),
    Column("node_id", NODE_ID, nullable=False),
    Column("token_id", Integer),
    Column("operation", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_hash", HASH),
    Column("output_hash", HASH),
    Column("error_json", Text),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    # A process state's output row, kept only where it differs from its input: its canonical JSON (the
    # very bytes output_hash is the hash of), inline, or by payload-store reference when large.
    Column("output_json", Text),
    Column("output_ref", HASH),
    _node_fk(),
    _token_fk(),
    _one_of("status", StateStatus),
    CheckConstraint("(status = 'open') = (ended_at IS NULL)", name="ck_state_open_iff_not_ended"),
    CheckConstraint("status != 'failed' OR error_json IS NOT NULL", name="ck_state_failure_has_error"),
    _without_nulls("ix_node_states_token", "token_id"),  # a state by token; see tokens' indexes
    sqlite_with_rowid=False,
)

calls = Table(
    "calls",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("state_id", Integer, primary_key=True, autoincrement=False),
    Column("call_index", Integer, primary_key=True, autoincrement=False),
    Column("call_type", String(32), nullable=False),
    Column("provider", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("request_json", Text),
    Column("request_ref", HASH),
    Column("request_hash", HASH, nullable=False),
    Column("response_json", Text),
    Column("response_ref", HASH),
    Column("response_hash", HASH),
    Column("error_json", Text),
    Column("latency_ms", Float),
    Column("created_at", Float, nullable=False),
    _state_fk(),
    _one_of("status", CallStatus),
    CheckConstraint("call_index >= 0", name="ck_call_index_natural"),
    CheckConstraint("status != 'error' OR error_json IS NOT NULL", name="ck_call_error_recorded"),
    sqlite_with_rowid=False,
)

batches = Table(
    "batches",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("batch_id", Integer, primary_key=True, autoincrement=False),
    Column("node_id", NODE_ID, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger", String(16)),
    Column("flush_state_id", Integer),
    Column("retry_of", Integer),
    Column("checkpoint_json", Text),
    Column("error_json", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    _node_fk(),
    _state_fk("flush_state_id"),
    _batch_fk("retry_of"),
    _one_of("status", BatchStatus),
    _one_of("trigger", TriggerReason, nullable=True),
    CheckConstraint(
        "status = 'draft' OR (trigger IS NOT NULL AND flush_state_id IS NOT NULL)",
        name="ck_batch_flush_recorded",
    ),
    CheckConstraint("status = 'executing' OR checkpoint_json IS NULL", name="ck_batch_pending_is_executing"),
    sqlite_with_rowid=False,
)

batch_members = Table(
    "batch_members",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("batch_id", Integer, primary_key=True, autoincrement=False),
    Column("ordinal", Integer, primary_key=True, autoincrement=False),
    Column("token_id", Integer, nullable=False),
    Column("payload_json", Text),
    _batch_fk(),
    _token_fk(),
    Index("ux_batch_members_token", "run_id", "batch_id", "token_id", unique=True),
    Index("ix_batch_members_token", "run_id", "token_id"),
    sqlite_with_rowid=False,
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("artifact_id", Integer, primary_key=True, autoincrement=False),
    Column("node_id", NODE_ID, nullable=False),
    Column("state_id", Integer, nullable=False),
    Column("uri", Text, nullable=False),
    Column("content_hash", HASH, nullable=False),
    Column("size", Integer, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    _node_fk(),
    _state_fk(),
    # What a token outcome's reference names (see token_outcomes): an artifact together with its sink.
    Index("ux_artifacts_node", "run_id", "artifact_id", "node_id", unique=True),
    sqlite_with_rowid=False,
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("checkpoint_id", Integer, primary_key=True, autoincrement=False),
    Column("node_id", NODE_ID, nullable=False),
    Column("artifact_id", Integer, nullable=False),
    Column("resume_json", Text, nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    _node_fk(),
    _fk(["run_id", "artifact_id"], "artifacts", ["run_id", "artifact_id"]),
    sqlite_with_rowid=False,
)

token_outcomes = Table(
    "token_outcomes",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("token_id", Integer, primary_key=True, autoincrement=False),
    Column("outcome", String(16), nullable=False),
    Column("node_id", NODE_ID, nullable=False),
    Column("sink_node_id", NODE_ID),
    Column("artifact_id", Integer),
    Column("batch_id", Integer),
    Column("reason_json", Text),
    Column("recorded_at", Float, nullable=False),
    _token_fk(),
    _node_fk(),
    # One reference for the artifact and the sink: the sink is the node that wrote that artifact. It says
    # more than a reference to each, and PostgreSQL checks it with one query per outcome instead of two.
    # ck_outcome_sink_has_artifact keeps the pair whole: a half-NULL key would not be checked at all.
    _fk(["run_id", "artifact_id", "sink_node_id"], "artifacts", ["run_id", "artifact_id", "node_id"]),
    _batch_fk(),
    _one_of("outcome", TokenOutcome),
    CheckConstraint("(sink_node_id IS NULL) = (artifact_id IS NULL)", name="ck_outcome_sink_has_artifact"),
    CheckConstraint("outcome NOT IN ('completed', 'routed') OR artifact_id IS NOT NULL", name="ck_outcome_written"),
    CheckConstraint("outcome != 'consumed' OR batch_id IS NOT NULL", name="ck_outcome_consumed_batch"),
    sqlite_with_rowid=False,
)

purges = Table(
    "purges",
    metadata,
    Column("run_id", RUN_ID, primary_key=True),
    Column("purged_at", Float, nullable=False),
    # The --older-than boundary (epoch seconds) the run ended before; NULL when the run was named.
    Column("cutoff", Float),
    Column("purged_by", String(128), nullable=False),
    Column("elspeth_version", String(32), nullable=False),
    Column("rows_cleared", Integer, nullable=False),
    Column("tokens_cleared", Integer, nullable=False),
    Column("batch_members_cleared", Integer, nullable=False),
    Column("calls_cleared", Integer, nullable=False),
    Column("payload_files_removed", Integer, nullable=False),
    _run_fk(),
    sqlite_with_rowid=False,
)
