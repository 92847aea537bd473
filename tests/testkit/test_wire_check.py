"""The wire check against real runs: the real engine and a real SQLite Landscape, a test plugin that talks
HTTP through the fault proxy to a real echo server. A plugin that records its calls properly passes under
every fault; each buggy variant is caught by the invariant made for its bug."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen

from elspeth.engine.orchestrator import run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure
from elspeth_testkit.fault_proxy import Exchange, FaultProxy, delay, malformed, reset, status, timeout
from elspeth_testkit.sweep import report, sweep
from elspeth_testkit.wire_check import (
    Violation,
    _augment,
    assert_wire_matches_calls,
    compare_wire_with_calls,
    contains_body,
    wire_report,
)

from . import http_plugins


@frozen
class Checked:
    summary: RunSummary
    url: str
    exchanges: list[Exchange]
    violations: list[Violation]

    def calls(self) -> list[dict[str, Any]]:
        db = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY created_at, state_id, call_index")]


def run_through(
    tmp_path: Path,
    proxy: FaultProxy,
    rows: list[dict[str, Any]],
    *,
    mode: str = "correct",
    method: str = "POST",
    client_timeout: float = 2.0,
) -> Checked:
    source = tmp_path / "input.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = structure(
        {
            "source": {"plugin": "jsonl", "options": {"path": str(source)}},
            "transforms": [
                {
                    "plugin": "wire_echo",
                    "options": {"url": proxy.url, "mode": mode, "method": method, "timeout": client_timeout},
                }
            ],
            "sinks": {"out": {"plugin": "jsonl", "options": {"path": str(tmp_path / "out.jsonl")}}},
            "engine": {"retry": {"max_attempts": 3, "backoff_seconds": 0}},
        },
        Settings,
        where="$",
    )
    url = f"sqlite:///{tmp_path}/l.db"
    registry = PluginRegistry(make_plugin_manager(extra_plugins=[http_plugins]))
    summary = run_pipeline(settings, registry=registry, landscape_url=url)
    assert proxy.wait_idle(5)
    exchanges = proxy.exchanges
    violations = compare_wire_with_calls(exchanges, url, summary.run_id, tmp_path / "payloads")
    return Checked(summary, url, exchanges, violations)


ROWS = [{"id": i, "text": f"row {i}"} for i in range(1, 6)]


def by_invariant(violations: list[Violation]) -> dict[str, list[Violation]]:
    found: dict[str, list[Violation]] = {}
    for v in violations:
        found.setdefault(v.invariant, []).append(v)
    return found


# ---------------------------------------------------------------- a plugin that records properly


def test_correct_plugin_passes(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS)
    assert checked.summary.status == "completed"
    assert checked.violations == [], wire_report(checked.violations, checked.summary.run_id)
    assert len(checked.exchanges) == len(checked.calls()) == 5
    swept = sweep(checked.url, checked.summary.run_id)
    assert swept == [], report(swept, checked.summary.run_id)


def test_correct_plugin_passes_under_every_fault(tmp_path: Path, proxy: FaultProxy) -> None:
    # One fault per row's first attempt; the engine's retry sends the same body again and succeeds.
    proxy.script(status(500), nth=1)
    proxy.script(status(429, retry_after=0), nth=3)
    proxy.script(reset(), nth=5)
    proxy.script(timeout(1), nth=7)
    proxy.script(malformed(), nth=9)
    checked = run_through(tmp_path, proxy, ROWS, client_timeout=0.3)
    assert checked.summary.status == "completed"
    assert checked.summary.outcomes == {"completed": 5}
    faults = ["status", "status", "reset", "timeout", "malformed"]
    assert [e.fault for e in checked.exchanges] == [f for fault in faults for f in (fault, None)]
    assert checked.violations == [], wire_report(checked.violations, checked.summary.run_id)
    assert [c["status"] for c in checked.calls()] == ["error", "ok"] * 5


def test_large_bodies_in_the_payload_store_are_read(tmp_path: Path, proxy: FaultProxy) -> None:
    rows = [{"id": 1, "text": "x" * 40_000}, {"id": 2, "text": "short"}]
    checked = run_through(tmp_path, proxy, rows)
    assert checked.violations == [], wire_report(checked.violations, checked.summary.run_id)
    big = checked.calls()[0]
    assert big["request_json"] is None and big["request_ref"] is not None and big["response_ref"] is not None


def test_bodiless_requests_match_by_path(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS[:3], method="GET")
    assert [e.request_body for e in checked.exchanges] == [b""] * 3
    assert checked.violations == [], wire_report(checked.violations, checked.summary.run_id)


def test_assert_wire_matches_calls_raises_with_a_report(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS[:2])
    assert_wire_matches_calls(checked.exchanges, checked.url, checked.summary.run_id)  # payloads beside the db
    with pytest.raises(AssertionError, match=r"(?s)Wire check of run .*: 2 violation\(s\).*\[call-unrecorded\]"):
        assert_wire_matches_calls(checked.exchanges * 2, checked.url, checked.summary.run_id)


# ---------------------------------------------------------------- buggy plugins, each caught


def test_a_request_never_recorded_is_call_unrecorded(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS, mode="skip_second")
    assert checked.summary.status == "completed"
    (violation,) = checked.violations
    assert violation.invariant == "call-unrecorded"
    assert "POST /echo/2 -> 200" in violation.message
    assert '{"id": 2, "text": "row 2"}' in violation.message  # the body preview
    assert violation.rows and {"state_id", "call_index", "status", "request"} <= set(violation.rows[0])


def test_sizes_instead_of_bodies_is_call_metadata_only(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS[:3], mode="metadata")
    assert checked.summary.status == "completed"
    found = by_invariant(checked.violations)
    assert set(found) == {"call-metadata-only"}
    assert len(found["call-metadata-only"]) == 3
    message = found["call-metadata-only"][0].message
    assert "POST /echo/1 -> 200" in message
    assert "the request body that was sent" in message and "the response body the server sent" in message
    assert '"bytes": 26' in found["call-metadata-only"][0].rows[0]["request"]


@pytest.mark.parametrize("fault", [status(500), reset()], ids=["status-500", "reset"])
def test_an_error_escaping_unrecorded_is_call_error_unrecorded(tmp_path: Path, proxy: FaultProxy, fault: Any) -> None:
    proxy.script(fault, nth=2)
    checked = run_through(tmp_path, proxy, ROWS, mode="escape")
    assert checked.summary.status == "failed"
    (violation,) = checked.violations
    assert violation.invariant == "call-error-unrecorded"
    assert "POST /echo/2" in violation.message and "escaped unrecorded" in violation.message
    assert ("HTTP 500" if fault.kind == "status" else "connection was reset") in violation.message


def test_an_error_recorded_as_ok_is_call_error_unrecorded(tmp_path: Path, proxy: FaultProxy) -> None:
    proxy.script(status(500), nth=1)
    checked = run_through(tmp_path, proxy, ROWS[:2], mode="error_as_ok")
    (violation,) = checked.violations
    assert violation.invariant == "call-error-unrecorded"
    assert "POST /echo/1 -> 500, fault status" in violation.message
    assert "status 'ok'" in violation.message
    assert violation.rows[0]["status"] == "ok"


def test_an_sdk_retry_inside_one_recorded_call_leaves_the_failed_attempt_unrecorded(
    tmp_path: Path, proxy: FaultProxy
) -> None:
    proxy.script(status(503), nth=2)
    checked = run_through(tmp_path, proxy, ROWS[:3], mode="sdk_retry")
    assert checked.summary.status == "completed"
    # The retry's success finds the row; the failed attempt is what is missing, with the hint to act on.
    (violation,) = checked.violations
    assert violation.invariant == "call-error-unrecorded"
    assert "#1 POST /echo/2 -> 503" in violation.message and "max_retries=0" in violation.message


def test_a_call_recorded_under_a_later_rows_state_is_call_outside_state(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS[:3], mode="record_later")
    assert checked.summary.status == "completed"
    found = by_invariant(checked.violations)
    # The calls of rows 0 and 1 hang off the states of rows 1 and 2; row 2's is never recorded at all.
    assert set(found) == {"call-outside-state", "call-unrecorded"}
    first, second = found["call-outside-state"]
    assert "#0 POST /echo/1 -> 200" in first.message
    assert re.search(r"hangs off node_state \d+ \(\S+ process, row 1, token \d+, attempt 1\)", first.message)
    assert re.search(r"it was sent \d\.\d{3} s before that state opened", first.message)
    # The row whose work it was: its state was open when the request was sent.
    assert re.search(r"open state\(s\) of \S+ were: node_state \d+ \(\S+ process, row 0, ", first.message)
    assert "#1 POST /echo/2 -> 200" in second.message
    assert [r["row"] for r in first.rows] == ["the call", "its state", "open then"]
    assert first.rows[0]["state_id"] == first.rows[1]["state_id"] != first.rows[2]["state_id"]


def test_a_client_that_gives_up_on_a_slow_answer_is_judged_by_its_error(tmp_path: Path, proxy: FaultProxy) -> None:
    """The client hangs up while the proxy delays it: the exchange got no answer (as the client saw it),
    so the call's ERROR record agrees, and the answer the upstream would have given is no one's business."""
    proxy.script(delay(1.0), nth=1)
    checked = run_through(tmp_path, proxy, ROWS[:2], client_timeout=0.3)
    assert checked.summary.status == "completed"
    assert checked.violations == [], wire_report(checked.violations, checked.summary.run_id)
    slow = checked.exchanges[0]
    assert (slow.status, slow.client_gone, slow.failed) == (None, True, True)
    assert "the client hung up first" in slow.describe()


def test_a_call_under_no_node_state_is_call_orphan(tmp_path: Path, proxy: FaultProxy) -> None:
    checked = run_through(tmp_path, proxy, ROWS[:1])
    with sqlite3.connect(checked.url.removeprefix("sqlite:///")) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(
            "INSERT INTO calls (run_id, state_id, call_index, call_type, provider, status, request_json, "
            "request_hash, created_at) VALUES (?, 999, 0, 'http', 'echo', 'ok', '{}', 'x', 0)",
            (checked.summary.run_id,),
        )
    violations = compare_wire_with_calls(checked.exchanges, checked.url, checked.summary.run_id)
    (violation,) = violations
    assert violation.invariant == "call-orphan"
    assert violation.rows[0]["state_id"] == 999


# ---------------------------------------------------------------- containment and matching


def test_contains_body_rules() -> None:
    stored = {
        "request": {"messages": [{"role": "user", "content": "hi"}], "model": "m", "temperature": 1.0},
        "raw": '{"b": [1, 2]}',
        "blob": {"base64": base64.b64encode(b"\xff\xfe").decode()},
        "file": "line one\nline two",
        "rows": [{"id": 1}, {"id": 2}],
        "extra": None,
    }
    assert contains_body(stored, b'{"model": "m", "messages": [{"content": "hi", "role": "user"}], "temperature": 1}')
    assert contains_body(
        stored, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1, "stream": null}'
    )  # null members count as absent
    assert not contains_body(stored, b'{"model": "m", "messages": [], "temperature": 1}')
    assert not contains_body({"flag": 1}, b'{"flag": true}')
    assert contains_body(stored, b'{"b":[1,2]}')  # a string holding the JSON
    assert contains_body(stored, b"\xff\xfe")  # bytes as the recorder stores them
    assert contains_body(stored, b"line one\nline two")
    assert contains_body(stored, b'{"id": 1}\n{"id": 2}\n')  # JSON Lines as the list of their values
    assert not contains_body(stored, b"line three")
    multipart = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        b'Content-Type: application/octet-stream\r\n\r\n{"id": 1}\n{"id": 2}\n\r\n--XyZ--\r\n'
    )
    assert contains_body(
        {"purpose": "batch", "file": '{"id": 1}\n{"id": 2}\n'}, multipart, "multipart/form-data; boundary=XyZ"
    )
    assert not contains_body({"purpose": "batch"}, multipart, "multipart/form-data; boundary=XyZ")


def test_matching_is_maximum_not_just_greedy() -> None:
    # Exchange 0 fits calls 0 and 1, exchange 1 fits call 0 only: greedy would strand exchange 1.
    edges = [[0, 1], [0]]
    owner: dict[int, int] = {}
    match: dict[int, int] = {}
    assert _augment(0, edges[0], edges, owner, match)
    assert match == {0: 0}  # the earliest free call first
    assert _augment(1, edges[1], edges, owner, match)
    assert match == {0: 1, 1: 0}
