"""Reading the Landscape back: runs, a run's overview, and one source row's full lineage.

Pure queries on a SQLAlchemy Connection returning attrs values; rendering is the CLI's business. A row's
lineage follows its tokens everywhere they went: children it fanned out into, and the outputs of every
aggregation batch it joined (and their children in turn).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen
from sqlalchemy import Connection, func, select

from elspeth.errors import ElspethError, LandscapeError
from elspeth.landscape import schema as t
from elspeth.landscape.retention import Purge, purge_of

ReadPayload = Callable[[str], bytes]
"""Reads a body from the payload store by reference (FilePayloadStore.get); raises LandscapeError when it is
gone (purged, or the store was not copied with the database)."""

PURGED = "purged"
_PREVIEW_CHARS = 120
_FIND_RUNS = "list the runs with 'elspeth runs' (add --landscape URL if the run used another landscape)"


@frozen
class RunInfo:
    run_id: str
    status: str
    attempt: int
    settings_hash: str
    settings_path: str | None
    elspeth_version: str
    started_at: float
    ended_at: float | None
    error: str | None
    rows: int
    purged_at: float | None
    """When its bodies were purged (see retention.py): from then on it is attributable only, by hashes."""


@frozen
class NodeInfo:
    node_id: str
    kind: str
    plugin: str
    distribution: str
    plugin_version: str
    position: int


@frozen
class ArtifactInfo:
    artifact_id: int
    node_id: str
    uri: str
    content_hash: str
    size: int
    row_count: int
    created_at: float


@frozen
class RunOverview:
    run: RunInfo
    nodes: list[NodeInfo]
    outcomes: dict[str, int]
    artifacts: list[ArtifactInfo]
    """The latest artifact of each sink: each flush's artifact describes everything stored so far."""
    flushes: int
    calls: int
    quarantined: int
    purge: Purge | None


@frozen
class TokenInfo:
    token_id: int
    row_id: int | None
    parent_token_id: int | None
    origin_node_id: str
    origin_batch_id: int | None
    payload: Any
    """The token's row where it is stored (children of an expansion or a batch); a row's first token has
    its source row's payload."""


@frozen
class CallInfo:
    state_id: int
    call_index: int
    call_type: str
    provider: str
    status: str
    request_hash: str
    response_hash: str | None
    request_preview: str
    response_preview: str | None
    error: Any
    latency_ms: float | None
    request: Any
    """The full request as recorded; None when its stored body is gone (see request_preview)."""
    response: Any


@frozen
class StateInfo:
    state_id: int
    node_id: str
    token_id: int | None
    operation: str
    attempt: int
    status: str
    input_hash: str | None
    output_hash: str | None
    error: Any
    started_at: float
    ended_at: float | None
    calls: list[CallInfo]
    output: Any
    """The output row, where the Landscape keeps it (a transform's output that differs from its input)."""
    output_status: str
    """"recorded" (in `output`), "unchanged" (the input), "purged" (kept once, its body gone since), "stored"
    (in the payload store, not read), "not recorded" (an expansion, a batch, an older run), or "none" (no
    output: failed, or not a transform)."""


@frozen
class BatchInfo:
    batch_id: int
    node_id: str
    attempt: int
    status: str
    trigger: str | None
    flush_state_id: int | None
    retry_of: int | None
    members: int
    """How many tokens the whole batch held."""
    row_tokens: list[int]
    """Which of them came from this row."""
    error: Any


@frozen
class OutcomeInfo:
    token_id: int
    outcome: str
    node_id: str
    sink_node_id: str | None
    batch_id: int | None
    reason: Any
    artifact: ArtifactInfo | None


@frozen
class RowLineage:
    run_id: str
    row_id: int
    payload: Any
    """None once the run is purged: payload_hash still names it."""
    payload_hash: str | None
    purged: bool
    quarantined: bool
    quarantine_reason: Any
    tokens: list[TokenInfo]
    states: list[StateInfo]
    batches: list[BatchInfo]
    outcomes: list[OutcomeInfo]


