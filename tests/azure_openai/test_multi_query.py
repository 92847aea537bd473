"""`azure_multi_query_llm` as a transform (calls under each row's state) and as an aggregate (seed 002: every
call under the flush's own node_state, never a synthetic per-row id; FK-valid, call_index gap-free), its
queries asked side by side.

Each test that holds at any `parallel_queries` runs serially (one query at a time, in the plugin's pool) and
in parallel (calls recorded from several threads at once under one state).
"""

from __future__ import annotations

import threading
import time

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.multi_query import AzureMultiQueryConfig
from elspeth.settings import structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.azure_openai_emulator import EmulatedError, default_reply

from .conftest import API_KEY, rows

QUERIES = {
    "sentiment": "Sentiment of this text. Labels: positive, negative\nText: {{ text }}",
    "topic": "Topic of this text, one of: product, service, delivery\nText: {{ text }}",
    "summary": "Summarize: {{ text }}",
}

SERIAL = pytest.param(1, id="serial")
PARALLEL = pytest.param(8, id="parallel")
BOTH = pytest.mark.parametrize("parallel", [SERIAL, PARALLEL])


def multi(bench, parallel=1, **options):
    return {
        "plugin": "azure_multi_query_llm",
        "options": bench.options(queries=QUERIES, parallel_queries=parallel, **options),
    }


def aggregate(bench, count=3, parallel=1, **options):
    return {**multi(bench, parallel, **options), "name": "mq", "trigger": {"count": count}}


def failing_first(times, error):
    """A rule's reply: `error` the first `times` times it matches, then the emulator's usual answer."""
    lock = threading.Lock()
    left = [times]

    def reply(_match, body):
        with lock:
            left[0] -= 1
            return error if left[0] >= 0 else default_reply(body)

    return reply


