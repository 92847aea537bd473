"""Sinks driven by the engine: many writes, artifacts that describe the bytes, crashes inside write and
flush (bug classes 1, 2, 11, 14)."""

from __future__ import annotations

import hashlib

import pytest

from elspeth.errors import ResumeError

ROWS = 100


def test_class1_many_writes_keep_every_row_in_order_also_across_a_resume(world):
    crashed, clean = world("crashed"), world("clean")
    settings = crashed.settings(source={"plugin": "test_numbers", "options": {"count": ROWS}})
    failed = crashed.run(settings, faults={"out": {"at": "write", "n": 9, "action": "raise"}})
    assert failed.status == "failed"
    writes = crashed.query("SELECT count(*) AS n FROM node_states WHERE node_id = 'sink:out' AND operation = 'write'")
    assert writes[0]["n"] >= 9, "the first attempt should have called write() many times"

    resumed = crashed.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error
    assert [row["id"] for row in crashed.lines("out")] == list(range(ROWS))

    reference = clean.run(clean.settings(source={"plugin": "test_numbers", "options": {"count": ROWS}}))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(failed.run_id)
    clean.assert_clean(reference.run_id)


def test_class2_every_artifact_describes_all_bytes_stored_when_it_was_flushed(world):
    w = world("w")
    settings = w.settings(source={"plugin": "test_numbers", "options": {"count": ROWS}})
    failed = w.run(settings, faults={"out": {"at": "flush", "n": 3, "action": "raise"}})
    assert failed.status == "failed"
    resumed = w.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error

    data = w.bytes("out")
    artifacts = w.query(
        "SELECT artifact_id, content_hash, size, row_count FROM artifacts WHERE run_id = :run ORDER BY artifact_id",
        run=failed.run_id,
    )
    assert len(artifacts) >= 5
    for artifact in artifacts:
        prefix = data[: artifact["size"]]
        assert len(prefix) == artifact["size"]
        # The sink appends, so each flush's artifact is the hash of the whole file as it then stood.
        assert hashlib.sha256(prefix).hexdigest() == artifact["content_hash"], artifact
        assert prefix.count(b"\n") == artifact["row_count"], artifact
    assert artifacts[-1]["size"] == len(data)
    assert resumed.artifacts[0].content_hash == hashlib.sha256(data).hexdigest()
    w.assert_clean(failed.run_id)


