"""The declared read API (elspeth.landscape.reading): a run's records hold exactly what its tables hold
(read back here with SQL, from the outside), bodies kept in the payload store are read from it and checked,
and the example in docs/landscape-reading.md runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from elspeth.canonical import stable_hash
from elspeth.errors import LandscapeError
from elspeth.landscape.reading import (
    Body,
    CallStatus,
    RunStatus,
    StateStatus,
    TokenOutcome,
    open_landscape,
)

from .conftest import World, healthy

ROOT = Path(__file__).resolve().parents[2]

TABLES = {
    "nodes": ("nodes", "node_id"),
    "rows": ("rows", "row_id"),
    "tokens": ("tokens", "token_id"),
    "states": ("node_states", "state_id"),
    "calls": ("calls", "state_id, call_index"),
    "batches": ("batches", "batch_id"),
    "members": ("batch_members", "batch_id, ordinal"),
    "artifacts": ("artifacts", "artifact_id"),
    "checkpoints": ("checkpoints", "checkpoint_id"),
    "outcomes": ("token_outcomes", "token_id"),
}
"""Kind of record: its table and primary key (after run_id)."""


def _matches(record: Any, row: dict[str, Any]) -> list[str]:
    """The columns of `row` the record does not give back: each column is a field of the record, or a part of
    one of its bodies (`request_json`, `request_ref`, `request_hash` of `request`)."""
    wrong = []
    for column, value in row.items():
        if column == "run_id":
            continue
        name, _, part = column.rpartition("_")
        body = getattr(record, name, None)
        if isinstance(body, Body) and part in ("json", "ref", "hash"):
            got = {"json": body.text if body.ref is None else None, "ref": body.ref, "hash": body.hash}[part]
        else:
            got = getattr(record, column)
        if got != value:
            wrong.append(f"{column}: {got!r} != {value!r}")
    return wrong


def test_each_kind_of_record_holds_its_tables_rows(world):
    w = world("w")
    run_id = healthy(w)
    with open_landscape(w.url, w.payload_dir) as landscape:
        run = landscape.run(run_id)
        for kind, (table, key) in TABLES.items():
            stored = w.query(f"SELECT * FROM {table} WHERE run_id = :run_id ORDER BY {key}", run_id=run_id)
            records = getattr(run, kind)
            assert stored and len(records) == len(stored), kind
            wrong = [problem for r, row in zip(records, stored, strict=True) for problem in _matches(r, row)]
            assert wrong == [], f"{kind}: {wrong[:5]}"
        (runs_row,) = w.query("SELECT * FROM runs WHERE run_id = :run_id", run_id=run_id)
        assert _matches(run.run, runs_row) == []
        assert run.run.status is RunStatus.COMPLETED and run.purge is None
        assert {type(s.status) for s in run.states} == {StateStatus}
        assert {o.outcome for o in run.outcomes} >= {TokenOutcome.EXPANDED, TokenOutcome.CONSUMED}
        assert {type(c.status) for c in run.calls} == {CallStatus}
        assert run.dangling() == []


def test_bodies_kept_in_the_payload_store_are_read_from_it_and_checked(world):
    w = world("w")
    run_id = healthy(w)
    with open_landscape(w.url, w.payload_dir) as landscape:
        stored = [c.request for c in landscape.run(run_id).calls if c.request.ref is not None]
    assert stored, "the run should keep some requests in the payload store"
    for body in stored:
        assert body.ref is not None and body.text is not None and body.problem is None
        assert body.text.encode() == (w.payload_dir / body.ref[:2] / body.ref[2:]).read_bytes()
        assert stable_hash(json.loads(body.text)) == body.hash
    ref = stored[0].ref
    path = w.payload_dir / ref[:2] / ref[2:]
    path.write_bytes(path.read_bytes() + b" ")
    with open_landscape(w.url, w.payload_dir) as landscape:
        broken = [c.request for c in landscape.run(run_id).calls if c.request.ref == ref]
    assert broken and all(b.text is None and b.recorded and "corrupt" in (b.problem or "") for b in broken)


def test_runs_are_listed_newest_first_and_a_missing_run_reads_as_none(world):
    w = world("w")
    first = healthy(w)
    second = healthy(World(w.root / "again", w.registry, landscape=w.url))  # its own outputs, one Landscape
    with open_landscape(w.url) as landscape:
        assert [r.run_id for r in landscape.runs()] == [second, first]
        missing = landscape.run("no-such-run")
        assert missing.run is None and missing.calls == () and missing.outcomes == ()


def test_a_missing_landscape_is_an_error_that_creates_nothing(tmp_path):
    database = tmp_path / "nowhere" / "landscape.db"
    with pytest.raises(LandscapeError, match=re.escape(str(database))):
        open_landscape(f"sqlite:///{database}")
    assert not database.parent.exists()


def _example() -> str:
    text = (ROOT / "docs" / "landscape-reading.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "docs/landscape-reading.md has no python example"
    return match.group(1)


def test_the_example_in_the_docs_runs_as_written(world, tmp_path):
    w = world("w")
    run_id = healthy(w)
    script = tmp_path / "where_rows_went.py"
    script.write_text(_example())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(script), w.url], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    (rows,) = w.query("SELECT count(*) AS n FROM rows WHERE run_id = :run_id", run_id=run_id)
    assert lines[0] == f"run {run_id}: completed, attempt 1, {rows['n']} rows"
    written = w.query(
        "SELECT t.row_id, o.outcome, o.sink_node_id FROM token_outcomes o JOIN tokens t "
        "ON t.run_id = o.run_id AND t.token_id = o.token_id WHERE o.run_id = :run_id AND t.row_id IS NOT NULL "
        "AND o.outcome IN ('completed', 'routed') ORDER BY o.token_id",
        run_id=run_id,
    )
    assert written and [line for line in lines if line.startswith("row ")] == [
        f"row {r['row_id']} {r['outcome']} at {r['sink_node_id']}" for r in written
    ]
    (calls,) = w.query("SELECT count(*) AS n FROM calls WHERE run_id = :run_id", run_id=run_id)
    assert sum(line.startswith("call ") for line in lines) == calls["n"] > 0
