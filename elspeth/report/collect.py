"""The data of a run's report, gathered from the Landscape as plain JSON-ready values: the run, its settings
as recorded (redacted), outcome counts, time per node, artifacts, failed calls, a search index of rows and
the full lineage (values at every step, every call's full request and response) of the rows chosen."""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
from sqlalchemy import Connection, and_, case, func, select

from elspeth import __version__
from elspeth.landscape import lineage
from elspeth.landscape import schema as t
from elspeth.landscape.redaction import Redactor
from elspeth.landscape.row_values import step_values
from elspeth.report.row_choice import INDEX_ROWS, RowChoice, choose_rows

FAILED_CALLS_SHOWN = 100
_INDEX_TEXT_CHARS = 120


def report_data(
    conn: Connection, run_id: str, read: lineage.ReadPayload, asked_rows: list[int] | None = None
) -> dict[str, Any]:
    overview = lineage.run_overview(conn, run_id)
    nodes = _nodes(conn, run_id)
    failed_calls = _failed_calls(conn, run_id)
    failed_steps = any(t["failed"] for n in nodes for t in n["timing"])
    choice = choose_rows(
        conn, run_id, overview.run.rows, asked_rows, failed_calls=failed_calls["total"] > 0, failed_steps=failed_steps
    )
    redact = Redactor()
    return {
        "generated_at": time.time(),
        "generated_by": __version__,
        "run": attrs.asdict(overview.run) | {"error": redact.text(overview.run.error or "") or None},
        "settings": redact(_settings(conn, run_id)),
        "outcomes": overview.outcomes,
        "quarantined": overview.quarantined,
        "calls": overview.calls,
        "flushes": overview.flushes,
        "nodes": nodes,
        "flows": _flows(conn, run_id),
        "artifacts": [attrs.asdict(a) for a in overview.artifacts],
        "failed_calls": failed_calls,
        "rows": {
            "total": overview.run.rows,
            "detailed": len(choice.rows),
            "why": choice.why,
            "index_limit": INDEX_ROWS,
        },
        "index": _index(conn, run_id, choice),
        "details": {str(row_id): _detail(conn, run_id, row_id, read) for row_id in choice.rows},
    }


def _settings(conn: Connection, run_id: str) -> Any:
    text = conn.execute(select(t.runs.c.settings_json).where(t.runs.c.run_id == run_id)).scalar_one()
    return json.loads(text)


