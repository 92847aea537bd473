"""Retention: a purged run loses its row and call bodies and keeps every record and every hash, so it is
still explained, from hashes; payload files shared with unpurged runs stay until no such run needs them."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest
from sqlalchemy import text

from elspeth.errors import ElspethError, ResumeError
from elspeth.landscape import lineage
from elspeth.landscape.database import open_database
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.retention import purge_of, purge_run, select_runs

BODY_COLUMNS = {
    "rows": ["payload_json"],
    "tokens": ["payload_json"],
    "batch_members": ["payload_json"],
    "calls": ["request_json", "response_json"],
}


def calls_and_batches(w: Any, sink: str) -> dict[str, Any]:
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": 20}},
        transforms=[{"plugin": "test_caller", "options": {"calls": 2, "error_every": 7, "big_every": 5}}],
        aggregations=[{"plugin": "test_batcher", "name": "batcher", "trigger": {"count": 10}}],
        sinks=(sink,),
    )


def explained(w: Any, run_id: str) -> list[dict[str, Any]]:
    """Every row's lineage as data, with the bodies (payload, call previews) set aside."""
    engine = open_database(w.url)
    try:
        with engine.connect() as conn:
            rows = [attrs.asdict(lineage.row_lineage(conn, run_id, n)) for n in range(20)]
    finally:
        engine.dispose()
    for row in rows:
        row.pop("payload"), row.pop("purged")
        for token in row["tokens"]:
            token.pop("payload")
        for state in row["states"]:
            state.pop("output"), state.pop("output_status")
            for call in state["calls"]:
                for body in ("request_preview", "response_preview", "request", "response"):
                    call.pop(body)
    return rows


def refs(w: Any, run_id: str) -> set[str]:
    found = w.query(
        "SELECT request_ref AS ref FROM calls WHERE run_id = :run AND request_ref IS NOT NULL "
        "UNION SELECT response_ref FROM calls WHERE run_id = :run AND response_ref IS NOT NULL",
        run=run_id,
    )
    return {r["ref"] for r in found}


def bodies_left(w: Any, run_id: str) -> dict[str, int]:
    return {
        f"{table}.{column}": w.query(
            f"SELECT count(*) AS n FROM {table} WHERE run_id = :run AND {column} IS NOT NULL", run=run_id
        )[0]["n"]
        for table, columns in BODY_COLUMNS.items()
        for column in columns
    }


def test_purge_a_run_and_still_explain_it_from_hashes(world):
    w = world("w")
    first = w.run(calls_and_batches(w, "a"))
    second = w.run(calls_and_batches(w, "b"))
    assert first.status == second.status == "completed", (first.error, second.error)
    shared = refs(w, first.run_id)
    assert shared and shared == refs(w, second.run_id), "the same bodies: the store holds them once"
    before = explained(w, first.run_id)
    assert all(bodies_left(w, first.run_id).values())

    engine = open_database(w.url)
    store = FilePayloadStore(w.payload_dir)
    try:
        record = purge_run(engine, store, first.run_id, cutoff=None)
    finally:
        engine.dispose()

    calls = w.query("SELECT count(*) AS n FROM calls WHERE run_id = :run", run=first.run_id)[0]["n"]
    assert (record.rows_cleared, record.calls_cleared, record.payload_files_removed) == (20, calls, 0)
    assert record.batch_members_cleared == 20 and record.tokens_cleared >= 2
    assert set(bodies_left(w, first.run_id).values()) == {0}, "no body of the purged run is left"
    assert all(store.exists(ref) for ref in shared), "the unpurged run still needs its payload files"
    assert explained(w, first.run_id) == before, "every state, call, batch, outcome and hash is still there"
    assert w.query("PRAGMA foreign_key_check") == []
    w.assert_clean(first.run_id)
    w.assert_clean(second.run_id)

    engine = open_database(w.url)
    try:
        with engine.connect() as conn:
            row = lineage.row_lineage(conn, first.run_id, 5)
            overview = lineage.run_overview(conn, first.run_id)
            assert purge_of(conn, first.run_id) == record and purge_of(conn, second.run_id) is None
        assert row.payload is None and row.purged and row.payload_hash
        previews = {c.request_preview for s in row.states for c in s.calls}
        assert previews == {"(purged; its sha256 is kept)"}
        assert overview.purge == record and overview.run.purged_at == record.purged_at

        again = purge_run(engine, store, second.run_id, cutoff=None)
    finally:
        engine.dispose()
    assert again.payload_files_removed == len(shared)
    assert not any(store.exists(ref) for ref in shared), "once no unpurged run refers to a file, it goes"

    with pytest.raises(ResumeError, match="was purged"):
        w.resume(first.run_id, calls_and_batches(w, "a"))


def test_runs_that_could_be_resumed_are_kept_unless_asked_and_a_purge_is_never_repeated(world):
    w = world("w")
    settings = w.settings(source={"plugin": "test_numbers", "options": {"count": 10}})
    failed = w.run(settings, faults={"out": {"at": "flush", "n": 1, "action": "raise"}})
    assert failed.status == "failed"
    w.out("out").unlink(missing_ok=True)
    done = w.run(settings)
    assert done.status == "completed", done.error

    engine = open_database(w.url)
    store = FilePayloadStore(w.payload_dir)
    try:
        with engine.connect() as conn:
            past = select_runs(conn, cutoff=time.time() - 3600)
            assert past.purge == [] and past.kept == [], "nothing ended an hour ago"
            now = select_runs(conn, cutoff=time.time() + 1)
            assert [c.run_id for c in now.purge] == [done.run_id]
            assert [(c.run_id, reason.split(",")[0]) for c, reason in now.kept] == [(failed.run_id, "failed")]
            forced = select_runs(conn, cutoff=time.time() + 1, include_unfinished=True)
            assert {c.run_id for c in forced.purge} == {failed.run_id, done.run_id}
            with pytest.raises(ElspethError, match="no run 'nope'"):
                select_runs(conn, cutoff=None, run_ids=["nope"])
        purge_run(engine, store, failed.run_id, cutoff=None)
        with engine.connect() as conn:
            assert select_runs(conn, cutoff=None, run_ids=[failed.run_id]).purge == [], "purged once, not twice"
    finally:
        engine.dispose()
    with pytest.raises(ResumeError, match="was purged"):
        w.resume(failed.run_id, settings)


def test_the_sweep_finds_a_body_missing_from_a_run_that_was_not_purged(world):
    """The database lets bodies be NULL, for purged runs' sake; for any other run the kit's sweep refuses it."""
    w = world("w")
    done = w.run(calls_and_batches(w, "a"))
    assert done.status == "completed", done.error
    w.assert_clean(done.run_id)
    with w.connect() as conn:
        run = {"run": done.run_id}
        conn.execute(text("UPDATE rows SET payload_json = NULL WHERE run_id = :run AND row_id = 3"), run)
        conn.execute(text("UPDATE tokens SET payload_json = NULL WHERE run_id = :run AND row_id IS NULL"), run)
        conn.execute(text("UPDATE calls SET request_json = NULL WHERE run_id = :run AND request_ref IS NULL"), run)
        conn.commit()
    found = {(v.invariant, v.message.split(" ")[0]) for v in w.sweep(done.run_id)}
    assert {("row-body", "rows"), ("row-body", "tokens"), ("call-body", "call(s)")} <= found
