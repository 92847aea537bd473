"""Running a plugin inside a real pipeline of the real engine, against a fresh file-backed SQLite Landscape
with foreign keys enforced, and reading back what happened.

The plugin under test takes its place in a small pipeline whose other nodes are built-in plugins (a jsonl
source over canned rows, jsonl sinks), so every scenario exercises exactly the code a user would run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest
from attrs import define, field

from elspeth.api import Capability
from elspeth.engine import RunSummary, resume_run, run_pipeline
from elspeth.errors import ElspethError, ResumeError
from elspeth.landscape.reading import RunRecords, StateStatus, open_landscape
from elspeth.plugin_manager import PluginInfo, PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, run_secrets, structure
from elspeth_testkit.connection_watch import Connection, watching_connections
from elspeth_testkit.failures import ConformanceFailure
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.input_watch import ROW_METHODS, watching
from elspeth_testkit.recovery_wire import KilledRun
from elspeth_testkit.setups import Options, PluginSetup, Row
from elspeth_testkit.sweep import Violation, row_of, sweep

SCAFFOLD_SINKS = ("main", "other", "errors")
ROW_OPERATIONS = {"transform": ("process",), "aggregate": ("flush", "poll")}
"""The node_state operations in which a plugin of this kind is handed rows and may answer Error."""


def generic_rows(n: int) -> list[Row]:
    """Rows of plain, JSON-safe values that any plugin should accept."""
    return [
        {"id": i, "name": f"row {i:04d}", "group": f"g{i % 3}", "amount": round(i * 1.25, 2), "flag": i % 2 == 0}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[Row]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[Row]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@define
class PluginUnderTest:
    info: PluginInfo
    setup: PluginSetup
    configured: bool = True
    """False when no setup was given for it and the kit uses the empty default."""

    def required_options(self) -> list[str]:
        config_class = self.info.cls.config_class
        if not attrs.has(config_class):
            return []
        return [f.name for f in attrs.fields(config_class) if f.default is attrs.NOTHING]

    @property
    def label(self) -> str:
        """`sink 'my_sink' (my-plugin 0.3.0)`; `(not installed)` for a class no distribution installed."""
        origin = " ".join(p for p in (self.info.distribution.strip("()"), self.info.version) if p)
        return f"{self.info.kind} {self.info.name!r}" + (f" ({origin})" if origin else "")

    def has(self, capability: Capability) -> bool:
        return capability in self.info.cls.capabilities


@define
class RunResult:
    summary: RunSummary
    url: str
    workdir: Path
    secrets: frozenset[str] = frozenset()
    """What the run kept out of the Landscape: the values under secret-looking options."""
    connections: list[Connection] = attrs.Factory(list)
    """The connections the plugin under test opened during the run."""
    _records: RunRecords | None = field(default=None, init=False)

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    @property
    def payload_dir(self) -> Path:
        return self.workdir / "payloads"

    def violations(self) -> list[Violation]:
        return sweep(self.url, self.run_id, self.payload_dir)

    def records(self) -> RunRecords:
        """What the Landscape holds of the run, read once (the run has ended: nothing changes it but a resume,
        whose result is another RunResult)."""
        if self._records is None:
            with open_landscape(self.url, self.payload_dir) as landscape:
                self._records = landscape.run(self.run_id).load()
        return self._records


@define
class Harness:
    """One scenario's world: a working directory, a registry, a Landscape file."""

    plugin: PluginUnderTest
    scenario: str
    workdir: Path
    registry: PluginRegistry = field(factory=lambda: PluginRegistry(make_plugin_manager()))
    endpoint: str | None = None
    strict: bool = False
    killed: KilledRun | None = None
    """What the Landscape held of the run `run_killed` last killed, read before any resume."""

    def __attrs_post_init__(self) -> None:
        # The plugin runs as a subclass that watches the rows it is handed (bug class 23); a harness made
        # from another's registry (one per fault of sdk_failure) shares its watcher.
        kind, name = self.plugin.info.kind, self.plugin.info.name
        cls = self.registry.get(kind, name).cls
        if kind in ROW_METHODS and not getattr(cls, "watched_inputs", False):
            self.registry = self.registry.with_class(kind, name, watching(cls, kind))

    def require(
        self, condition: object, reason: str, *, author_can_fix: bool = False, invariant: str = "strict-setup"
    ) -> None:
        """Skip (with `reason`) a scenario that does not apply. In strict mode, a skip the author could fix
        (a missing setup) fails instead, naming `invariant`."""
        if condition:
            return
        if author_can_fix and self.strict:
            self.fail(invariant, f"strict mode: {reason}")
        pytest.skip(reason)

    def check_opt_out(self) -> None:
        reason = self.plugin.setup.opt_out.get(self.scenario)
        if reason is None:
            return
        if self.strict:
            self.fail("strict-opt-out", f"strict mode: opted out of {self.scenario}: {reason}")
        pytest.skip(f"opted out: {reason}")

    @property
    def database(self) -> Path:
        """The scenario's Landscape: a SQLite file, foreign keys enforced."""
        return self.workdir / "landscape.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def fail(
        self,
        invariant: str,
        message: str,
        rows: Sequence[Any] | None = None,
        rows_title: str = "the Landscape rows that show it",
    ) -> NoReturn:
        """Fail the scenario; `rows` are rows to show (dicts) or Landscape records."""
        shown = [r if isinstance(r, dict) else row_of(r) for r in rows or []]
        raise ConformanceFailure(invariant, self.plugin.label, self.scenario, message, shown, rows_title)

    @contextmanager
    def proxied(self) -> Iterator[FaultProxy]:
        """The fault proxy in front of the plugin's service; options built inside use its URL."""
        service = self.plugin.setup.service
        self.require(
            service, "the setup names no service (PluginSetup.service) for the plugin's calls", author_can_fix=True
        )
        assert service is not None
        with FaultProxy(service.upstream) as proxy:
            self.endpoint = proxy.url
            try:
                yield proxy
            finally:
                self.endpoint = None

    def options(self, subdir: str = "") -> Options:
        required = self.plugin.required_options()
        self.require(
            self.plugin.configured or not required,
            f"the plugin has required options ({', '.join(required)}) and no setup: give it one in the "
            "elspeth_conformance_setups fixture (docs/conformance.md)",
            author_can_fix=True,
        )
        where = self.workdir / subdir if subdir else self.workdir
        where.mkdir(parents=True, exist_ok=True)
        service = self.plugin.setup.service
        # Outside the wire scenarios the plugin reaches its service directly (child processes too).
        return self.plugin.setup.options(where, self.endpoint or (service.upstream if service else None))

    def input_file(self, rows: list[Row], name: str = "input.jsonl") -> Path:
        path = self.workdir / name
        write_jsonl(path, rows)
        return path

    def sink_path(self, name: str) -> Path:
        return self.workdir / f"{name}.jsonl"

    def pipeline(
        self,
        rows: list[Row] | None = None,
        *,
        source: dict[str, Any] | None = None,
        transforms: list[dict[str, Any]] = (),  # type: ignore[assignment]
        aggregations: list[dict[str, Any]] = (),  # type: ignore[assignment]
        sinks: dict[str, dict[str, Any]] | None = None,
        engine: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Settings for a pipeline: the given nodes, a jsonl source over `rows` unless `source` is given, and
        jsonl sinks main/other/errors unless `sinks` is given."""
        if source is None:
            source = {"plugin": "jsonl", "options": {"path": str(self.input_file(rows or []))}}
        if sinks is None:
            sinks = {
                name: {"plugin": "jsonl", "options": {"path": str(self.sink_path(name)), "if_exists": "overwrite"}}
                for name in SCAFFOLD_SINKS
            }
        settings: dict[str, Any] = {
            "source": source,
            "transforms": list(transforms),
            "aggregations": list(aggregations),
            "sinks": sinks,
            "engine": {"retry": {"max_attempts": 2, "backoff_seconds": 0.0}, **(engine or {})},
        }
        if "main" in sinks:
            settings["default_sink"] = "main"
        if "errors" in sinks:
            settings["on_error"] = "errors"
        return settings

    def run(self, settings: dict[str, Any], **kwargs: Any) -> RunResult:
        structured = structure(settings, Settings, where=f"{self.scenario} pipeline")
        with watching_connections(self.plugin.info.cls) as watch:
            summary = run_pipeline(structured, registry=self.registry, landscape_url=self.url, **kwargs)
        return RunResult(
            _not_interrupted(summary), self.url, self.workdir, frozenset(run_secrets(settings)), watch.connections
        )

    def resume(self, run_id: str, settings: dict[str, Any], **kwargs: Any) -> RunResult:
        structured = structure(settings, Settings, where=f"{self.scenario} pipeline")
        try:
            with watching_connections(self.plugin.info.cls) as watch:
                summary = resume_run(run_id, structured, registry=self.registry, landscape_url=self.url, **kwargs)
        except ElspethError as exc:
            self.fail("resume-failed", f"the resume of run {run_id} was refused or failed: {exc}")
        return RunResult(
            _not_interrupted(summary), self.url, self.workdir, frozenset(run_secrets(settings)), watch.connections
        )

    def resume_refused(self, run_id: str, settings: dict[str, Any], why: str) -> str:
        """Resume run `run_id`, which the engine must refuse up front (`why` says why it must); returns the
        refusal's message."""
        structured = structure(settings, Settings, where=f"{self.scenario} pipeline")
        try:
            summary = resume_run(run_id, structured, registry=self.registry, landscape_url=self.url)
        except ResumeError as exc:
            return str(exc)
        except ElspethError as exc:
            self.fail("resume-refused", f"the resume of run {run_id} failed instead of being refused up front: {exc}")
        self.fail("resume-refused", f"run {run_id} was resumed (it ended {summary.status!r}), although {why}")

    def snapshot(self, run_id: str) -> dict[str, Any]:
        """Every record the Landscape holds of run `run_id`, by kind."""
        with open_landscape(self.url, self.workdir / "payloads") as landscape:
            return landscape.run(run_id).snapshot()

    def check(self, result: RunResult, *, expect_status: str | None = "completed") -> None:
        """The rows the plugin was handed, the Landscape sweep, and the run's status."""
        self.check_inputs_unchanged()
        found = result.violations()
        if found:
            first = found[0]
            more = f" (and {len(found) - 1} more: {', '.join(v.invariant for v in found[1:])})" if found[1:] else ""
            self.fail(first.invariant, first.message + more, first.rows)
        if expect_status is not None and result.summary.status != expect_status:
            self.fail(
                "run-status",
                f"the run ended {result.summary.status!r}, expected {expect_status!r}: {result.summary.error}",
            )
        self.check_connections(result)
        self.check_exercised(result)

    def check_inputs_unchanged(self) -> None:
        """No row handed to the plugin was changed in place (bug class 23)."""
        kind = self.plugin.info.kind
        changed = getattr(self.registry.get(kind, self.plugin.info.name).cls, "changed_inputs", [])
        if changed:
            first = changed[0]
            field = f", field {first['field']!r}" if "field" in first else ""
            self.fail(
                "input-mutated",
                f"{first['method']} changed {len(changed)} row(s) it was handed in place (the first: row "
                f"{first['row']} of call {first['call']}{field}); "
                "the engine has recorded each input's hash and hands the same row on (to a retry, the error sink, "
                "the next node): build a new row (`{**row, ...}`) instead of changing the one given",
                changed[:10],
            )

    def check_connections(self, result: RunResult) -> None:
        """Every connection the plugin opened is traffic the audit trail must show (bug class 20): a plugin
        that opens any must declare `external_calls` (or the wire scenarios never watch it), and must have
        recorded at least one call in the run. Behind the fault proxy the wire check, which follows, judges a
        declared plugin's traffic request by request."""
        declared = self.plugin.has(Capability.EXTERNAL_CALLS)
        if not result.connections or (declared and self.endpoint is not None):
            return
        kind = self.plugin.info.kind
        records = result.records()
        nodes = {n.node_id for n in records.nodes if (n.kind, n.plugin) == (kind, self.plugin.info.name)}
        states = {s.state_id for s in records.states if s.node_id in nodes}
        calls = [c for c in records.calls if c.state_id in states]
        first = result.connections[0]
        opened = (
            f"opened {len(result.connections)} connection(s) during the run (the first to {first.address}, "
            f"from thread {first.thread!r})"
        )
        rows = [c.as_row() for c in result.connections[:10]]
        if not declared:
            self.fail(
                "calls-undeclared",
                f"the {kind} {opened} but does not declare the `external_calls` capability, so the call linkage "
                f"and SDK failure scenarios never watch its traffic ({len(calls)} call(s) recorded): declare "
                "Capability.EXTERNAL_CALLS, give its setup a Service, and record every call with ctx.call or "
                "ctx.record_call",
                rows,
                "the connections it opened",
            )
        if not calls:
            self.fail(
                "connection-unrecorded",
                f"the {kind} {opened} but recorded no call in it: record every call with ctx.call or ctx.record_call",
                rows,
                "the connections it opened",
            )

    def check_exercised(self, result: RunResult) -> None:
        """A run in which the transform or aggregate under test answered Error to every row it was handed
        proved nothing about it (a planted bug would pass): skip, saying which rows to give, or fail in
        strict mode. Sources and sinks cannot answer Error: a row they fail on fails the run."""
        if self.plugin.info.kind not in ROW_OPERATIONS or result.summary.status != "completed":
            return  # a run that failed or stopped has said what went wrong
        kind = self.plugin.info.kind
        records = result.records()
        nodes = {n.node_id for n in records.nodes if (n.kind, n.plugin) == (kind, self.plugin.info.name)}
        states = [s for s in records.states if s.node_id in nodes and s.operation in ROW_OPERATIONS[kind]]
        if not states or any(s.status == StateStatus.COMPLETED for s in states):
            return
        first = json.loads(states[0].error_json or "{}")
        reason = first.get("reason") or first.get("message") or states[0].error_json
        self.require(
            False,
            f"the {self.plugin.info.kind} answered Error every time it was handed rows in this scenario "
            f"({len(states)} time{'s' if len(states) > 1 else ''}; the first: {reason}), so the scenario "
            "exercised nothing: give rows it "
            "accepts in PluginSetup.input_rows (docs/conformance.md)",
            author_can_fix=True,
            invariant="rows-all-errored",
        )

    # ------------------------------------------------------------ runs in a subprocess, killed on cue

    def run_killed(self, settings: dict[str, Any], kill: dict[str, Any], run_id: str) -> int:
        """Run the pipeline in a new process that SIGKILLs itself at `kill` (see child.py), then sweep what
        the killed run left. Returns the signal number that ended it (0 if it was never reached)."""
        ended = self._child({"action": "run", "settings": settings, "kill": kill, "run_id": run_id})
        found = sweep(self.url, run_id, self.workdir / "payloads")
        if self.plugin.info.kind == "sink" and not self.plugin.has(Capability.RESUMABLE):
            found = self._without_own_artifact_bytes(found, run_id)
        if found:
            self.fail(found[0].invariant, f"after the SIGKILL: {found[0].message}", found[0].rows)
        self.killed = KilledRun.read(self.url, run_id, self.plugin.info.name)
        return ended

    def _without_own_artifact_bytes(self, found: list[Violation], run_id: str) -> list[Violation]:
        """The sweep's findings on a killed run, but for the bytes at the destination of the sink under test
        when it cannot resume: such a run is never continued (the engine refuses it), so the destination
        need not still begin with what its last recorded artifact describes; a sink that rewrites its
        whole output at every flush legitimately does not."""
        own = {
            n.node_id for n in self.snapshot(run_id)["nodes"] if (n.kind, n.plugin) == ("sink", self.plugin.info.name)
        }
        kept = []
        for violation in found:
            if violation.invariant == "artifact-bytes":
                rows = [r for r in violation.rows if r.get("node_id") not in own]
                if not rows:
                    continue
                violation = attrs.evolve(violation, rows=rows)
            kept.append(violation)
        return kept

    def resume_in_child(self, settings: dict[str, Any], run_id: str) -> int:
        return self._child({"action": "resume", "settings": settings, "kill": None, "run_id": run_id})

    def _child(self, spec: dict[str, Any]) -> int:
        spec = {**spec, "url": self.url}
        spec_path = self.workdir / f"child-{spec['action']}.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "elspeth_testkit.child", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        if proc.returncode == -signal.SIGKILL:
            return signal.SIGKILL
        if proc.returncode != 0:
            self.fail(
                "child-process",
                f"the pipeline process for {spec['action']} exited {proc.returncode}:\n{proc.stderr[-3000:]}",
            )
        return 0


def _not_interrupted(summary: RunSummary) -> RunSummary:
    """A run in this process stops cleanly on Ctrl-C (the engine notes the signal); the person who pressed it
    wants the test session to stop too, not a scenario to fail and the next one to start."""
    if summary.status == "interrupted":
        raise KeyboardInterrupt
    return summary
