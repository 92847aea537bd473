"""Aggregate scenarios: every buffered row in exactly one completed batch with its trigger and flush state,
pending batches resumed, half-full buffers restored after a crash."""

from __future__ import annotations

import pytest

from elspeth.api import Capability
from elspeth.landscape.reading import BatchRecord, BatchStatus
from elspeth_testkit import cardinality, checks
from elspeth_testkit.harness import Harness, generic_rows, read_jsonl

pytestmark = pytest.mark.elspeth_kind("aggregate")
NODE = "aggregate:under_test"


def _rows(h: Harness, n: int) -> list[dict]:
    return h.plugin.setup.input_rows or generic_rows(n)


def _pipeline(h: Harness, rows: list, subdir: str = "", count: int = 4, **engine: int) -> dict:
    aggregation = {
        "plugin": h.plugin.info.name,
        "name": "under_test",
        "options": h.options(subdir),
        "trigger": {"count": count},
    }
    return h.pipeline(rows, aggregations=[aggregation], engine=engine)


def _batches(h: Harness, result) -> list[BatchRecord]:  # type: ignore[no-untyped-def]
    return [b for b in result.records().batches if b.node_id == NODE]


def test_aggregate_contract(h: Harness, plugin_info) -> None:
    checks.contract(h)


def test_aggregate_empty_input(h: Harness, plugin_info) -> None:
    result = checks.empty_run(h, _pipeline(h, []))
    if _batches(h, result):
        h.fail("batch-empty", "no rows, yet a batch was recorded", _batches(h, result))


def test_aggregate_batch_state(h: Harness, plugin_info) -> None:
    """10 rows, count trigger 4: batches of 4, 4 and 2, fired by count, count and end of source, each with its
    own flush state, each row consumed by exactly one completed batch (class 9)."""
    rows = _rows(h, 10)
    result = h.run(_pipeline(h, rows, count=4))
    h.check(result)
    final = [b for b in _batches(h, result) if b.status == BatchStatus.COMPLETED]
    triggers = [b.trigger for b in final]
    if triggers[:2] != ["count", "count"] or triggers[-1:] != ["end_of_source"] or len(final) != 3:
        h.fail(
            "batch-triggers",
            f"expected completed batches fired by count, count, end_of_source; got {triggers}",
            _batches(h, result),
        )
    consumed = [m for m in result.records().members if m.batch_id in {b.batch_id for b in final}]
    if len(consumed) != len(rows) or len({m.token_id for m in consumed}) != len(rows):
        h.fail("batch-members", f"{len(rows)} rows should each be in one completed batch", consumed)


def test_aggregate_cardinality(h: Harness, plugin_info) -> None:
    """The ordinary rows, then per field a batch with its zero or empty value in every row and one mixing
    falsy values of several types, count trigger 4, in one run: every row is in a completed batch or a failed
    one with its error, and every completed batch gives as many outputs as the declared cardinality, or the
    rule the ordinary rows show, asks for (class 25)."""
    rows, labels = cardinality.cardinality_input(_rows(h, 12), 4)
    settings = _pipeline(h, rows, count=4)
    result = h.run(settings)
    completed = result.summary.status == "completed"
    # A run that a value of another type made fail (a raised TypeError) has said what went wrong: the
    # batches before it are judged; the rows after it never reached one.
    h.check(result, expect_status="completed" if completed else None)
    batches = cardinality.seen_batches(result, NODE, labels)
    fed = len(rows) if completed else sum(len(b.inputs) for b in batches)
    declared = cardinality.declared_rule(h, settings["aggregations"][0]["options"])
    cardinality.check_cardinality(h, batches, declared, fed)


def test_aggregate_recovery_half_full_buffer(h: Harness, plugin_info) -> None:
    """Killed with a half-full buffer (after row 7 of 10, trigger count 4): resume restores the buffer, and
    each row ends in exactly one completed batch (class 13); outputs equal an uninterrupted run's."""
    rows = _rows(h, 10)
    engine = {"checkpoint_every_rows": 1}
    source = {"kind": "source", "name": "jsonl", "method": "load", "n": 7, "when": "after"}
    run_id = f"kill-{h.scenario}"
    with checks.recovery_proxy(h) as proxy:
        settings = _pipeline(h, rows, "killed", **engine)
        if h.run_killed(settings, source, run_id) == 0:
            h.fail("kill-point", "the run finished before its 7th row")
        resumed = h.resume(run_id, settings)
        h.check(resumed)
        checks.wire_across_resume(h, proxy, settings)
    got = read_jsonl(h.sink_path("main"))
    completed = {b.batch_id for b in _batches(h, resumed) if b.status == BatchStatus.COMPLETED}
    members = [m for m in resumed.records().members if m.batch_id in completed]
    if sorted(m.token_id for m in members) != sorted({m.token_id for m in members}) or len(members) != 10:
        h.fail("batch-members", "after resume each row must be in exactly one completed batch", members)
    reference = h.run(_pipeline(h, rows, "reference"))
    h.check(reference)
    checks.same_rows(
        h,
        "resume",
        got,
        read_jsonl(h.sink_path("main")),
        "the outputs after a SIGKILL and resume, against an uninterrupted run's",
        per_cause=True,
    )


def test_aggregate_recovery_pending(h: Harness, plugin_info) -> None:
    """Killed while a batch is pending (just before the aggregate is called a second time, so the first
    batch's Pending and checkpoint are recorded): resume polls it again with its checkpoint and completes it,
    never submitting its job again (class 26)."""
    h.require(h.plugin.has(Capability.PENDING), "the aggregate does not declare 'pending'")
    rows = _rows(h, 10)
    kill = {"kind": "aggregate", "name": h.plugin.info.name, "method": "process_batch", "n": 2, "when": "before"}
    run_id = f"kill-{h.scenario}"
    with checks.recovery_proxy(h) as proxy:
        settings = _pipeline(h, rows, "killed", checkpoint_every_rows=1)
        if h.run_killed(settings, kill, run_id) == 0:
            h.fail("kill-point", "the aggregate was never called a second time")
        assert h.killed is not None
        h.require(
            h.killed.pending,
            "the aggregate answered no batch Pending before it was called a second time, so no batch was pending "
            "at the kill and resuming one went untested: give it options under which its first batch is pending "
            "(PluginSetup.options)",
            author_can_fix=True,
            invariant="pending-unexercised",
        )
        resumed = h.resume(run_id, settings)
        h.check(resumed)
        checks.wire_across_resume(h, proxy, settings)
    checks.pending_completed(h, resumed, h.killed.pending)


def test_aggregate_call_linkage(h: Harness, plugin_info) -> None:
    checks.call_linkage(h, lambda hh: _pipeline(hh, _rows(hh, 6), count=3))


def test_aggregate_sdk_failure(h: Harness, plugin_info) -> None:
    checks.sdk_failure(h, lambda hh: _pipeline(hh, _rows(hh, 6), count=3))


def test_aggregate_audit_refused(h: Harness, plugin_info) -> None:
    checks.audit_refused(h, lambda hh: _pipeline(hh, _rows(hh, 6), count=3))


def test_aggregate_secrets(h: Harness, plugin_info) -> None:
    options = h.options()
    aggregation = {"plugin": h.plugin.info.name, "name": "under_test", "options": options, "trigger": {"count": 4}}
    settings = h.pipeline(_rows(h, 6), aggregations=[aggregation])
    checks.secrets_stay_out(h, settings, options)
