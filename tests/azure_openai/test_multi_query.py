"""`azure_multi_query_llm` as a transform (calls under each row's state) and as an aggregate (seed 002: every
call under the flush's own node_state, never a synthetic per-row id; FK-valid, call_index gap-free)."""

from __future__ import annotations

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.multi_query import AzureMultiQueryConfig
from elspeth.settings import structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.azure_openai_emulator import EmulatedError

from .conftest import API_KEY, rows

QUERIES = {
    "sentiment": "Sentiment of this text. Labels: positive, negative\nText: {{ text }}",
    "topic": "Topic of this text, one of: product, service, delivery\nText: {{ text }}",
    "summary": "Summarize: {{ text }}",
}


def multi(bench, **options):
    return {"plugin": "azure_multi_query_llm", "options": bench.options(queries=QUERIES, **options)}


def aggregate(bench, count=3, **options):
    return {**multi(bench, **options), "name": "mq", "trigger": {"count": count}}


def test_transform_adds_one_field_per_query_each_a_call_under_the_rows_state(bench):
    summary = bench.run(bench.settings(rows(4), transforms=[multi(bench)]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == [0, 1, 2, 3]
    for row in out:
        assert row["sentiment"] in ("positive", "negative")
        assert row["topic"] in ("product", "service", "delivery")
        assert row["summary"] == f"Echo: Summarize: {row['text']}"
    calls = bench.calls(summary.run_id)
    assert len(calls) == 12
    by_state: dict[int, list[int]] = {}
    for call in calls:
        by_state.setdefault(call["state_id"], []).append(call["call_index"])
    assert sorted(by_state.values()) == [[0, 1, 2]] * 4
    bench.check(summary.run_id)


def test_transform_a_failing_query_is_the_rows_error_naming_the_query(bench):
    bench.emulator.rule(r"(?s)Topic.*number 1\b", EmulatedError(400, "content_filter", "no"))
    summary = bench.run(bench.settings(rows(3), transforms=[multi(bench)]))
    assert summary.status == "completed", summary.error
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [1] and "query 'topic'" in errors[0]["_error"]
    bench.check(summary.run_id)


def test_seed_002_aggregate_records_every_call_under_the_flush_state(bench):
    summary = bench.run(bench.settings(rows(7), aggregations=[aggregate(bench, count=3)]))
    assert summary.status == "completed", summary.error
    run = summary.run_id
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(7)), "one output row per input row, in order"
    assert all(r["llm_status"] == "ok" and r["llm_error"] is None and r["sentiment"] for r in out)

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
        assert indexes == list(range(len(indexes))), "call_index gap-free per state"
    orphans = bench.query(
        "SELECT c.state_id FROM calls c LEFT JOIN node_states s ON s.run_id = c.run_id AND s.state_id = c.state_id "
        "WHERE c.run_id = :r AND s.state_id IS NULL",
        r=run,
    )
    assert orphans == []
    assert bench.query("PRAGMA foreign_key_check") == []
    bench.check(run)


def test_aggregate_a_rows_own_failure_marks_that_row_and_keeps_the_others(bench):
    bench.emulator.rule(r"(?s)Sentiment.*number 4\b", EmulatedError(400, "content_filter", "filtered"))
    data = rows(6)
    del data[1]["text"]
    summary = bench.run(bench.settings(data, aggregations=[aggregate(bench, count=3)]))
    assert summary.status == "completed", summary.error
    out = bench.lines("main")
    assert [r["id"] for r in out] == list(range(6))
    assert [r["llm_status"] for r in out] == ["ok", "error", "ok", "ok", "error", "ok"]
    assert "field 'text'" in out[1]["llm_error"] and out[1]["sentiment"] is None
    assert "query 'sentiment'" in out[4]["llm_error"] and "content_filter" in out[4]["llm_error"]
    assert out[4]["topic"] is None, "a failed row carries no partial answers"
    assert len(bench.calls(summary.run_id)) == 6 * 3 - 3 - 2, "row 1 sent nothing, row 4 stopped at its 1st query"
    bench.check(summary.run_id)


def test_aggregate_a_persistent_service_failure_fails_the_batch_then_the_engine_runs_it_again(bench):
    # The first batch's first query: 3 attempts fail (max_attempts), the batch is a retryable Error; the
    # engine runs the batch again as a new one, which succeeds.
    bench.proxy.script(fault_proxy.status(503), path=r"/chat/completions", first=3)
    summary = bench.run(bench.settings(rows(3), aggregations=[aggregate(bench, count=3)]))
    assert summary.status == "completed", summary.error
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok", "ok", "ok"]
    batches = bench.query("SELECT batch_id, status, trigger, retry_of FROM batches WHERE run_id = :r", r=summary.run_id)
    assert [(b["status"], b["trigger"]) for b in batches] == [("failed", "count"), ("completed", "retry")]
    statuses = [c["status"] for c in bench.calls(summary.run_id)]
    assert statuses == ["error"] * 3 + ["ok"] * 9
    bench.check(summary.run_id)


def test_aggregate_a_wrong_key_fails_the_batch_for_good_and_every_row_reaches_the_error_sink(bench):
    summary = bench.run(bench.settings(rows(4), aggregations=[aggregate(bench, count=4, api_key="sk-bad-000000")]))
    assert summary.status == "completed", summary.error
    assert bench.lines("main") == []
    errors = bench.lines("errors")
    assert [r["id"] for r in errors] == [0, 1, 2, 3] and all("HTTP 401" in r["_error"] for r in errors)
    bench.check(summary.run_id)


@pytest.mark.parametrize("fault", [fault_proxy.reset(), fault_proxy.timeout(1.5), fault_proxy.malformed()])
def test_aggregate_faults_are_error_calls_under_the_flush_state_then_retried(bench, fault):
    bench.proxy.script(fault, path=r"/chat/completions", nth=2)
    summary = bench.run(bench.settings(rows(3), aggregations=[aggregate(bench, count=3)]))
    assert summary.status == "completed", summary.error
    calls = bench.calls(summary.run_id)
    assert [c["status"] for c in calls] == ["ok", "error", "ok"] + ["ok"] * 7
    assert len({c["state_id"] for c in calls}) == 1
    bench.check(summary.run_id)


def test_queries_are_checked_when_the_pipeline_is_built():
    base = {"endpoint": "https://r.openai.azure.com", "deployment": "d", "api_key": API_KEY}
    with pytest.raises(ConfigError, match="needs at least one query"):
        structure({**base, "queries": {}}, AzureMultiQueryConfig, where="options")
    with pytest.raises(ConfigError, match=r"option `queries.topic` is not a valid template"):
        structure({**base, "queries": {"topic": "{{ x"}}, AzureMultiQueryConfig, where="options")
