"""Running `http_enrich` inside real pipelines of the real engine, against a real SQLite Landscape file,
and reading back what the run recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from attrs import define, field

from elspeth.engine.clock import SystemClock
from elspeth.engine.orchestrator import run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.sweep import assert_clean
from elspeth_testkit.wire_check import compare_wire_with_calls, wire_report


@define
class RecordingClock(SystemClock):
    """The system clock, but `sleep` only notes how long it was asked to wait."""

    slept: list[float] = field(factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@define
class Ran:
    summary: RunSummary
    workdir: Path
    clock: RecordingClock

    @property
    def url(self) -> str:
        return f"sqlite:///{self.workdir / 'landscape.db'}"

    def output(self, sink: str = "out") -> list[dict[str, Any]]:
        path = self.workdir / f"{sink}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def calls(self) -> list[dict[str, Any]]:
        """The run's calls in order, request/response/error decoded."""
        with sqlite3.connect(self.workdir / "landscape.db") as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM calls WHERE run_id = ? ORDER BY created_at, state_id, call_index",
                (self.summary.run_id,),
            ).fetchall()
        calls = []
        for row in rows:
            call = dict(row)
            for column in ("request", "response", "error"):
                text = call.pop(f"{column}_json")
                call[column] = json.loads(text) if text is not None else None
            calls.append(call)
        return calls

    def states(self, node_id: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.workdir / "landscape.db") as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM node_states WHERE run_id = ? AND node_id = ? ORDER BY state_id",
                (self.summary.run_id, node_id),
            ).fetchall()
        return [dict(r) for r in rows]


def run_enrich(
    workdir: Path,
    rows: list[dict[str, Any]],
    options: dict[str, Any],
    *,
    engine_attempts: int = 1,
    proxy: FaultProxy | None = None,
) -> Ran:
    """jsonl source over `rows` -> http_enrich -> jsonl sink `out` (errors to `errors`). Ends with the
    Landscape sweep, and with the wire check when `proxy` is in front of the service."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "input.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sinks = {
        name: {"plugin": "jsonl", "options": {"path": str(workdir / f"{name}.jsonl"), "if_exists": "overwrite"}}
        for name in ("out", "errors")
    }
    settings = structure(
        {
            "source": {"plugin": "jsonl", "options": {"path": str(source)}},
            "transforms": [{"plugin": "http_enrich", "name": "enrich", "options": options}],
            "sinks": sinks,
            "default_sink": "out",
            "on_error": "errors",
            "engine": {"retry": {"max_attempts": engine_attempts, "backoff_seconds": 0}},
        },
        Settings,
        where="test pipeline",
    )
    if proxy is not None:
        proxy.clear(script=False)
    clock = RecordingClock()
    ran = Ran(
        run_pipeline(
            settings,
            registry=PluginRegistry(make_plugin_manager()),
            landscape_url=f"sqlite:///{workdir / 'landscape.db'}",
            clock=clock,
        ),
        workdir,
        clock,
    )
    assert_clean(ran.url, ran.summary.run_id)
    if proxy is not None:
        assert proxy.wait_idle(10)
        violations = compare_wire_with_calls(proxy.exchanges, ran.url, ran.summary.run_id)
        assert not violations, wire_report(violations, ran.summary.run_id)
    return ran
