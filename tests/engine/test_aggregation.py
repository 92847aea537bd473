"""Aggregation batches: audited flushes with their triggers, no leftovers, and recovery of buffered, pending
and half-emitted batches (bug classes 8, 9, 13)."""

from __future__ import annotations

from collections import Counter

import pytest

from elspeth_testkit.sweep import report

from .sample_plugins import FakeClock


def batched(w, *, count=50, trigger=None, pending_polls=0, record_calls=True, transforms=(), **engine):
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": count}},
        transforms=list(transforms),
        aggregations=[
            {
                "plugin": "test_batcher",
                "name": "batcher",
                "options": {"pending_polls": pending_polls, "record_calls": record_calls, "tag": "batcher"},
                "trigger": trigger or {},
            }
        ],
        engine=engine or None,
    )


def batches_of(w, run_id):
    """Completed batches in order, each with its trigger and the source row ids of its members."""
    found = w.query(
        "SELECT b.batch_id, b.trigger, b.flush_state_id, group_concat(t.row_id) AS rows FROM batches b "
        "JOIN batch_members m ON m.run_id = b.run_id AND m.batch_id = b.batch_id "
        "JOIN tokens t ON t.run_id = m.run_id AND t.token_id = m.token_id "
        "WHERE b.run_id = :run AND b.status = 'completed' GROUP BY b.batch_id ORDER BY b.batch_id",
        run=run_id,
    )
    for batch in found:
        batch["rows"] = sorted(int(r) for r in batch["rows"].split(","))
    return found


def assert_each_row_in_exactly_one_completed_batch(w, run_id, count):
    members = [row for batch in batches_of(w, run_id) for row in batch["rows"]]
    assert Counter(members) == Counter(range(count)), "each source row in exactly one completed batch"
    emitted = [i for line in w.lines("out") for i in line["ids"]]
    assert Counter(emitted) == Counter(range(count)), "each source row in exactly one batch output"


def test_class9_every_flush_is_audited_with_its_trigger(world):
    w = world("w")
    settings = batched(
        w,
        count=23,
        trigger={"count": 5, "timeout_seconds": 50},
        transforms=[{"plugin": "test_sleep", "options": {"seconds": 100, "at": [13]}}],
    )
    summary = w.run(settings, clock=FakeClock())
    assert summary.status == "completed", summary.error

    batches = batches_of(w, summary.run_id)
    assert [(b["trigger"], b["rows"]) for b in batches] == [
        ("count", [0, 1, 2, 3, 4]),
        ("count", [5, 6, 7, 8, 9]),
        ("timeout", [10, 11, 12, 13]),
        ("count", [14, 15, 16, 17, 18]),
        ("end_of_source", [19, 20, 21, 22]),
    ]
    states = w.query(
        "SELECT s.state_id, s.node_id, s.operation, s.status FROM batches b JOIN node_states s "
        "ON s.run_id = b.run_id AND s.state_id = b.flush_state_id WHERE b.run_id = :run",
        run=summary.run_id,
    )
    assert len({s["state_id"] for s in states}) == len(batches), "each flush is a node_state of its own"
    assert all(
        s["node_id"] == "aggregate:batcher" and s["operation"] == "flush" and s["status"] == "completed" for s in states
    )
    assert w.query(
        "SELECT count(*) AS n FROM batches WHERE run_id = :run AND status != 'completed'", run=summary.run_id
    ) == [{"n": 0}]
    assert_each_row_in_exactly_one_completed_batch(w, summary.run_id, 23)
    w.assert_clean(summary.run_id)


def test_class8_failed_run_leaves_no_open_state_and_its_failed_batch_is_retried(world):
    w = world("w")
    settings = batched(w, trigger={"count": 10})
    failed = w.run(settings, faults={"batcher": {"at": "batch", "n": 3, "action": "raise"}})
    assert failed.status == "failed"
    batch = w.query(
        "SELECT status, trigger, flush_state_id, error_json FROM batches WHERE run_id = :run ORDER BY batch_id",
        run=failed.run_id,
    )
    assert [b["status"] for b in batch] == ["completed", "completed", "failed"]
    assert batch[2]["trigger"] == "count" and batch[2]["flush_state_id"] is not None
    assert "injected fault" in batch[2]["error_json"]
    w.assert_clean(failed.run_id)

    resumed = w.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error
    retry = w.query(
        "SELECT trigger, retry_of, status FROM batches WHERE run_id = :run AND retry_of IS NOT NULL", run=failed.run_id
    )
    assert retry == [{"trigger": "retry", "retry_of": 2, "status": "completed"}]
    assert_each_row_in_exactly_one_completed_batch(w, failed.run_id, 50)
    w.assert_clean(failed.run_id)


