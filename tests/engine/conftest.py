"""Engine tests run real pipelines against a real SQLite Landscape file (foreign keys on), never a mock.

A `World` is one directory holding a Landscape and a pipeline's output files. Tests that compare a crashed
and resumed run with an uninterrupted one build the same settings in two worlds and compare the bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from attrs import define
from sqlalchemy import Connection, create_engine, text

from elspeth.api import Clock
from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure
from elspeth_testkit.sweep import assert_clean, sweep

from . import sample_plugins
from .sample_plugins import FAULTS_ENV

CRASHING_RUN = Path(__file__).with_name("crashing_run.py")

ENGINE_DEFAULTS: dict[str, Any] = {
    "write_batch_rows": 7,
    "checkpoint_every_rows": 20,
    "checkpoint_every_seconds": 3600,
    "retry": {"max_attempts": 3, "backoff_seconds": 0},
}


@contextlib.contextmanager
def injected(faults: Mapping[str, Any]) -> Iterator[None]:
    """ELSPETH_TEST_FAULTS set to `faults` for the plugins built inside the block."""
    before = os.environ.get(FAULTS_ENV)
    os.environ[FAULTS_ENV] = json.dumps(faults)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FAULTS_ENV, None)
        else:
            os.environ[FAULTS_ENV] = before


@define
class World:
    root: Path
    registry: PluginRegistry
    landscape: str | None = None
    """A database URL shared with other worlds (PostgreSQL); default: a SQLite file of this world's own."""

    @property
    def url(self) -> str:
        return self.landscape or f"sqlite:///{self.root / 'landscape.db'}"

    @property
    def payload_dir(self) -> Path:
        return self.root / "payloads"

    def out(self, sink: str) -> Path:
        return self.root / "out" / f"{sink}.jsonl"

    def settings(
        self,
        *,
        source: Mapping[str, Any] | None = None,
        transforms: Sequence[Mapping[str, Any]] = (),
        aggregations: Sequence[Mapping[str, Any]] = (),
        sinks: Sequence[str] | Mapping[str, Mapping[str, Any]] = ("out",),
        default_sink: str | None = None,
        engine: Mapping[str, Any] | None = None,
        **top: Any,
    ) -> dict[str, Any]:
        """A settings dict; sinks named in a list are `test_sink`s writing <root>/out/<name>.jsonl."""
        if isinstance(sinks, Mapping):
            sink_specs = {name: dict(spec) for name, spec in sinks.items()}
        else:
            sink_specs = {
                name: {"plugin": "test_sink", "options": {"path": str(self.out(name)), "tag": name}} for name in sinks
            }
        return {
            "source": dict(source or {"plugin": "test_numbers", "options": {"count": 100}}),
            "transforms": [dict(t) for t in transforms],
            "aggregations": [dict(a) for a in aggregations],
            "sinks": sink_specs,
            "default_sink": default_sink or next(iter(sink_specs)),
            "engine": {**ENGINE_DEFAULTS, **(engine or {})},
            "landscape": {"payload_dir": str(self.payload_dir)},
            **top,
        }

    def run(
        self,
        settings: Mapping[str, Any],
        *,
        run_id: str | None = None,
        clock: Clock | None = None,
        faults: Mapping[str, Any] | None = None,
    ) -> RunSummary:
        with injected(faults or {}):
            return run_pipeline(
                structure(dict(settings), Settings, where="$"),
                registry=self.registry,
                landscape_url=self.url,
                run_id=run_id,
                clock=clock,
            )

    def resume(
        self,
        run_id: str,
        settings: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        faults: Mapping[str, Any] | None = None,
    ) -> RunSummary:
        with injected(faults or {}):
            return resume_run(
                run_id,
                structure(dict(settings), Settings, where="$"),
                registry=self.registry,
                landscape_url=self.url,
                clock=clock,
            )

    def subprocess(
        self, settings: Mapping[str, Any], run_id: str, *, faults: Mapping[str, Any] | None = None, resume: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run (or resume) the pipeline in a fresh Python process, with `faults` in its environment."""
        self.root.mkdir(parents=True, exist_ok=True)
        settings_file = self.root / "settings.json"
        settings_file.write_text(json.dumps(settings))
        env = {**os.environ, FAULTS_ENV: json.dumps(faults or {})}
        command = [sys.executable, str(CRASHING_RUN), str(settings_file), self.url, run_id]
        return subprocess.run(
            [*command, "--resume"] if resume else command, env=env, capture_output=True, text=True, timeout=120
        )

    def killed(self, settings: Mapping[str, Any], run_id: str, faults: Mapping[str, Any]) -> None:
        """Run in a subprocess that must die by SIGKILL where `faults` say."""
        done = self.subprocess(settings, run_id, faults=faults)
        assert done.returncode == -signal.SIGKILL, (
            f"expected the run to be SIGKILLed, it exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )

    def lines(self, sink: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out(sink).read_text(encoding="utf-8").splitlines()]

    def bytes(self, sink: str) -> bytes:
        return self.out(sink).read_bytes()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    def sweep(self, run_id: str) -> list[Any]:
        return sweep(self.url, run_id, self.payload_dir)

    def assert_clean(self, run_id: str) -> None:
        assert_clean(self.url, run_id, self.payload_dir)


def healthy(w: World) -> str:
    """A completed run that writes to every table: fan-out, calls (some too big to keep inline), routing, an
    aggregation, two sinks."""
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 30, "b_every": 4}},
        transforms=[
            {"plugin": "test_fanout", "options": {"copies": 2}},
            {"plugin": "test_caller", "options": {"calls": 2, "big_every": 10}},
            {"plugin": "route", "options": {"field": "dest", "routes": {"b": "b"}}},
        ],
        aggregations=[{"plugin": "test_batcher", "options": {}, "trigger": {"count": 10}}],
        sinks=["out", "b"],
        default_sink="out",
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    return summary.run_id


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    return PluginRegistry(make_plugin_manager(extra_plugins=[sample_plugins]))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A throwaway PostgreSQL on 127.0.0.1 (scripts/postgres-for-tests.sh starts one where PostgreSQL is
    installed), or ELSPETH_TEST_POSTGRES_URL; the tests that need it skip where there is none."""
    url = os.environ.get("ELSPETH_TEST_POSTGRES_URL")
    if not url:
        script = Path(__file__).parents[2] / "scripts" / "postgres-for-tests.sh"
        started = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
        found = [w for w in started.stdout.split() if w.startswith("ELSPETH_TEST_POSTGRES_URL=")]
        if started.returncode != 0 or not found:
            pytest.skip(f"no PostgreSQL to test against: {started.stderr.strip() or started.stdout.strip()}")
        url = found[0].split("=", 1)[1]
    pytest.importorskip("psycopg")
    return url


@pytest.fixture
def pg_world(tmp_path: Path, registry: PluginRegistry, postgres_url: str) -> Callable[[str], World]:
    """Like `world`, with the Landscape in PostgreSQL (every world shares the database; run ids differ)."""

    def make(name: str) -> World:
        return World(tmp_path / name, registry, postgres_url)

    return make


@pytest.fixture
def world(tmp_path: Path, registry: PluginRegistry) -> Callable[[str], World]:
    """`world("crashed")`: a fresh directory under tmp_path with its own Landscape and outputs."""

    def make(name: str) -> World:
        return World(tmp_path / name, registry)

    return make