def _json(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _preview(
    text: str | None, ref: str | None, digest: str | None, read: ReadPayload | None, purged: bool
) -> str | None:
    if text is None and purged:
        return "(purged; its sha256 is kept)" if digest else None
    if text is None and ref is not None:
        body = _stored(ref, read)
        if body is None:
            return f"(stored payload {ref}, {PURGED})" if read is not None else f"(stored payload {ref})"
        text = body
    if text is None:
        return None
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _stored(ref: str, read: ReadPayload | None) -> str | None:
    if read is None:
        return None
    try:
        return read(ref).decode("utf-8", errors="replace")
    except LandscapeError:
        return None


def _value(text: str | None, ref: str | None, read: ReadPayload | None) -> Any:
    """A recorded JSON body, inline or from the payload store; None when there is none or it is gone."""
    if text is None and ref is not None:
        text = _stored(ref, read)
    return _json(text)


def _row_counts() -> Any:
    return select(t.rows.c.run_id, func.count().label("rows")).group_by(t.rows.c.run_id).subquery("row_counts")


def _run_query() -> Any:
    counts = _row_counts()
    r = t.runs.c
    return (
        select(
            r.run_id,
            r.status,
            r.attempt,
            r.settings_hash,
            r.settings_path,
            r.elspeth_version,
            r.started_at,
            r.ended_at,
            r.error,
            func.coalesce(counts.c.rows, 0).label("rows"),
            t.purges.c.purged_at,
        )
        .outerjoin(counts, counts.c.run_id == r.run_id)
        .outerjoin(t.purges, t.purges.c.run_id == r.run_id)
    )


def list_runs(conn: Connection) -> list[RunInfo]:
    """Every run, newest first."""
    rows = conn.execute(_run_query().order_by(t.runs.c.started_at.desc(), t.runs.c.run_id)).all()
    return [RunInfo(**row._mapping) for row in rows]


def get_run(conn: Connection, run_id: str) -> RunInfo:
    row = conn.execute(_run_query().where(t.runs.c.run_id == run_id)).first()
    if row is None:
        raise ElspethError(f"no run {run_id!r} in this landscape; {_FIND_RUNS}")
    return RunInfo(**row._mapping)


def run_overview(conn: Connection, run_id: str) -> RunOverview:
    run = get_run(conn, run_id)
    n = t.nodes.c
    nodes = [
        NodeInfo(
            node_id=row.node_id,
            kind=row.kind,
            plugin=row.plugin,
            distribution=row.distribution,
            plugin_version=row.plugin_version,
            position=row.position,
        )
        for row in conn.execute(select(t.nodes).where(n.run_id == run_id).order_by(n.position, n.node_id))
    ]
    o = t.token_outcomes.c
    outcomes = {
        row.outcome: row.n
        for row in conn.execute(
            select(o.outcome, func.count().label("n")).where(o.run_id == run_id).group_by(o.outcome).order_by(o.outcome)
        )
    }
    a = t.artifacts.c
    latest = select(func.max(a.artifact_id)).where(a.run_id == run_id).group_by(a.node_id).scalar_subquery()
    artifacts = _artifacts(
        conn, select(t.artifacts).where(a.run_id == run_id, a.artifact_id.in_(latest)).order_by(a.node_id)
    )
    flushes = conn.execute(select(func.count()).select_from(t.artifacts).where(a.run_id == run_id)).scalar_one()
    calls = conn.execute(select(func.count()).select_from(t.calls).where(t.calls.c.run_id == run_id)).scalar_one()
    quarantined = conn.execute(
        select(func.count()).select_from(t.rows).where(t.rows.c.run_id == run_id, t.rows.c.quarantined)
    ).scalar_one()
    return RunOverview(
        run=run,
        nodes=nodes,
        outcomes=outcomes,
        artifacts=artifacts,
        flushes=flushes,
        calls=calls,
        quarantined=quarantined,
        purge=purge_of(conn, run_id),
    )


def _artifacts(conn: Connection, query: Any) -> list[ArtifactInfo]:
    return [
        ArtifactInfo(
            artifact_id=row.artifact_id,
            node_id=row.node_id,
            uri=row.uri,
            content_hash=row.content_hash,
            size=row.size,
            row_count=row.row_count,
            created_at=row.created_at,
        )
        for row in conn.execute(query)
    ]


def row_lineage(conn: Connection, run_id: str, row_id: int, read: ReadPayload | None = None) -> RowLineage:
    """Everything the Landscape knows about source row `row_id` of `run_id`; bodies kept in the payload
    store are read with `read` (without it, only inline bodies are filled in)."""
    # Only that the run exists: get_run counts its rows, a scan of them all, and a report asks for many rows.
    if conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)).first() is None:
        raise ElspethError(f"no run {run_id!r} in this landscape; {_FIND_RUNS}")
    purged = purge_of(conn, run_id) is not None
    source_row = conn.execute(select(t.rows).where(t.rows.c.run_id == run_id, t.rows.c.row_id == row_id)).first()
    if source_row is None:
        low, high = conn.execute(
            select(func.min(t.rows.c.row_id), func.max(t.rows.c.row_id)).where(t.rows.c.run_id == run_id)
        ).one()
        known = f"its rows are numbered {low} to {high}" if low is not None else "it recorded no rows"
        raise ElspethError(f"run {run_id!r} has no row {row_id}; {known}")

    tokens = _token_closure(conn, run_id, row_id)
    token_ids = [tok.token_id for tok in tokens]
    batches = _batches(conn, run_id, token_ids)
    outcomes = _outcomes(conn, run_id, token_ids)
    state_ids = set(_state_ids_of_tokens(conn, run_id, token_ids))
    state_ids.update(b.flush_state_id for b in batches if b.flush_state_id is not None)
    state_ids.update(
        conn.execute(
            select(t.artifacts.c.state_id).where(
                t.artifacts.c.run_id == run_id,
                t.artifacts.c.artifact_id.in_([o.artifact.artifact_id for o in outcomes if o.artifact]),
            )
        ).scalars()
    )
    quarantine = next((o.reason for o in outcomes if o.outcome == "quarantined"), None)
    return RowLineage(
        run_id=run_id,
        row_id=row_id,
        payload=_json(source_row.payload_json),
        payload_hash=source_row.payload_hash,
        purged=purged,
        quarantined=bool(source_row.quarantined),
        quarantine_reason=quarantine,
        tokens=tokens,
        states=_states(conn, run_id, sorted(state_ids), read, purged),
        batches=batches,
        outcomes=outcomes,
    )