@BOTH
def test_transform_adds_one_field_per_query_each_a_call_under_the_rows_state(bench, parallel):
    summary = bench.run(bench.settings(rows(4), transforms=[multi(bench, parallel)]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == [0, 1, 2, 3]
    for row in out:
        assert list(row)[-3:] == ["sentiment", "topic", "summary"], "answers in query order"
        assert row["sentiment"] in ("positive", "negative")
        assert row["topic"] in ("product", "service", "delivery")
        assert row["summary"] == f"Echo: Summarize: {row['text']}"
    calls = bench.calls(summary.run_id)
    assert len(calls) == 12
    by_state: dict[int, list[int]] = {}
    for call in calls:
        by_state.setdefault(call["state_id"], []).append(call["call_index"])
    assert sorted(sorted(v) for v in by_state.values()) == [[0, 1, 2]] * 4
    bench.check(summary.run_id)


@BOTH
def test_transform_a_failing_query_is_the_rows_error_naming_the_query(bench, parallel):
    bench.emulator.rule(r"(?s)Topic.*number 1\b", EmulatedError(400, "content_filter", "no"))
    summary = bench.run(bench.settings(rows(3), transforms=[multi(bench, parallel)]))
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [1] and "query 'topic'" in errors[0]["_error"]
    bench.check(summary.run_id)


@pytest.mark.parametrize(
    ("parallel", "peak"),
    [pytest.param(1, 1, id="serial"), pytest.param(8, 3, id="parallel")],
)
def test_the_queries_of_a_row_are_asked_side_by_side(bench, parallel, peak):
    bench.emulator.latency_ms = 300
    one_row_at_a_time = {**multi(bench, parallel, timeout_seconds=10), "concurrency": 1}
    summary = bench.run(bench.settings(rows(2), transforms=[one_row_at_a_time]))
    assert summary.status == "completed", summary.error
    assert bench.emulator.peak_in_flight == peak
    assert bench.proxy.wait_idle()
    wire = sorted(bench.proxy.exchanges, key=lambda e: e.started_at)
    assert len(wire) == 6
    for row in (wire[:3], wire[3:]):
        overlap = max(e.started_at for e in row) < min(e.ended_at for e in row)
        assert overlap == (parallel > 1), "a row's 3 queries were on the wire together, or one after the other"
    assert wire[2].ended_at <= wire[3].started_at, "the next row only once the last was answered"
    bench.check(summary.run_id)


@BOTH
def test_seed_002_aggregate_records_every_call_under_the_flush_state(bench, parallel):
    summary = bench.run(bench.settings(rows(7), aggregations=[aggregate(bench, 3, parallel)]))
    assert summary.status == "completed", summary.error
    run = summary.run_id
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(7)), "one output row per input row, in order"
    assert all(r["llm_status"] == "ok" and r["llm_error"] is None and r["sentiment"] for r in out)
    assert all(r["summary"] == f"Echo: Summarize: {r['text']}" for r in out), "each row its own answers"

    flushes = bench.query(
        "SELECT b.batch_id, b.trigger, b.flush_state_id, s.operation, s.status FROM batches b "
        "JOIN node_states s ON s.run_id = b.run_id AND s.state_id = b.flush_state_id "
        "WHERE b.run_id = :r ORDER BY b.batch_id",
        r=run,
    )
    assert [(f["trigger"], f["operation"], f["status"]) for f in flushes] == [
        ("count", "flush", "completed"),
        ("count", "flush", "completed"),
        ("end_of_source", "flush", "completed"),
    ]
    calls = bench.calls(run)
    assert len(calls) == 7 * 3
    flush_states = [f["flush_state_id"] for f in flushes]
    assert [c["state_id"] for c in calls] == [flush_states[0]] * 9 + [flush_states[1]] * 9 + [flush_states[2]] * 3
    for state in flush_states:
        indexes = [c["call_index"] for c in calls if c["state_id"] == state]
        assert sorted(indexes) == list(range(len(indexes))), "call_index gap-free per state"
    orphans = bench.query(
        "SELECT c.state_id FROM calls c LEFT JOIN node_states s ON s.run_id = c.run_id AND s.state_id = c.state_id "
        "WHERE c.run_id = :r AND s.state_id IS NULL",
        r=run,
    )
    assert orphans == []
    assert bench.query("PRAGMA foreign_key_check") == []
    bench.check(run)


@BOTH
def test_aggregate_a_rows_own_failure_marks_that_row_and_keeps_the_others(bench, parallel):
    bench.emulator.rule(r"(?s)Sentiment.*number 4\b", EmulatedError(400, "content_filter", "filtered"))
    data = rows(6)
    del data[1]["text"]
    summary = bench.run(bench.settings(data, aggregations=[aggregate(bench, 3, parallel)]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(6))
    assert [r["llm_status"] for r in out] == ["ok", "error", "ok", "ok", "error", "ok"]
    assert "field 'text'" in out[1]["llm_error"] and out[1]["sentiment"] is None
    assert "query 'sentiment'" in out[4]["llm_error"] and "content_filter" in out[4]["llm_error"]
    assert out[4]["topic"] is None, "a failed row carries no partial answers"
    calls = bench.calls(summary.run_id)
    # Row 1 sent nothing; row 4's other queries are dropped unless they had started already.
    assert 4 * 3 + 1 <= len(calls) <= 5 * 3
    assert [c["status"] for c in calls].count("error") == 1
    bench.check(summary.run_id)


@BOTH
def test_aggregate_a_persistent_service_failure_fails_the_batch_then_the_engine_runs_it_again(bench, parallel):
    # Row 0's first query fails its 3 attempts (max_attempts): the batch is a retryable Error, whatever
    # else had started; the engine runs the batch again as a new one, which succeeds.
    busy = EmulatedError(503, "ServiceUnavailable", "busy")
    bench.emulator.rule(r"(?s)Sentiment.*number 0\b", failing_first(3, busy))
    summary = bench.run(bench.settings(rows(3), aggregations=[aggregate(bench, 3, parallel)]))
    assert summary.status == "completed", summary.error
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok", "ok", "ok"]
    batches = bench.query(
        "SELECT batch_id, status, trigger, flush_state_id FROM batches WHERE run_id = :r ORDER BY batch_id",
        r=summary.run_id,
    )
    assert [(b["status"], b["trigger"]) for b in batches] == [("failed", "count"), ("completed", "retry")]
    calls = bench.calls(summary.run_id)
    first = [c["status"] for c in calls if c["state_id"] == batches[0]["flush_state_id"]]
    assert first.count("error") == 3 and len(first) <= 3 + 8
    assert [c["status"] for c in calls if c["state_id"] == batches[1]["flush_state_id"]] == ["ok"] * 9
    bench.check(summary.run_id)


@BOTH
def test_aggregate_a_wrong_key_fails_the_batch_for_good_and_every_row_reaches_the_error_sink(bench, parallel):
    settings = bench.settings(rows(4), aggregations=[aggregate(bench, 4, parallel, api_key="sk-bad-000000")])
    summary = bench.run(settings)
    assert summary.status == "completed", summary.error
    assert bench.lines("main") == []
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [0, 1, 2, 3] and all("HTTP 401" in r["_error"] for r in errors)
    bench.check(summary.run_id)


@pytest.mark.parametrize("fault", [fault_proxy.reset(), fault_proxy.timeout(1.5), fault_proxy.malformed()])
@BOTH
def test_aggregate_faults_are_error_calls_under_the_flush_state_then_retried(bench, fault, parallel):
    bench.proxy.script(fault, path=r"/chat/completions", nth=2)
    summary = bench.run(bench.settings(rows(3), aggregations=[aggregate(bench, 3, parallel)]))
    assert summary.status == "completed", summary.error
    calls = bench.calls(summary.run_id)
    assert sorted(c["status"] for c in calls) == ["error"] + ["ok"] * 9
    assert len({c["state_id"] for c in calls}) == 1
    bench.check(summary.run_id)


@BOTH
def test_parallel_queries_share_the_deployment_s_budget_and_keep_under_its_quota(bench, parallel):
    bench.emulator.requests_per_minute, bench.emulator.rate_window_seconds = 1200, 1.0  # 20 a second
    bench.emulator.latency_ms = 100
    started = time.monotonic()
    # 90% of the quota: see test_rate_budgets.py.
    options = {"requests_per_minute": 1080, "timeout_seconds": 10}
    settings = bench.settings(rows(8), aggregations=[aggregate(bench, 8, parallel, **options)])
    summary = bench.run(settings)
    assert summary.status == "completed", summary.error
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok"] * 8
    assert bench.emulator.throttled == 0 and bench.emulator.completed == 24
    assert time.monotonic() - started >= 23 * 60 / 1080, "24 requests at 18 a second"
    bench.check(summary.run_id)


def test_queries_are_checked_when_the_pipeline_is_built():
    base = {"endpoint": "https://r.openai.azure.com", "deployment": "d", "api_key": API_KEY}
    with pytest.raises(ConfigError, match="option `parallel_queries` must be a number greater than 0"):
        structure({**base, "queries": {"a": "x"}, "parallel_queries": 0}, AzureMultiQueryConfig, where="options")
    with pytest.raises(ConfigError, match="needs at least one query"):
        structure({**base, "queries": {}}, AzureMultiQueryConfig, where="options")
    with pytest.raises(ConfigError, match=r"option `queries.topic` is not a valid template"):
        structure({**base, "queries": {"topic": "{{ x"}}, AzureMultiQueryConfig, where="options")