def test_class8_ctrl_c_inside_a_batch_flush_leaves_no_batch_executing(world):
    """Ctrl-C while process_batch runs: the interrupted run's Landscape must not claim the batch is still
    executing (its flush state is closed; nothing runs it), and a resume finishes it."""
    w = world("w")
    settings = batched(w, trigger={"count": 10})
    interrupted = w.run(settings, faults={"batcher": {"at": "batch", "n": 3, "action": "interrupt"}})
    assert interrupted.status == "interrupted"
    leftovers = w.sweep(interrupted.run_id)

    resumed = w.resume(interrupted.run_id, settings)
    assert resumed.status == "completed", resumed.error
    assert_each_row_in_exactly_one_completed_batch(w, interrupted.run_id, 50)
    w.assert_clean(interrupted.run_id)
    assert not leftovers, report(leftovers, interrupted.run_id)


@pytest.mark.parametrize("record_calls", [False, True], ids=["buffer-only", "flush-committed-by-a-call"])
def test_class13_kill_with_a_half_full_buffer_each_row_in_exactly_one_batch(world, record_calls):
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return batched(
            w,
            trigger={"count": 8},
            record_calls=record_calls,
            transforms=[{"plugin": "test_fault", "options": {"tag": "killer"}}],
        )

    # Checkpoint at row 20 commits a draft batch holding rows 16-19; the kill comes at row 25, with rows
    # 24 and 25 in the next buffer (and, when flushes record calls, batch 16-23 committed mid-flush).
    crashed.killed(settings(crashed), "run-1", faults={"killer": {"at": "process", "n": 26, "action": "kill"}})
    drafts = crashed.query(
        "SELECT b.batch_id, count(*) AS members FROM batches b JOIN batch_members m "
        "ON m.run_id = b.run_id AND m.batch_id = b.batch_id WHERE b.run_id = 'run-1' AND b.status != 'completed' "
        "GROUP BY b.batch_id"
    )
    assert drafts, "the kill should leave an unfinished batch with members behind"

    resumed = crashed.resume("run-1", settings(crashed))
    assert resumed.status == "completed", resumed.error
    assert_each_row_in_exactly_one_completed_batch(crashed, "run-1", 50)
    clean.run(settings(clean))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_class13_kill_while_a_batch_is_pending_resume_polls_it_with_its_checkpoint(world):
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return batched(w, pending_polls=3)

    # Calls: 1 submits (Pending), 2 polls (Pending), 3 polls: killed there.
    crashed.killed(settings(crashed), "run-1", faults={"batcher": {"at": "batch", "n": 3, "action": "kill"}})
    pending = crashed.query("SELECT status, checkpoint_json FROM batches WHERE run_id = 'run-1'")
    assert pending == [{"status": "executing", "checkpoint_json": '{"polls":2,"job":"job-0-50"}'}]

    resumed = crashed.resume("run-1", settings(crashed))
    assert resumed.status == "completed", resumed.error
    calls = crashed.query("SELECT call_type, count(*) AS n FROM calls WHERE run_id = 'run-1' GROUP BY call_type")
    assert {c["call_type"]: c["n"] for c in calls} == {"submit": 1, "poll": 3}, "the job was submitted again"
    assert_each_row_in_exactly_one_completed_batch(crashed, "run-1", 50)
    clean.run(settings(clean))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_class13_crash_while_delivering_batch_outputs_resume_loses_none(world):
    """A completed batch emits one row per group; the sink fails on the second. The batch is recorded
    completed and its members CONSUMED, so a resume must still deliver every output row."""
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return w.settings(
            source={"plugin": "test_numbers", "options": {"count": 24, "groups": 3}},
            aggregations=[
                {"plugin": "stats", "options": {"group_by": "group", "fields": ["value"]}, "trigger": {"count": 12}}
            ],
            engine={"write_batch_rows": 1},
        )

    failed = crashed.run(settings(crashed), faults={"out": {"at": "write", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    resumed = crashed.resume(failed.run_id, settings(crashed))
    assert resumed.status == "completed", resumed.error

    clean.run(settings(clean))
    assert len(clean.lines("out")) == 6
    assert crashed.lines("out") == clean.lines("out")
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(failed.run_id)


def test_class10_a_poll_that_raises_keeps_the_pending_checkpoint_for_the_resume(world):
    """The batch was submitted (its job id is in the checkpoint); then a poll raised. The external job
    still exists: a resume must poll it with the checkpoint, not submit the rows again as a new job."""
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return batched(w, pending_polls=2)

    failed = crashed.run(settings(crashed), faults={"batcher": {"at": "batch", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    resumed = crashed.resume(failed.run_id, settings(crashed))
    assert resumed.status == "completed", resumed.error

    submits = crashed.query(
        "SELECT request_json FROM calls WHERE run_id = :run AND call_type = 'submit'", run=failed.run_id
    )
    assert len(submits) == 1, f"the rows were submitted {len(submits)} times: {submits}"
    assert_each_row_in_exactly_one_completed_batch(crashed, failed.run_id, 50)
    clean.run(settings(clean))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(failed.run_id)