@pytest.mark.parametrize("point", ["write", "flush"])
def test_class11_kill_inside_sink_leaves_its_rows_unfinished_and_resume_delivers_them(world, point):
    crashed, clean = world("crashed"), world("clean")
    settings = crashed.settings(source={"plugin": "test_numbers", "options": {"count": ROWS}})
    # write #4 is in the second checkpoint interval (7 rows a write, a flush every 20 rows); flush #2 ends it.
    crashed.killed(
        settings, "run-1", faults={"out": {"at": point, "n": 4 if point == "write" else 2, "action": "kill"}}
    )

    artifacts = crashed.query("SELECT size, row_count FROM artifacts WHERE run_id = 'run-1' ORDER BY artifact_id")
    assert len(artifacts) == 1, "only the first flush was recorded before the kill"
    done = crashed.query("SELECT count(*) AS n FROM token_outcomes WHERE run_id = 'run-1' AND outcome = 'completed'")[
        0
    ]["n"]
    assert done == artifacts[0]["row_count"], "outcomes recorded for rows no recorded flush made durable"
    assert crashed.out("out").stat().st_size > artifacts[0]["size"], "the killed attempt wrote past its flush"

    resumed = crashed.resume("run-1", settings)
    assert resumed.status == "completed", resumed.error
    assert [row["id"] for row in crashed.lines("out")] == list(range(ROWS))
    clean.run(clean.settings(source={"plugin": "test_numbers", "options": {"count": ROWS}}))
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_class11_kill_right_after_a_flush_committed_resume_redelivers_nothing_it_confirmed(world):
    crashed, clean = world("crashed"), world("clean")
    settings = crashed.settings(
        source={"plugin": "test_numbers", "options": {"count": ROWS}}, transforms=[{"plugin": "passthrough"}]
    )
    crashed.killed(settings, "run-1", faults={"out": {"at": "after_flush", "n": 2, "action": "kill"}})
    artifacts = crashed.query("SELECT size, row_count FROM artifacts WHERE run_id = 'run-1' ORDER BY artifact_id")
    assert [a["row_count"] for a in artifacts] == [20, 40]
    assert crashed.out("out").stat().st_size == artifacts[-1]["size"]
    confirmed = crashed.query(
        "SELECT t.row_id FROM token_outcomes o JOIN tokens t ON t.run_id = o.run_id AND t.token_id = o.token_id "
        "WHERE o.run_id = 'run-1' ORDER BY t.row_id"
    )
    assert [r["row_id"] for r in confirmed] == list(range(40))
    high = crashed.query("SELECT max(state_id) AS s FROM node_states WHERE run_id = 'run-1'")[0]["s"]

    resumed = crashed.resume("run-1", settings)
    assert resumed.status == "completed", resumed.error
    again = crashed.query(
        "SELECT count(*) AS n FROM node_states s JOIN tokens t ON t.run_id = s.run_id AND t.token_id = s.token_id "
        "WHERE s.run_id = 'run-1' AND s.state_id > :high AND t.row_id < 40",
        high=high,
    )
    assert again == [{"n": 0}], "rows the flush confirmed were processed again"
    assert [row["id"] for row in crashed.lines("out")] == list(range(ROWS))
    clean.run(
        clean.settings(
            source={"plugin": "test_numbers", "options": {"count": ROWS}}, transforms=[{"plugin": "passthrough"}]
        )
    )
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_class14_kill_after_a_torn_write_then_resume_neither_duplicates_nor_truncates(world):
    crashed, clean = world("crashed"), world("clean")
    settings = crashed.settings(
        source={"plugin": "test_numbers", "options": {"count": ROWS}},
        engine={"write_batch_rows": 6, "checkpoint_every_rows": 15},
    )
    # write #9 comes after three flushes; half its rows reach the file before the kill.
    crashed.killed(settings, "run-1", faults={"out": {"at": "write", "n": 9, "action": "kill"}})
    flushed = crashed.query("SELECT max(size) AS size FROM artifacts WHERE run_id = 'run-1'")[0]["size"]
    torn = crashed.bytes("out")
    assert len(torn) > flushed
    durable = torn[:flushed]

    resumed = crashed.resume("run-1", settings)
    assert resumed.status == "completed", resumed.error
    assert crashed.bytes("out").startswith(durable), "the resume changed bytes an earlier attempt made durable"
    ids = [row["id"] for row in crashed.lines("out")]
    assert ids == list(range(ROWS)), "rows lost or duplicated across the resume"
    clean.run(
        clean.settings(
            source={"plugin": "test_numbers", "options": {"count": ROWS}},
            engine={"write_batch_rows": 6, "checkpoint_every_rows": 15},
        )
    )
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean("run-1")


def test_class14_a_sink_that_cannot_resume_is_refused_up_front(world):
    w = world("w")
    path = w.root / "out" / "fragile.jsonl"
    settings = w.settings(
        transforms=[{"plugin": "test_fault", "options": {"tag": "boom"}}],
        sinks={"fragile": {"plugin": "test_unresumable_sink", "options": {"path": str(path)}}},
    )
    failed = w.run(settings, faults={"boom": {"at": "process", "n": 50, "action": "raise"}})
    assert failed.status == "failed"
    before = path.read_bytes()

    with pytest.raises(ResumeError) as refused:
        w.resume(failed.run_id, settings)
    message = str(refused.value)
    assert "fragile" in message and "resumable" in message
    run = w.query("SELECT status, attempt FROM runs WHERE run_id = :run", run=failed.run_id)[0]
    assert run == {"status": "failed", "attempt": 1}, "a refused resume must not touch the run"
    assert path.read_bytes() == before, "a refused resume must not touch the output"
    w.assert_clean(failed.run_id)
