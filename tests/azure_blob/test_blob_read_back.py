"""`elspeth verify` reads an azure_blob sink's artifact back from Azurite through the sink's `read_back`:
a blob as written matches, a changed or missing blob is named, and without the run's settings the blob is
listed as not checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from elspeth.cli import main

from .blob_world import Blobs, World


@pytest.fixture(autouse=True)
def only_these_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command loads only the plugins these tests use: others installed here are not their business."""
    monkeypatch.setenv("ELSPETH_LOAD_PLUGINS", "builtin,azure")


def elspeth(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def written(world: World, blobs: Blobs) -> tuple[Path, str]:
    """A run `b1` whose sink wrote 20 rows in several blocks to out/b1.jsonl (from `blob_path`'s template),
    through the command line; returns its settings file and the blob's name."""
    rows = [{"id": i, "text": f"row {i}"} for i in range(20)]
    options = blobs.options("out/{run_id}.jsonl", chunk_bytes=64)  # several ranged GETs to read it back
    settings = world.settings(
        source=world.jsonl_source(rows),
        sinks={"out": {"plugin": "azure_blob", "options": options}},
        engine={"write_batch_rows": 6},
    )
    path = world.root / "settings.yaml"
    path.write_text(json.dumps(settings))
    result = elspeth("run", str(path), "--landscape", world.url, "--run-id", "b1", "-q")
    assert result.exit_code == 0, result.output
    return path, "out/b1.jsonl"


def verify(world: World, *more: str) -> Result:
    return elspeth("verify", "b1", "--landscape", world.url, *more)


def artifact_line(result: Result) -> str:
    [line] = [line for line in result.stdout.splitlines() if "sink:out" in line]
    return line


def test_a_blob_as_written_matches(world, blobs, written):
    result = verify(world)
    assert result.exit_code == 0, result.output
    line = artifact_line(result)
    assert line.strip().startswith("matches") and f"/{blobs.container}/out/b1.jsonl" in line
    requests = int(re.search(r"read back in (\d+) request", line).group(1))  # type: ignore[union-attr]
    assert requests > 2, "streamed: one ranged GET per 64 bytes"


def test_a_changed_blob_is_named(world, blobs, written):
    _, name = written
    data = blobs.get(name)
    blobs.put(name, data[:10] + b"X" + data[11:])
    result = verify(world)
    assert result.exit_code == 1, result.output
    line = artifact_line(result)
    assert line.strip().startswith("MISMATCH") and f"/{blobs.container}/{name}" in line
    assert f"holds {len(data):,} bytes" in line


def test_a_missing_blob_is_named(world, blobs, written):
    _, name = written
    blobs.client(name).delete_blob()
    result = verify(world)
    assert result.exit_code == 1, result.output
    line = artifact_line(result)
    assert line.strip().startswith("MISMATCH") and "cannot be read" in line and "does not exist" in line


def test_without_the_settings_the_blob_is_not_checked(world, blobs, written):
    settings, _ = written
    settings.unlink()
    result = verify(world)
    assert result.exit_code == 0, result.output
    line = artifact_line(result)
    assert line.strip().startswith("not checked") and "settings.yaml" in line
    assert verify(world, "--strict").exit_code == 1
