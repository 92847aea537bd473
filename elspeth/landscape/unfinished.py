"""What a crashed or interrupted run left unfinished, read from the Landscape alone.

Unfinished work is defined by tokens without a terminal outcome, never by a row-index boundary: a token
routed to a sink that failed is unfinished even when later rows finished at another sink.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import frozen
from sqlalchemy import Connection, and_, exists, select, text, update

from elspeth import canonical
from elspeth.landscape import schema
from elspeth.landscape.statuses import BatchStatus, StateStatus


@frozen
class UnfinishedBatch:
    batch_id: int
    node_id: str
    status: BatchStatus
    attempt: int
    checkpoint: dict[str, Any] | None
    members: tuple[tuple[int, dict[str, Any]], ...]
    """(token_id, row) in arrival order."""

    @property
    def last_token(self) -> int:
        return max(token for token, _ in self.members)


@frozen
class UnfinishedToken:
    token_id: int
    row_id: int | None
    origin_node_id: str
    row: dict[str, Any]
    quarantined: bool


def close_interrupted_states(conn: Connection, run_id: str, now: float) -> int:
    """States a killed process left open are history now: close them as failed."""
    table = schema.node_states
    result = conn.execute(
        update(table)
        .where(table.c.run_id == run_id, table.c.status == StateStatus.OPEN)
        .values(
            status=StateStatus.FAILED,
            ended_at=now,
            error_json=canonical.dumps(
                {"type": "Interrupted", "message": "the process ended before this state closed"}
            ),
        )
    )
    return result.rowcount or 0


def prepare_recovery_queries(conn: Connection) -> None:
    """PostgreSQL plans the recovery queries from its table statistics, which may not know the run yet
    (autovacuum has not caught up with a run that just wrote its rows): it then expects one row for the run
    and scans all of its outcomes once per token. Fresh statistics keep a resume proportional to its work."""
    if conn.dialect.name == "postgresql":
        tables = ", ".join(t.name for t in (schema.tokens, schema.token_outcomes, schema.rows, schema.batch_members))
        conn.execute(text(f"ANALYZE {tables}"))


def _members_lack_outcomes(run_id: str) -> Any:
    m, o = schema.batch_members, schema.token_outcomes
    return exists(
        select(m.c.token_id)
        .outerjoin(o, and_(o.c.run_id == m.c.run_id, o.c.token_id == m.c.token_id))
        .where(m.c.run_id == run_id, m.c.batch_id == schema.batches.c.batch_id, o.c.token_id.is_(None))
    )


def unfinished_batches(conn: Connection, run_id: str) -> list[UnfinishedBatch]:
    """Draft and executing batches, and failed batches whose members never got an outcome and that no
    later batch retried."""
    b = schema.batches
    retry = b.alias("retry")
    is_retried = exists(select(retry.c.batch_id).where(retry.c.run_id == run_id, retry.c.retry_of == b.c.batch_id))
    query = (
        select(b.c.batch_id, b.c.node_id, b.c.status, b.c.attempt, b.c.checkpoint_json)
        .where(b.c.run_id == run_id)
        .where(
            b.c.status.in_([BatchStatus.DRAFT, BatchStatus.EXECUTING])
            | ((b.c.status == BatchStatus.FAILED) & ~is_retried & _members_lack_outcomes(run_id))
        )
        .order_by(b.c.batch_id)
    )
    found = []
    m = schema.batch_members
    for batch_id, node_id, status, attempt, checkpoint_json in conn.execute(query).all():
        members = conn.execute(
            select(m.c.token_id, m.c.payload_json)
            .where(m.c.run_id == run_id, m.c.batch_id == batch_id)
            .order_by(m.c.ordinal)
        ).all()
        found.append(
            UnfinishedBatch(
                batch_id=batch_id,
                node_id=node_id,
                status=BatchStatus(status),
                attempt=attempt,
                checkpoint=None if checkpoint_json is None else canonical.loads(checkpoint_json),
                members=tuple((token_id, canonical.loads(payload)) for token_id, payload in members),
            )
        )
    return found


def unfinished_tokens(conn: Connection, run_id: str, exclude: set[int]) -> Iterator[UnfinishedToken]:
    """Tokens without a terminal outcome, oldest first, with the row each must continue with. Streams:
    a large backlog is never held in memory at once."""
    t, o, r = schema.tokens, schema.token_outcomes, schema.rows
    query = (
        select(t.c.token_id, t.c.row_id, t.c.origin_node_id, t.c.payload_json, r.c.payload_json, r.c.quarantined)
        .outerjoin(o, and_(o.c.run_id == t.c.run_id, o.c.token_id == t.c.token_id))
        .outerjoin(r, and_(r.c.run_id == t.c.run_id, r.c.row_id == t.c.row_id))
        .where(t.c.run_id == run_id, o.c.token_id.is_(None))
        .order_by(t.c.token_id)
        .execution_options(yield_per=1000)
    )
    for token_id, row_id, origin, token_payload, row_payload, quarantined in conn.execute(query):
        if token_id in exclude:
            continue
        payload = token_payload if token_payload is not None else row_payload
        yield UnfinishedToken(
            token_id=token_id,
            row_id=row_id,
            origin_node_id=origin,
            row=canonical.loads(payload),
            quarantined=bool(quarantined) and token_payload is None,
        )


def latest_sink_resume(conn: Connection, run_id: str, node_id: str) -> dict[str, Any]:
    c = schema.checkpoints
    resume_json = conn.execute(
        select(c.c.resume_json)
        .where(c.c.run_id == run_id, c.c.node_id == node_id)
        .order_by(c.c.checkpoint_id.desc())
        .limit(1)
    ).scalar()
    return {} if resume_json is None else canonical.loads(resume_json)
