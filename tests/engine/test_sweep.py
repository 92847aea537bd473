"""The sweep itself: clean on a healthy run, and each invariant caught when the Landscape, the payload
store or an output file is tampered with the way a buggy engine or plugin would leave it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from elspeth_testkit.sweep import assert_clean, sweep

from .conftest import World, healthy

Tamper = Callable[[World, sqlite3.Connection], None]


def sql(*statements: str) -> Tamper:
    def tamper(w: World, db: sqlite3.Connection) -> None:
        for statement in statements:
            assert db.execute(statement).rowcount != 0, statement

    return tamper


def orphan_call(w: World, db: sqlite3.Connection) -> None:
    db.row_factory = sqlite3.Row
    call = dict(db.execute("SELECT * FROM calls LIMIT 1").fetchone())
    call["state_id"] = 999_999
    db.execute(f"INSERT INTO calls ({', '.join(call)}) VALUES ({', '.join('?' * len(call))})", list(call.values()))


def corrupt_payload(w: World, db: sqlite3.Connection) -> None:
    ref = db.execute("SELECT request_ref FROM calls WHERE request_ref IS NOT NULL LIMIT 1").fetchone()[0]
    path = w.root / "payloads" / ref[:2] / ref[2:]
    path.write_bytes(path.read_bytes().replace(b"lorem", b"LOREM", 1))


def append_to_output(w: World, db: sqlite3.Connection) -> None:
    with w.out("out").open("ab") as f:
        f.write(b'{"id": "smuggled"}\n')


def overwrite_output(w: World, db: sqlite3.Connection) -> None:
    lines = w.out("out").read_bytes().splitlines(keepends=True)
    w.out("out").write_bytes(b"".join(lines[-1:]))  # as a sink that replaces the file on every write


FIRST_CHILD = "(SELECT min(token_id) FROM tokens WHERE parent_token_id IS NOT NULL)"
FIRST_OUTPUT = "(SELECT min(token_id) FROM tokens WHERE origin_batch_id IS NOT NULL)"

TAMPERS: dict[str, tuple[Tamper, str]] = {
    "outcome deleted": (
        sql("DELETE FROM token_outcomes WHERE token_id = (SELECT max(token_id) FROM token_outcomes)"),
        "outcome-missing",
    ),
    "state reopened": (
        sql("UPDATE node_states SET status = 'open', ended_at = NULL WHERE state_id = 3"),
        "open-state",
    ),
    "call under a missing state": (orphan_call, "fk-check"),
    "call index gap": (
        sql("DELETE FROM calls WHERE call_index = 0 AND state_id = (SELECT min(state_id) FROM calls)"),
        "call-index-gap",
    ),
    "request hash wrong": (
        sql("UPDATE calls SET request_hash = printf('%064d', 0) WHERE state_id = (SELECT min(state_id) FROM calls)"),
        "call-hash",
    ),
    "response not stored": (
        sql("UPDATE calls SET response_json = NULL WHERE state_id = (SELECT min(state_id) FROM calls)"),
        "call-body",
    ),
    "payload corrupted": (corrupt_payload, "payload-hash"),
    "bytes appended after the last flush": (append_to_output, "artifact-bytes"),
    "earlier batches overwritten": (overwrite_output, "artifact-bytes"),
    "batch left executing": (sql("UPDATE batches SET status = 'executing' WHERE batch_id = 0"), "stuck-batch"),
    "batch flushed under another node's state": (
        sql("UPDATE batches SET flush_state_id = 0 WHERE batch_id = 0"),
        "batch-flush",
    ),
    "member not consumed": (
        sql(
            "UPDATE token_outcomes SET outcome = 'failed' WHERE token_id = "
            "(SELECT min(token_id) FROM token_outcomes WHERE outcome = 'consumed')"
        ),
        "consumed-batch",
    ),
    "row payload changed": (sql("UPDATE rows SET payload_json = '{\"id\": -1}' WHERE row_id = 0"), "payload-hash"),
    "NaN stored": (sql("UPDATE rows SET payload_json = '{\"id\": NaN}' WHERE row_id = 1"), "non-canonical-json"),
    "row without a token": (
        sql(
            "INSERT INTO rows (run_id, row_id, payload_json, payload_hash, quarantined) "
            "SELECT run_id, 1000, payload_json, payload_hash, quarantined FROM rows WHERE row_id = 2"
        ),
        "row-token",
    ),
    "child dropped": (
        sql(
            f"DELETE FROM token_outcomes WHERE token_id = {FIRST_CHILD}",
            f"DELETE FROM node_states WHERE token_id = {FIRST_CHILD}",
            f"DELETE FROM tokens WHERE token_id = {FIRST_CHILD}",
        ),
        "expansion-children",
    ),
    "parent not expanded": (
        sql("UPDATE token_outcomes SET outcome = 'filtered' WHERE outcome = 'expanded' AND token_id = 0"),
        "lineage",
    ),
    "batch output dropped": (
        sql(
            f"DELETE FROM token_outcomes WHERE token_id = {FIRST_OUTPUT}",
            f"DELETE FROM tokens WHERE token_id = {FIRST_OUTPUT}",
        ),
        "batch-outputs",
    ),
}


def test_a_healthy_run_sweeps_clean(world):
    w = world("w")
    run_id = healthy(w)
    assert sweep(w.url, run_id) == []
    assert_clean(w.url, run_id, payload_dir=w.root / "payloads")


@pytest.mark.parametrize("case", list(TAMPERS))
def test_the_sweep_catches(world, case):
    w = world("w")
    run_id = healthy(w)
    tamper, invariant = TAMPERS[case]
    db = sqlite3.connect(Path(w.root / "landscape.db"))
    try:
        db.execute("PRAGMA foreign_keys = OFF")
        tamper(w, db)
        db.commit()
    finally:
        db.close()

    found = {v.invariant for v in sweep(w.url, run_id)}
    assert invariant in found, found
    with pytest.raises(AssertionError) as report:
        assert_clean(w.url, run_id)
    assert f"[{invariant}]" in str(report.value) and run_id in str(report.value)


def test_a_missing_run_is_reported(world):
    w = world("w")
    healthy(w)
    assert [v.invariant for v in sweep(w.url, "no-such-run")] == ["run-missing"]
