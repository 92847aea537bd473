"""Resuming runs that failed, were interrupted or were killed: the result equals an uninterrupted run's
(bug class 12, Ctrl-C, and a crash in the middle of a fan-out)."""

from __future__ import annotations

import signal
from collections import Counter

ROWS = 120


def routed(w, **engine):
    """Rows go to sink a or b by their `dest` field (every third row to b), interleaved."""
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": ROWS, "b_every": 3}},
        transforms=[{"plugin": "route", "options": {"field": "dest", "routes": {"a": "a", "b": "b"}}}],
        sinks=["a", "b"],
        engine=engine or None,
    )


def assert_routed_output(w, reference) -> None:
    a, b = [row["id"] for row in w.lines("a")], [row["id"] for row in w.lines("b")]
    assert Counter(a + b) == Counter(range(ROWS)), "every source row exactly once across both sinks"
    assert a == [i for i in range(ROWS) if i % 3], "sink a: its rows in order"
    assert b == [i for i in range(ROWS) if i % 3 == 0], "sink b: its rows in order"
    assert w.bytes("a") == reference.bytes("a")
    assert w.bytes("b") == reference.bytes("b")


def test_class12_two_sinks_second_fails_resume_completes_both(world):
    crashed, clean = world("crashed"), world("clean")
    settings = routed(crashed)
    # At the second checkpoint sink a flushes (and commits) first, then sink b's flush fails.
    failed = crashed.run(settings, faults={"b": {"at": "flush", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    done = crashed.query(
        "SELECT s.node_id, max(t.row_id) AS last_row FROM token_outcomes o "
        "JOIN tokens t ON t.run_id = o.run_id AND t.token_id = o.token_id "
        "JOIN nodes s ON s.run_id = o.run_id AND s.node_id = o.sink_node_id "
        "WHERE o.run_id = :run GROUP BY s.node_id",
        run=failed.run_id,
    )
    last = {r["node_id"]: r["last_row"] for r in done}
    assert last["sink:a"] > last["sink:b"] + 3, "sink a must have finished rows past sink b's failure"

    resumed = crashed.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error
    reference = clean.run(routed(clean))
    assert_routed_output(crashed, clean)
    crashed.assert_clean(failed.run_id)
    clean.assert_clean(reference.run_id)


def test_class12_two_sinks_b_killed_mid_run_resumed_in_a_new_process(world):
    crashed, clean = world("crashed"), world("clean")
    settings = routed(crashed)
    crashed.killed(settings, "run-1", faults={"b": {"at": "write", "n": 3, "action": "kill"}})
    assert crashed.query("SELECT status FROM runs WHERE run_id = 'run-1'") == [{"status": "running"}]

    resumed = crashed.subprocess(settings, "run-1", resume=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    clean.run(routed(clean))
    assert_routed_output(crashed, clean)
    crashed.assert_clean("run-1")


def test_ctrl_c_in_a_plugin_records_interrupted_and_resume_completes(world):
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return w.settings(
            source={"plugin": "test_numbers", "options": {"count": ROWS}},
            transforms=[{"plugin": "test_fault", "options": {"tag": "ctrl_c"}}],
        )

    interrupted = crashed.run(settings(crashed), faults={"ctrl_c": {"at": "process", "n": 57, "action": "interrupt"}})
    assert interrupted.status == "interrupted"
    assert crashed.query("SELECT status FROM runs WHERE run_id = :run", run=interrupted.run_id) == [
        {"status": "interrupted"}
    ]
    crashed.assert_clean(interrupted.run_id)

    resumed = crashed.resume(interrupted.run_id, settings(crashed))
    assert resumed.status == "completed", resumed.error
    assert [row["id"] for row in crashed.lines("out")] == list(range(ROWS))
    clean.run(settings(clean))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(interrupted.run_id)


def test_recovery_crash_between_fanout_children_loses_none_of_them(world):
    """A row fans out into 3 children; a later transform fails on the 2nd child of row 1. The run stops
    with the parent recorded EXPANDED and only the children created so far; a resume must still deliver
    all three (DESIGN 4.5: no silent drops)."""
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return w.settings(
            source={"plugin": "test_numbers", "options": {"count": 10}},
            transforms=[
                {"plugin": "test_fanout", "options": {"copies": 3}},
                {"plugin": "test_fault", "options": {"tag": "child"}},
            ],
        )

    failed = crashed.run(settings(crashed), faults={"child": {"at": "process", "n": 5, "action": "raise"}})
    assert failed.status == "failed"
    resumed = crashed.resume(failed.run_id, settings(crashed))
    assert resumed.status == "completed", resumed.error

    clean.run(settings(clean))
    expected = [(i, k) for i in range(10) for k in range(3)]
    assert [(row["id"], row["copy"]) for row in crashed.lines("out")] == expected
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(failed.run_id)


def test_recovery_kill_between_fanout_children_loses_none_of_them(world):
    """As above, but SIGKILLed: the call the 2nd child's transform records commits the parent's EXPANDED
    outcome with only the children created so far, so even an atomic kill leaves the expansion torn."""
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        return w.settings(
            source={"plugin": "test_numbers", "options": {"count": 10}},
            transforms=[
                {"plugin": "test_fanout", "options": {"copies": 3}},
                {"plugin": "test_caller", "options": {"calls": 1}},
                {"plugin": "test_fault", "options": {"tag": "child"}},
            ],
        )

    crashed.killed(settings(crashed), "run-1", faults={"child": {"at": "process", "n": 5, "action": "kill"}})
    resumed = crashed.resume("run-1", settings(crashed))
    assert resumed.status == "completed", resumed.error

    clean.run(settings(clean))
    expected = [(i, k) for i in range(10) for k in range(3)]
    assert [(row["id"], row["copy"]) for row in crashed.lines("out")] == expected
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_recovery_killed_twice_resumed_twice_equals_an_uninterrupted_run(world):
    crashed, clean = world("crashed"), world("clean")
    settings = routed(crashed, write_batch_rows=5, checkpoint_every_rows=13)
    crashed.killed(settings, "run-1", faults={"a": {"at": "write", "n": 4, "action": "kill"}})
    again = crashed.subprocess(settings, "run-1", faults={"b": {"at": "flush", "n": 2, "action": "kill"}}, resume=True)
    assert again.returncode == -signal.SIGKILL, again.stdout + again.stderr
    assert crashed.query("SELECT attempt FROM runs WHERE run_id = 'run-1'") == [{"attempt": 2}]

    resumed = crashed.resume("run-1", settings)
    assert resumed.status == "completed", resumed.error
    clean.run(routed(clean, write_batch_rows=5, checkpoint_every_rows=13))
    assert_routed_output(crashed, clean)
    crashed.assert_clean("run-1")


def test_a_resumes_summary_counts_the_rows_it_read_apart_from_the_runs(world):
    """Its rows/s must not divide the whole run's rows by the resume's time (issue 11 section 4)."""
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": ROWS}},
        transforms=[{"plugin": "test_fault", "options": {"tag": "ctrl_c"}}],
    )
    interrupted = w.run(settings, faults={"ctrl_c": {"at": "process", "n": 57, "action": "interrupt"}})
    resumed = w.resume(interrupted.run_id, settings)
    assert resumed.status == "completed", resumed.error
    assert (interrupted.rows_read, interrupted.rows_this_attempt) == (57, 57)
    assert (resumed.rows_read, resumed.rows_this_attempt) == (ROWS, ROWS - 57)
