"""A report's data read back from a real Landscape, SQLite and PostgreSQL through the same code: values at
each step, full call bodies (those kept in the payload store too), failed calls, retries and fan-out."""

from __future__ import annotations

import json
import uuid

from elspeth import canonical
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.report.collect import report_data
from elspeth.report.page import render_page


def _settings(w):
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": 30}},
        transforms=[
            {"plugin": "test_caller", "options": {"calls": 2, "error_every": 5, "big_every": 7}},
            {"plugin": "test_flaky", "options": {"retry_every": 4}},
            {"plugin": "test_fanout", "options": {"copies_mod": 3}},
        ],
    )


def _check(w, run_id: str) -> None:
    summary = w.run(_settings(w), run_id=run_id)
    assert summary.status == "completed", summary.error
    with w.connect() as conn:
        data = report_data(conn, run_id, FilePayloadStore(w.payload_dir).get)
    json.loads(json.dumps(data))  # plain JSON all through
    assert "<script" in render_page(data)
    assert data["rows"]["total"] == 30 and len(data["details"]) == 30
    assert data["failed_calls"]["total"] == 6 and {c["row_id"] for c in data["failed_calls"]["shown"]} == {
        0,
        5,
        10,
        15,
        20,
        25,
    }
    caller = {n["node_id"]: n for n in data["nodes"]}["transform:test_caller"]
    assert caller["timing"][0]["states"] == 30

    row = data["details"]["7"]  # its first call's request is too big to keep inline: read from the store
    caller_state = next(s for s in row["states"] if s["node_id"] == "transform:test_caller")
    big = caller_state["calls"][0]
    assert "lorem ipsum" in big["request"]["context"] and "request_preview" not in big
    step = row["values"][str(caller_state["state_id"])]
    assert step["input_verified"] is True and step["note"] == "changed"
    assert step["changes"] == [{"field": "answer", "change": "added", "before": None, "after": 142}]
    assert canonical.stable_hash(step["after"]) == caller_state["output_hash"]

    retried = data["details"]["4"]
    flaky = [s for s in retried["states"] if s["node_id"] == "transform:test_flaky"]
    assert [(s["attempt"], s["status"]) for s in flaky] == [(1, "failed"), (2, "completed")]
    assert retried["values"][str(flaky[0]["state_id"])]["note"] == "failed"
    assert retried["values"][str(flaky[1]["state_id"])]["note"] == "unchanged"

    fanned = data["details"]["5"]  # 5 % 3 = 2 copies: an expansion, its children with their own rows
    children = [t for t in fanned["tokens"] if t["parent_token_id"] is not None]
    assert [t["payload"]["copy"] for t in children] == [0, 1]
    assert {o["outcome"] for o in fanned["outcomes"]} == {"expanded", "completed"}


def test_report_data_on_sqlite(world):
    _check(world("sqlite"), "report-sqlite")


def test_report_data_on_postgres(pg_world):
    _check(pg_world("pg"), f"pg-report-{uuid.uuid4().hex[:8]}")
