"""The recorder never leaves a deferred foreign key pending, not even between two statements of one flush.

While one is pending, SQLite searches every child table on each insert into a parent table; where the
child's referencing columns have no index that is a scan of the whole table, and a run goes quadratic
(issue 11: aggregation took 53 s of CPU for 40,000 rows). The foreign keys that tests/core/
test_schema_foreign_keys.py lets go without an index rely on this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from attrs import Factory, define
from sqlalchemy import Engine, event

from elspeth.landscape import schema
from elspeth.landscape.database import open_database
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.retention import purge_run

from .conftest import World
from .sample_plugins import FakeClock


@define
class Checked:
    statements: list[str] = Factory(list)
    pending: list[str] = Factory(list)
    """Each statement after which `PRAGMA foreign_key_check` found a row referencing one not (yet) there."""


@pytest.fixture
def checked() -> Iterator[Checked]:
    """Runs `PRAGMA foreign_key_check` after every write to any Landscape, in the writer's transaction."""
    found = Checked()

    def check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("PRAGMA", "SELECT")):
            return
        found.statements.append(statement)
        dangling = cursor.connection.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            found.pending.append(f"{statement.split('(')[0].strip()}: {sorted(set(dangling))}")

    event.listen(Engine, "after_cursor_execute", check)
    try:
        yield found
    finally:
        event.remove(Engine, "after_cursor_execute", check)


def every_kind_of_record(w: World) -> dict[str, Any]:
    """A pipeline whose run writes into every Landscape table."""
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": 120, "quarantine_at": [4, 50]}},
        transforms=[
            {"plugin": "test_caller", "options": {"calls": 2, "error_every": 9}},
            {"plugin": "test_fanout", "options": {"copies_mod": 3}},
            {"plugin": "test_flaky", "options": {"fail_every": 11, "retry_every": 5}},
            {"plugin": "test_sleep", "options": {"seconds": 100, "at": [61]}},
        ],
        aggregations=[
            {
                "plugin": "test_batcher",
                "name": "batcher",
                "options": {"record_calls": False, "pending_polls": 1},
                "trigger": {"count": 10, "timeout_seconds": 50},
            }
        ],
        sinks=("out", "errors"),
        on_error="errors",
    )


def test_a_run_with_every_kind_of_record_and_its_purge_leave_no_reference_pending(world, checked):
    w = world("w")
    summary = w.run(every_kind_of_record(w), clock=FakeClock())
    assert summary.status == "completed", summary.error
    engine = open_database(w.url)
    try:
        purge_run(engine, FilePayloadStore(w.payload_dir), summary.run_id, cutoff=None)
    finally:
        engine.dispose()
    assert checked.pending == []
    tables = " ".join(checked.statements)
    for table in schema.metadata.tables:
        if table in ("runs", "elspeth_meta"):
            continue
        assert f"INSERT INTO {table} " in tables, f"the scenario never inserted into {table}"
    w.assert_clean(summary.run_id)


def test_a_failed_batch_retried_by_a_resume_leaves_no_reference_pending(world, checked):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 50}},
        aggregations=[
            {"plugin": "test_batcher", "name": "batcher", "options": {"record_calls": False}, "trigger": {"count": 10}}
        ],
    )
    failed = w.run(settings, faults={"batcher": {"at": "batch", "n": 3, "action": "raise"}})
    resumed = w.resume(failed.run_id, settings)
    assert checked.pending == []
    assert (failed.status, resumed.status) == ("failed", "completed"), resumed.error
    assert w.query("SELECT count(*) AS n FROM batches WHERE retry_of IS NOT NULL") == [{"n": 1}]
    w.assert_clean(failed.run_id)
