"""`http_enrich` behind the kit's fault proxy: every attempt on the wire is a recorded call (the wire check
runs after every pipeline), failures are ERROR calls, retries honour Retry-After on the engine's clock, and
no row is lost. The wire check needs nothing from the plugin but its recorded calls: no SDK involved."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elspeth_http.conformance import LocalApi
from enrich_runs import run_enrich

from elspeth_testkit import fault_proxy
from elspeth_testkit.fault_proxy import FaultProxy

ROWS = [{"id": i, "name": f"row {i}", "group": f"g{i % 2}"} for i in range(4)]


@pytest.fixture
def proxy(test_api: LocalApi) -> Iterator[FaultProxy]:
    with FaultProxy(test_api.url) as p:
        yield p


def options(proxy: FaultProxy, **more: Any) -> dict[str, Any]:
    return {
        "url": proxy.url + "/score/{group}",
        "method": "POST",
        "body_fields": ["id", "name"],
        "output_field": "score",
        "timeout_seconds": 0.5,
        "backoff_seconds": 0.25,
        **more,
    }


def expected_scores() -> list[dict[str, Any]]:
    return [
        {**r, "score": {"group": r["group"], "fields": ["id", "name"], "score": len(str(r["id"])) + len(r["name"])}}
        for r in ROWS
    ]


@pytest.mark.parametrize(
    ("fault", "error_types"),
    [
        pytest.param(fault_proxy.status(500), {"HttpStatusError"}, id="http-500"),
        pytest.param(fault_proxy.status(503, retry_after=0), {"HttpStatusError"}, id="http-503"),
        # Which one httpx raises depends on when the RST arrives.
        pytest.param(fault_proxy.reset(), {"ReadError", "RemoteProtocolError"}, id="reset"),
        pytest.param(fault_proxy.timeout(2), {"ReadTimeout"}, id="timeout"),
        pytest.param(fault_proxy.malformed(), {"NotJsonError"}, id="malformed"),
    ],
)
def test_a_failed_attempt_is_an_error_call_then_retried(
    tmp_path: Path, proxy: FaultProxy, fault: Any, error_types: set[str]
) -> None:
    proxy.script(fault, first=1)
    ran = run_enrich(tmp_path, ROWS, options(proxy), proxy=proxy)
    assert ran.summary.status == "completed"
    assert ran.output() == expected_scores()
    calls = ran.calls()
    assert [c["status"] for c in calls] == ["error"] + ["ok"] * len(ROWS)
    first, retry = calls[0], calls[1]
    assert first["error"]["type"] in error_types
    assert (retry["state_id"], retry["call_index"]) == (first["state_id"], 1)
    assert first["request"] == retry["request"]
    assert len(proxy.exchanges) == len(ROWS) + 1


def test_429_waits_as_retry_after_says_in_seconds(tmp_path: Path, proxy: FaultProxy) -> None:
    proxy.script(fault_proxy.status(429, retry_after=7), first=2)
    ran = run_enrich(tmp_path, ROWS, options(proxy), proxy=proxy)
    assert ran.output() == expected_scores()
    assert ran.clock.slept == [7.0, 7.0]
    assert [c["status"] for c in ran.calls()][:3] == ["error", "error", "ok"]
    assert ran.calls()[0]["response"]["headers"]["retry-after"] == "7"


def test_429_waits_as_retry_after_says_as_an_http_date(tmp_path: Path, proxy: FaultProxy) -> None:
    when = email.utils.formatdate(time.time() + 40, usegmt=True)
    proxy.script(fault_proxy.status(429, headers=(("Retry-After", when),)), first=1)
    ran = run_enrich(tmp_path, ROWS, options(proxy), proxy=proxy)
    assert ran.output() == expected_scores()
    [waited] = ran.clock.slept
    assert 35 <= waited <= 41


def test_without_retry_after_the_backoff_doubles(tmp_path: Path, proxy: FaultProxy) -> None:
    proxy.script(fault_proxy.status(502), first=2)
    ran = run_enrich(tmp_path, ROWS[:1], options(proxy), proxy=proxy)
    assert ran.output() == expected_scores()[:1]
    assert ran.clock.slept == [0.25, 0.5]


def test_exhausted_retries_are_a_retryable_error_after_recording_every_attempt(
    tmp_path: Path, proxy: FaultProxy
) -> None:
    proxy.script(fault_proxy.status(503), path=r"/score/g0$")
    ran = run_enrich(tmp_path, ROWS, options(proxy, max_attempts=3), engine_attempts=2, proxy=proxy)
    assert ran.summary.status == "completed"
    assert [r["id"] for r in ran.output()] == [1, 3]
    failed = ran.output("errors")
    assert [r["id"] for r in failed] == [0, 2]
    assert all("HTTP 503 Service Unavailable" in r["_error"] and "after 3 attempt(s)" in r["_error"] for r in failed)
    calls = ran.calls()
    # Rows 0 and 2: two engine attempts (node states) of three recorded calls each; rows 1 and 3: one call.
    errors = [c for c in calls if c["status"] == "error"]
    assert len(errors) == 2 * 2 * 3
    by_state: dict[int, list[int]] = {}
    for c in errors:
        by_state.setdefault(c["state_id"], []).append(c["call_index"])
    assert sorted(by_state.values()) == [[0, 1, 2]] * 4
    states = [s for s in ran.states("transform:enrich") if s["status"] == "failed"]
    assert len(states) == 4 and all('"retryable":true' in s["error_json"] for s in states)
    assert len(proxy.exchanges) == len(calls) == 12 + 2


def test_an_unreachable_service_stops_the_run_with_every_attempt_recorded_and_no_row_failed(
    tmp_path: Path, test_api: LocalApi
) -> None:
    with FaultProxy(test_api.url) as dead:
        url = dead.url
    ran = run_enrich(tmp_path, ROWS[:2], {"url": url + "/lookup/{id}", "max_attempts": 2, "backoff_seconds": 0})
    assert ran.summary.status == "failed"
    assert ran.summary.error.startswith(f"transform:enrich: cannot reach {url}: ConnectError from GET {url}/lookup/0")
    assert "2 attempts" in ran.summary.error and "elspeth resume" in ran.summary.error
    calls = ran.calls()
    assert [c["status"] for c in calls] == ["error", "error"]
    assert calls[0]["error"]["type"] == "ConnectError"
    assert ran.summary.outcomes == {}, "the rows are unfinished, for a resume, not failed"
    assert ran.output("errors") == [] and ran.output("out") == []
