"""The fuzz harness of issue 8 section 4: hostile settings through `validate`, hostile source files through
the readers and through whole runs against a real SQLite Landscape.

What must hold for every generated input: no exception escapes but a clean ConfigError (exit 2, a message,
no traceback); a run completes; every source record is accounted for (rows + quarantined == records) and
the Landscape passes the sweep. Everything a test writes lives in its tmp_path: generated settings only ever
reach `validate`, which writes nothing (checked), and the runs' settings are fixed, with the generated
bytes only in the source file.

1,100 cases in all, derandomized so CI sees the same ones every time: about a minute of CPU.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth import canonical
from elspeth.api import Quarantine
from elspeth.cli import main
from elspeth.engine.orchestrator import run_pipeline
from elspeth.errors import ConfigError, NonCanonicalValueError
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.plugins.csv_files import CsvSource, CsvSourceConfig
from elspeth.plugins.jsonl_files import JsonlSource, JsonlSourceConfig
from elspeth.settings import Settings, structure
from elspeth_testkit.sweep import assert_clean

from .hostile import csv_bytes, expected_jsonl_records, jsonl_bytes, settings_bytes

# Cases per test: over 1,000 in all (the issue asks for at least that many in a CI-sized run).
SETTINGS_CASES, JSONL_CASES, CSV_CASES, RUN_CASES = 450, 300, 250, 100


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,  # nothing written outside tmp_path, not even hypothesis' example database
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # tmp_path is shared by the examples on purpose
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


class _Files:
    """A directory's files and their sizes, to prove a command wrote nothing."""

    def __init__(self, root: Path) -> None:
        self.state = {p: p.stat().st_size for p in root.rglob("*") if not p.is_symlink()}


# ---------------------------------------------------------------- settings through `validate`


@fuzz(SETTINGS_CASES)
@given(data=settings_bytes())
def test_validate_answers_hostile_settings_with_ok_or_a_message(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "in.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "in.jsonl").write_bytes(b'{"a": 1}\n')
    (tmp_path / "s.yaml").write_bytes(data)
    before = _Files(tmp_path).state
    started = time.monotonic()
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(main, ["validate", "s.yaml"])
    assert time.monotonic() - started < 10
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("Error: ") and "Traceback" not in result.output, result.output
    for control in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert control not in result.output
    assert _Files(tmp_path).state == before, "validate wrote something"


# ---------------------------------------------------------------- source files through the readers


def _storable(item: Any) -> None:
    """What the engine does with a source record must not raise anything but NonCanonicalValueError (which
    quarantines the row); a quarantined record is stored as it came or as its repr."""
    if isinstance(item, Quarantine):
        try:
            canonical.canonical_bytes(item.raw)
            raw = item.raw
        except NonCanonicalValueError:
            raw = repr(item.raw)
        canonical.dumps({"raw": raw, "reason": item.reason})
        return
    assert isinstance(item, dict)
    try:
        canonical.dumps(item)
        canonical.stable_hash(item)
    except NonCanonicalValueError:
        pass


@fuzz(JSONL_CASES)
@given(data=jsonl_bytes())
def test_jsonl_reader_accounts_for_every_record(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    items = list(JsonlSource(JsonlSourceConfig(path=str(path))).load(None))  # type: ignore[arg-type]
    assert len(items) == expected_jsonl_records(data)
    for item in items:
        _storable(item)


@fuzz(CSV_CASES)
@given(data=csv_bytes(), typed=st.booleans())
def test_csv_reader_never_raises_past_the_header(tmp_path: Path, data: bytes, typed: bool) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    types = {"b": "int", "c": "float"} if typed else {}
    for item in CsvSource(CsvSourceConfig(path=str(path), types=types)).load(None):  # type: ignore[arg-type]
        _storable(item)


# ---------------------------------------------------------------- whole runs


@fuzz(RUN_CASES)
@given(kind=st.sampled_from(["jsonl", "csv"]), jsonl=jsonl_bytes(), csv=csv_bytes())
def test_runs_over_hostile_sources_complete_and_account_for_every_record(
    tmp_path: Path, kind: str, jsonl: bytes, csv: bytes
) -> None:
    data = jsonl if kind == "jsonl" else csv
    source = tmp_path / f"in.{kind}"
    source.write_bytes(data)
    out = tmp_path / "out"
    options: dict[str, Any] = {"path": str(source)}
    if kind == "csv":
        options["types"] = {"b": "int", "c": "float"}
    raw = {
        "source": {"plugin": kind, "options": options, "on_quarantine": "rejects"},
        "transforms": [{"plugin": "passthrough"}],
        "sinks": {
            "main": {"plugin": "jsonl", "options": {"path": str(out / "main.jsonl"), "if_exists": "overwrite"}},
            "rejects": {"plugin": "jsonl", "options": {"path": str(out / "rejects.jsonl"), "if_exists": "overwrite"}},
        },
        "default_sink": "main",
        "landscape": {"payload_dir": str(tmp_path / "payloads")},
        "engine": {"write_batch_rows": 3, "checkpoint_every_rows": 4},
    }
    url = f"sqlite:///{tmp_path / 'landscape.db'}"
    try:
        summary = run_pipeline(structure(raw, Settings, where=""), registry=_registry(), landscape_url=url)
    except ConfigError:
        raise AssertionError("a generated file failed the run before it started") from None
    assert summary.status == "completed", summary.error
    read = summary.outcomes.get("completed", 0) + summary.outcomes.get("quarantined", 0)
    assert read == summary.rows_read
    if kind == "jsonl":
        assert summary.rows_read == expected_jsonl_records(data)
    written = [len((out / f"{s}.jsonl").read_bytes().splitlines()) for s in ("main", "rejects")]
    assert written == [summary.outcomes.get("completed", 0), summary.outcomes.get("quarantined", 0)]
    assert_clean(url, summary.run_id, tmp_path / "payloads")
    assert {p.name for p in tmp_path.iterdir()} <= {
        "in.jsonl",
        "in.csv",
        "out",
        "payloads",
        "landscape.db",
        "landscape.db-wal",
        "landscape.db-shm",
    }


_REGISTRY: list[PluginRegistry] = []


def _registry() -> PluginRegistry:
    if not _REGISTRY:
        _REGISTRY.append(PluginRegistry(make_plugin_manager()))
    return _REGISTRY[0]


def test_the_harness_runs_at_least_a_thousand_cases() -> None:
    assert SETTINGS_CASES + JSONL_CASES + CSV_CASES + RUN_CASES >= 1_000