def _token_closure(conn: Connection, run_id: str, row_id: int) -> list[TokenInfo]:
    """The row's own tokens, then repeatedly their children and the outputs of batches they joined."""
    tok = t.tokens.c
    found = {r.token_id: r for r in _tokens_where(conn, run_id, tok.row_id == row_id)}
    frontier = list(found)
    while frontier:
        # Two queries, not one with OR: each can use its own index, and most rows joined no batch at all.
        step = _tokens_where(conn, run_id, tok.parent_token_id.in_(frontier))
        joined = (
            conn.execute(
                select(t.batch_members.c.batch_id).where(
                    t.batch_members.c.run_id == run_id, t.batch_members.c.token_id.in_(frontier)
                )
            )
            .scalars()
            .all()
        )
        if joined:
            step += conn.execute(
                select(t.tokens).where(tok.run_id == run_id, tok.origin_batch_id.in_(sorted(set(joined))))
            ).all()
        frontier = [r.token_id for r in step if r.token_id not in found]
        found.update((r.token_id, r) for r in step)
    return [
        TokenInfo(
            token_id=r.token_id,
            row_id=r.row_id,
            parent_token_id=r.parent_token_id,
            origin_node_id=r.origin_node_id,
            origin_batch_id=r.origin_batch_id,
            payload=_json(r.payload_json),
        )
        for r in sorted(found.values(), key=lambda r: r.token_id)
    ]


def _tokens_where(conn: Connection, run_id: str, condition: Any) -> list[Any]:
    """The run's tokens matching `condition` on an indexed column: their ids first, which the index covers,
    then the tokens by primary key. Asked for whole tokens at once, SQLite without statistics reads every
    token of the run by primary key instead of using the index (seconds per row on a run of millions)."""
    tok = t.tokens.c
    ids = conn.execute(select(tok.token_id).where(tok.run_id == run_id, condition)).scalars().all()
    if not ids:
        return []
    return list(conn.execute(select(t.tokens).where(tok.run_id == run_id, tok.token_id.in_(ids))))


def _state_ids_of_tokens(conn: Connection, run_id: str, token_ids: Iterable[int]) -> Iterable[int]:
    s = t.node_states.c
    return conn.execute(select(s.state_id).where(s.run_id == run_id, s.token_id.in_(list(token_ids)))).scalars()


