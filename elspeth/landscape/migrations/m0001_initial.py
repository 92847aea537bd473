"""Migration 0001_initial: the first released schema, written out and frozen.

This is the Landscape as elspeth created it before migrations were named (the last such commit is
c46b844); databases of that age say `schema_version = 1` in elspeth_meta and have no elspeth_migrations
table. Never edit it: the live schema (schema.py) moves on through later migrations, and
tests/landscape/test_migrations.py proves that these plus the later ones add up to it. Enum values are
written out for the same reason: the enums in statuses.py may grow.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAME = "0001_initial"


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


def _one_of(column: str, *values: str, nullable: bool = False) -> CheckConstraint:
    condition = f"{column} IN ({', '.join(repr(v) for v in values)})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"ck_{column}_enum")


def build() -> MetaData:
    """The tables, in a MetaData of their own for each call: SQLAlchemy marks a foreign key it added with ALTER
    (PostgreSQL, for the cycle tokens -> batches -> node_states -> tokens) never to be written inline again,
    so one MetaData used for PostgreSQL and then SQLite would leave SQLite without those keys."""
    metadata = MetaData()
    Table(
        "elspeth_meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )

    Table(
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
        _one_of("status", "running", "completed", "failed", "interrupted"),
    )

    Table(
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

    Table(
        "rows",
        metadata,
        Column("run_id", RUN_ID, primary_key=True),
        Column("row_id", Integer, primary_key=True, autoincrement=False),
        Column("payload_json", Text, nullable=False),
        Column("payload_hash", HASH),
        Column("quarantined", Boolean, nullable=False),
        _run_fk(),
        sqlite_with_rowid=False,
    )

    Table(
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
        CheckConstraint("row_id IS NOT NULL OR payload_json IS NOT NULL", name="ck_token_rebuildable"),
        Index("ix_tokens_row", "run_id", "row_id"),
        Index("ix_tokens_parent", "run_id", "parent_token_id"),
        sqlite_with_rowid=False,
    )

    Table(
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
        _node_fk(),
        _token_fk(),
        _one_of("status", "open", "completed", "failed"),
        CheckConstraint("(status = 'open') = (ended_at IS NULL)", name="ck_state_open_iff_not_ended"),
        CheckConstraint("status != 'failed' OR error_json IS NOT NULL", name="ck_state_failure_has_error"),
        Index("ix_node_states_token", "run_id", "token_id"),
        sqlite_with_rowid=False,
    )

    Table(
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
        _one_of("status", "ok", "error"),
        CheckConstraint("call_index >= 0", name="ck_call_index_natural"),
        CheckConstraint("request_json IS NOT NULL OR request_ref IS NOT NULL", name="ck_call_has_request"),
        CheckConstraint("status != 'error' OR error_json IS NOT NULL", name="ck_call_error_recorded"),
        sqlite_with_rowid=False,
    )

    Table(
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
        _one_of("status", "draft", "executing", "completed", "failed"),
        _one_of("trigger", "count", "timeout", "end_of_source", "retry", nullable=True),
        CheckConstraint(
            "status = 'draft' OR (trigger IS NOT NULL AND flush_state_id IS NOT NULL)",
            name="ck_batch_flush_recorded",
        ),
        CheckConstraint("status = 'executing' OR checkpoint_json IS NULL", name="ck_batch_pending_is_executing"),
        sqlite_with_rowid=False,
    )

    Table(
        "batch_members",
        metadata,
        Column("run_id", RUN_ID, primary_key=True),
        Column("batch_id", Integer, primary_key=True, autoincrement=False),
        Column("ordinal", Integer, primary_key=True, autoincrement=False),
        Column("token_id", Integer, nullable=False),
        Column("payload_json", Text, nullable=False),
        _batch_fk(),
        _token_fk(),
        Index("ux_batch_members_token", "run_id", "batch_id", "token_id", unique=True),
        Index("ix_batch_members_token", "run_id", "token_id"),
        sqlite_with_rowid=False,
    )

    Table(
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
        sqlite_with_rowid=False,
    )

    Table(
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

    Table(
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
        _node_fk("sink_node_id"),
        _fk(["run_id", "artifact_id"], "artifacts", ["run_id", "artifact_id"]),
        _batch_fk(),
        _one_of("outcome", "completed", "routed", "failed", "quarantined", "filtered", "expanded", "consumed"),
        CheckConstraint("(sink_node_id IS NULL) = (artifact_id IS NULL)", name="ck_outcome_sink_has_artifact"),
        CheckConstraint("outcome NOT IN ('completed', 'routed') OR artifact_id IS NOT NULL", name="ck_outcome_written"),
        CheckConstraint("outcome != 'consumed' OR batch_id IS NOT NULL", name="ck_outcome_consumed_batch"),
        sqlite_with_rowid=False,
    )

    return metadata


def apply(conn: Connection) -> None:
    build().create_all(conn)
