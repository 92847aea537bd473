"""`elspeth verify` reads the `s3` sink's object back from moto's S3 server through the sink's `read_back`,
in ranged GETs of one part each: the object as written matches, a changed or deleted object is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from elspeth_s3.conformance import client
from s3_pipelines import BUCKET, jsonl, put, read, s3_options, settings, url_of

from elspeth.cli import main


@pytest.fixture(autouse=True)
def only_these_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command loads only the plugins these tests use: others installed here are not their business."""
    monkeypatch.setenv("ELSPETH_LOAD_PLUGINS", "builtin,s3")


def elspeth(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def artifact_line(result: Result) -> str:
    [line] = [line for line in result.stdout.splitlines() if "sink:out" in line]
    return line.strip()


def test_verify_reads_the_object_back(s3: str, tmp_path: Path) -> None:
    # About 13 MiB: read back in three ranged GETs of 5 MiB.
    rows = [{"id": i, "blob": hashlib.sha256(str(i).encode()).hexdigest() * 2048} for i in range(100)]
    (tmp_path / "input.jsonl").write_bytes(jsonl(rows))
    key = f"read-back/{tmp_path.name}.jsonl"
    data = settings(
        {"plugin": "jsonl", "options": {"path": str(tmp_path / "input.jsonl")}},
        {"out": {"plugin": "s3", "options": s3_options(s3, key, part_size_mb=5)}},
        write_batch_rows=10,
    )
    (tmp_path / "settings.yaml").write_text(json.dumps(data))
    url = url_of(tmp_path)
    ran = elspeth("run", str(tmp_path / "settings.yaml"), "--landscape", url, "--run-id", "s1", "-q")
    assert ran.exit_code == 0, ran.output

    ok = elspeth("verify", "s1", "--landscape", url)
    assert ok.exit_code == 0, ok.output
    assert artifact_line(ok).startswith(f"matches      sink:out s3://{BUCKET}/{key}")

    stored = read(s3, key)
    put(s3, key, stored[:-2] + b"X\n")
    changed = elspeth("verify", "s1", "--landscape", url)
    assert changed.exit_code == 1, changed.output
    assert artifact_line(changed).startswith(f"MISMATCH     sink:out s3://{BUCKET}/{key}")

    client(s3).delete_object(Bucket=BUCKET, Key=key)
    gone = elspeth("verify", "s1", "--landscape", url)
    assert gone.exit_code == 1, gone.output
    assert "cannot be read: s3 sink: " in artifact_line(gone) and "is gone" in artifact_line(gone)