def _states(
    conn: Connection, run_id: str, state_ids: list[int], read: ReadPayload | None, purged: bool
) -> list[StateInfo]:
    c = t.calls.c
    calls: dict[int, list[CallInfo]] = {}
    for r in conn.execute(
        select(t.calls).where(c.run_id == run_id, c.state_id.in_(state_ids)).order_by(c.state_id, c.call_index)
    ):
        calls.setdefault(r.state_id, []).append(
            CallInfo(
                state_id=r.state_id,
                call_index=r.call_index,
                call_type=r.call_type,
                provider=r.provider,
                status=r.status,
                request_hash=r.request_hash,
                response_hash=r.response_hash,
                request_preview=_preview(r.request_json, r.request_ref, r.request_hash, read, purged) or "",
                response_preview=_preview(r.response_json, r.response_ref, r.response_hash, read, purged),
                error=_json(r.error_json),
                latency_ms=r.latency_ms,
                request=_value(r.request_json, r.request_ref, read),
                response=_value(r.response_json, r.response_ref, read),
            )
        )
    s = t.node_states.c
    return [
        StateInfo(
            state_id=r.state_id,
            node_id=r.node_id,
            token_id=r.token_id,
            operation=r.operation,
            attempt=r.attempt,
            status=r.status,
            input_hash=r.input_hash,
            output_hash=r.output_hash,
            error=_json(r.error_json),
            started_at=r.started_at,
            ended_at=r.ended_at,
            calls=calls.get(r.state_id, []),
            **_output(r, read),
        )
        for r in conn.execute(
            select(t.node_states).where(s.run_id == run_id, s.state_id.in_(state_ids)).order_by(s.state_id)
        )
    ]


def _output(r: Any, read: ReadPayload | None) -> dict[str, Any]:
    """A state's output value and what is known of it (StateInfo.output_status)."""
    if r.output_json is not None:
        return {"output": _json(r.output_json), "output_status": "recorded"}
    if r.output_ref is not None:
        body = _stored(r.output_ref, read)
        if body is None:
            return {"output": None, "output_status": PURGED if read is not None else "stored"}
        return {"output": _json(body), "output_status": "recorded"}
    if r.output_hash is None or r.operation != "process":
        return {"output": None, "output_status": "none"}
    if r.output_hash == r.input_hash:
        return {"output": None, "output_status": "unchanged"}
    return {"output": None, "output_status": "not recorded"}


def _batches(conn: Connection, run_id: str, token_ids: list[int]) -> list[BatchInfo]:
    m = t.batch_members.c
    mine: dict[int, list[int]] = {}
    for r in conn.execute(
        select(m.batch_id, m.token_id).where(m.run_id == run_id, m.token_id.in_(token_ids)).order_by(m.ordinal)
    ):
        mine.setdefault(r.batch_id, []).append(r.token_id)
    sizes = {
        r.batch_id: r.n
        for r in conn.execute(
            select(m.batch_id, func.count().label("n"))
            .where(m.run_id == run_id, m.batch_id.in_(list(mine)))
            .group_by(m.batch_id)
        )
    }
    b = t.batches.c
    return [
        BatchInfo(
            batch_id=r.batch_id,
            node_id=r.node_id,
            attempt=r.attempt,
            status=r.status,
            trigger=r.trigger,
            flush_state_id=r.flush_state_id,
            retry_of=r.retry_of,
            members=sizes.get(r.batch_id, 0),
            row_tokens=mine[r.batch_id],
            error=_json(r.error_json),
        )
        for r in conn.execute(
            select(t.batches).where(b.run_id == run_id, b.batch_id.in_(list(mine))).order_by(b.batch_id)
        )
    ]


def _outcomes(conn: Connection, run_id: str, token_ids: list[int]) -> list[OutcomeInfo]:
    o = t.token_outcomes.c
    a = t.artifacts.c
    query = (
        select(t.token_outcomes, t.artifacts.c.uri, a.content_hash, a.size, a.row_count, a.created_at)
        .outerjoin(t.artifacts, (a.run_id == o.run_id) & (a.artifact_id == o.artifact_id))
        .where(o.run_id == run_id, o.token_id.in_(token_ids))
        .order_by(o.token_id)
    )
    return [
        OutcomeInfo(
            token_id=r.token_id,
            outcome=r.outcome,
            node_id=r.node_id,
            sink_node_id=r.sink_node_id,
            batch_id=r.batch_id,
            reason=_json(r.reason_json),
            artifact=ArtifactInfo(
                artifact_id=r.artifact_id,
                node_id=r.sink_node_id,
                uri=r.uri,
                content_hash=r.content_hash,
                size=r.size,
                row_count=r.row_count,
                created_at=r.created_at,
            )
            if r.artifact_id is not None
            else None,
        )
        for r in conn.execute(query)
    ]
