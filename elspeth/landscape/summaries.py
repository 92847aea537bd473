"""Small read-only summaries of a run (what `elspeth run` prints at the end)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from elspeth.landscape import schema


def outcome_counts(conn: Connection, run_id: str) -> dict[str, int]:
    o = schema.token_outcomes
    query = select(o.c.outcome, func.count()).where(o.c.run_id == run_id).group_by(o.c.outcome)
    return {outcome: count for outcome, count in conn.execute(query).all()}


def row_count(conn: Connection, run_id: str) -> int:
    r = schema.rows
    return conn.execute(select(func.count()).select_from(r).where(r.c.run_id == run_id)).scalar_one()


def final_artifacts(conn: Connection, run_id: str) -> list[tuple[str, str, str, int, int]]:
    """(sink node_id, uri, content_hash, size, row_count) of each sink's latest artifact."""
    a = schema.artifacts
    latest = (
        select(a.c.node_id, func.max(a.c.artifact_id).label("artifact_id"))
        .where(a.c.run_id == run_id)
        .group_by(a.c.node_id)
        .subquery()
    )
    query = (
        select(a.c.node_id, a.c.uri, a.c.content_hash, a.c.size, a.c.row_count)
        .join(latest, (a.c.node_id == latest.c.node_id) & (a.c.artifact_id == latest.c.artifact_id))
        .where(a.c.run_id == run_id)
        .order_by(a.c.node_id)
    )
    return [tuple(r) for r in conn.execute(query).all()]  # type: ignore[misc]
