"""The Azure OpenAI plugins run through the real `openai` SDK against the testkit's emulator, behind the
fault proxy, in real pipelines over a real FK-enforced SQLite Landscape; never a mock of the SDK.

A `Bench` is one test's world: an emulator, a fault proxy in front of it (the plugins' endpoint), a
directory with the Landscape, the input and the sinks' output, and helpers to run, query and check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from attrs import define
from sqlalchemy import create_engine, text

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.plugin_manager import PluginRegistry
from elspeth.settings import Settings, structure
from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator, azure_openai_emulator  # noqa: F401
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.sweep import assert_clean
from elspeth_testkit.wire_check import assert_wire_matches_calls

from .plugins import azure_openai_registry

API_KEY = "sk-test-2d8f0c41e7b94a5c9f3e1a6b"
"""Unique enough to grep for in every byte the run leaves behind."""
CHILD = Path(__file__).with_name("child_run.py")


def llm_options(endpoint: str, **options: Any) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "deployment": "gpt-4o-mini",
        "api_key": API_KEY,
        "timeout_seconds": 0.5,
        "max_attempts": 3,
        "backoff_seconds": 0,
        **options,
    }


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"review number {i}: {'great' if i % 2 else 'awful'} product"} for i in range(n)]


CLASSIFY = "Classify the sentiment. Labels: positive, negative, neutral\nText: {{ text }}"


@define
class Bench:
    root: Path
    registry: PluginRegistry
    emulator: AzureOpenAIEmulator
    proxy: FaultProxy

    @property
    def url(self) -> str:
        return f"sqlite:///{self.root / 'landscape.db'}"

    @property
    def payload_dir(self) -> Path:
        return self.root / "payloads"

    @property
    def endpoint(self) -> str:
        return self.proxy.url

    def options(self, **options: Any) -> dict[str, Any]:
        return llm_options(self.endpoint, **options)

    def settings(
        self,
        input_rows: list[dict[str, Any]],
        *,
        transforms: list[dict[str, Any]] = (),  # type: ignore[assignment]
        aggregations: list[dict[str, Any]] = (),  # type: ignore[assignment]
        engine: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A jsonl source over `input_rows`; jsonl sinks `main` (the default) and `errors` (on_error)."""
        self.root.mkdir(parents=True, exist_ok=True)
        source = self.root / "input.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in input_rows))
        return {
            "source": {"plugin": "jsonl", "options": {"path": str(source)}},
            "transforms": list(transforms),
            "aggregations": list(aggregations),
            "sinks": {
                name: {"plugin": "jsonl", "options": {"path": str(self.root / f"{name}.jsonl")}}
                for name in ("main", "errors")
            },
            "default_sink": "main",
            "on_error": "errors",
            "engine": {"retry": {"max_attempts": 2, "backoff_seconds": 0}, **(engine or {})},
            "landscape": {"payload_dir": str(self.payload_dir)},
        }

    def run(self, settings: dict[str, Any], *, run_id: str | None = None) -> RunSummary:
        self.proxy.clear(script=False)
        return run_pipeline(
            structure(settings, Settings, where="$"), registry=self.registry, landscape_url=self.url, run_id=run_id
        )

    def resume(self, run_id: str, settings: dict[str, Any]) -> RunSummary:
        return resume_run(
            run_id, structure(settings, Settings, where="$"), registry=self.registry, landscape_url=self.url
        )

    def child(self, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        spec_path = self.root / f"child-{spec['action']}.json"
        spec_path.write_text(json.dumps({**spec, "url": self.url}))
        return subprocess.run(
            [sys.executable, str(CHILD), str(spec_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def killed(
        self,
        settings: dict[str, Any],
        run_id: str,
        kill: dict[str, Any] | None = None,
        *,
        die_in_sdk: dict[str, str] | None = None,
    ) -> None:
        """Run in a child process that SIGKILLs itself at `kill` (a plugin method) or `die_in_sdk` (an
        operation of the openai SDK, see child_run.py)."""
        spec = {"action": "run", "settings": settings, "run_id": run_id, "kill": kill, "die_in_sdk": die_in_sdk}
        done = self.child(spec)
        assert done.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {done.returncode}: {done.stderr[-3000:]}"

    def lines(self, sink: str) -> list[dict[str, Any]]:
        path = self.root / f"{sink}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(text(sql), params).mappings()]
        finally:
            engine.dispose()

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """The run's calls in the order a serial run makes them (rows in flight finish in any order): by the
        row of the token they were made for, then state and call index; batch flushes' calls last, by time.
        Request and response read back (from the payload store when there)."""
        found = self.query(
            "SELECT c.* FROM calls c JOIN node_states s ON s.run_id = c.run_id AND s.state_id = c.state_id "
            "LEFT JOIN tokens t ON t.run_id = s.run_id AND t.token_id = s.token_id WHERE c.run_id = :run "
            "ORDER BY t.row_id IS NULL, t.row_id, t.token_id, c.state_id, c.call_index, c.created_at",
            run=run_id,
        )
        for call in found:
            call["request"] = self.body(call["request_json"], call["request_ref"])
            call["response"] = self.body(call["response_json"], call["response_ref"])
            call["error"] = json.loads(call["error_json"]) if call["error_json"] else None
        return found

    def body(self, inline: str | None, ref: str | None) -> Any:
        if ref is not None:
            inline = self.payload(ref).decode()
        return None if inline is None else json.loads(inline)

    def payload(self, ref: str) -> bytes:
        return FilePayloadStore(self.payload_dir).get(ref)

    def check(self, run_id: str, *, wire: bool = True) -> None:
        """The Landscape sweep, and every request on the wire a recorded call."""
        assert_clean(self.url, run_id, self.payload_dir)
        if wire:
            assert self.proxy.wait_idle()
            assert_wire_matches_calls(self.proxy.exchanges, self.url, run_id, self.payload_dir)

    def leftover_bytes(self) -> list[Path]:
        """Every file the run left: Landscape (with WAL/journal), payloads, outputs."""
        return [p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("child-")]


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    return azure_openai_registry()


@pytest.fixture
def emulator() -> Iterator[AzureOpenAIEmulator]:
    with AzureOpenAIEmulator(api_keys=[API_KEY]) as emu:
        yield emu


@pytest.fixture
def bench(tmp_path: Path, registry: PluginRegistry, emulator: AzureOpenAIEmulator) -> Iterator[Bench]:
    with FaultProxy(emulator.url, upstream_timeout=10) as proxy:
        yield Bench(tmp_path / "bench", registry, emulator, proxy)