def _nodes(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Every node with its recorded (redacted) options and the time its states took, per operation."""
    s = t.node_states.c
    timing: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(
        select(
            s.node_id,
            s.operation,
            func.count().label("states"),
            func.sum(s.ended_at - s.started_at).label("seconds"),
            func.sum(case((s.status == "failed", 1), else_=0)).label("failed"),
            func.max(s.attempt).label("max_attempt"),
        )
        .where(s.run_id == run_id)
        .group_by(s.node_id, s.operation)
        .order_by(s.node_id, s.operation)
    ):
        timing.setdefault(r.node_id, []).append(
            {
                "operation": r.operation,
                "states": r.states,
                "seconds": float(r.seconds or 0.0),
                "failed": int(r.failed or 0),
                "max_attempt": r.max_attempt,
            }
        )
    n = t.nodes.c
    return [
        {
            "node_id": r.node_id,
            "kind": r.kind,
            "plugin": r.plugin,
            "distribution": r.distribution,
            "plugin_version": r.plugin_version,
            "position": r.position,
            "config": json.loads(r.config_json),
            "timing": timing.get(r.node_id, []),
        }
        for r in conn.execute(select(t.nodes).where(n.run_id == run_id).order_by(n.position, n.node_id))
    ]


def _flows(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """How many tokens ended how, decided where, at which sink: the arrows of the pipeline's picture."""
    o = t.token_outcomes.c
    return [
        {"node_id": r.node_id, "sink_node_id": r.sink_node_id, "outcome": r.outcome, "tokens": r.n}
        for r in conn.execute(
            select(o.node_id, o.sink_node_id, o.outcome, func.count().label("n"))
            .where(o.run_id == run_id)
            .group_by(o.node_id, o.sink_node_id, o.outcome)
            .order_by(o.node_id, o.sink_node_id, o.outcome)
        )
    ]


def _failed_calls(conn: Connection, run_id: str) -> dict[str, Any]:
    c, s, k = t.calls.c, t.node_states.c, t.tokens.c
    failed = c.run_id == run_id, c.status == "error"
    total = conn.execute(select(func.count()).select_from(t.calls).where(*failed)).scalar_one()
    query = (
        select(c.state_id, c.call_index, c.call_type, c.provider, c.error_json, c.latency_ms, s.node_id, k.row_id)
        .select_from(t.calls)
        .join(t.node_states, and_(s.run_id == c.run_id, s.state_id == c.state_id))
        .outerjoin(t.tokens, and_(k.run_id == s.run_id, k.token_id == s.token_id))
        .where(*failed)
        .order_by(c.state_id, c.call_index)
        .limit(FAILED_CALLS_SHOWN)
    )
    shown = [
        {
            "state_id": r.state_id,
            "call_index": r.call_index,
            "call_type": r.call_type,
            "provider": r.provider,
            "error": json.loads(r.error_json) if r.error_json else None,
            "latency_ms": r.latency_ms,
            "node_id": r.node_id,
            "row_id": r.row_id,
        }
        for r in conn.execute(query)
    ]
    return {"total": total, "shown": shown}


def _index(conn: Connection, run_id: str, choice: RowChoice) -> list[list[Any]]:
    """[row, outcomes, sinks, a line of its values] for the first INDEX_ROWS rows and every row shown in
    full: what the page searches and pages through without holding every row of a big run."""
    r, k, o = t.rows.c, t.tokens.c, t.token_outcomes.c
    wanted = (r.row_id < INDEX_ROWS) | r.row_id.in_(choice.rows)
    payloads = {
        row.row_id: (row.payload_json, row.quarantined)
        for row in conn.execute(select(r.row_id, r.payload_json, r.quarantined).where(r.run_id == run_id, wanted))
    }
    ends: dict[int, list[tuple[str, str | None]]] = {}
    token_wanted = (k.row_id < INDEX_ROWS) | k.row_id.in_(choice.rows)
    for row in conn.execute(
        select(k.row_id, o.outcome, o.sink_node_id)
        .join(t.token_outcomes, and_(o.run_id == k.run_id, o.token_id == k.token_id))
        .where(k.run_id == run_id, token_wanted)
        .order_by(k.row_id, k.token_id)
    ):
        ends.setdefault(row.row_id, []).append((row.outcome, row.sink_node_id))
    index = []
    for row_id in sorted(payloads):
        payload_json, quarantined = payloads[row_id]
        outcomes = sorted({outcome for outcome, _ in ends.get(row_id, [])}) or ["unfinished"]
        sinks = sorted({sink for _, sink in ends.get(row_id, []) if sink})
        index.append([row_id, outcomes, sinks, _line(payload_json), bool(quarantined)])
    return index


def _line(payload_json: str | None) -> str:
    """A row's values on one line, for the index: what a search by value matches."""
    if payload_json is None:
        return ""
    payload = json.loads(payload_json)
    values = payload.values() if isinstance(payload, dict) else [payload]
    text = " | ".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)
    return text[:_INDEX_TEXT_CHARS]


def _detail(conn: Connection, run_id: str, row_id: int, read: lineage.ReadPayload) -> dict[str, Any]:
    """A row's lineage with its values at every step; full bodies, previews only where a body is gone."""
    row = lineage.row_lineage(conn, run_id, row_id, read)
    detail = attrs.asdict(row)
    for state in detail["states"]:
        for call in state["calls"]:
            if call["request"] is not None:
                del call["request_preview"]
            if call["response"] is not None:
                del call["response_preview"]
    detail["values"] = {str(k): attrs.asdict(v) for k, v in step_values(row).items()}
    return detail
