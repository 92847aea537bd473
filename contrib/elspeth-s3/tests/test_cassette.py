"""The S3 sink under `elspeth run --record-cassette` (issue 8): recording failed every PutObject ("'bytes'
object cannot be interpreted as an integer": vcrpy holds botocore's body as an iterator of chunks), and kept
the session token header. Recorded against moto, then replayed with no server at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from elspeth_s3.conformance import SECRET_ACCESS_KEY
from s3_pipelines import jsonl, parse_jsonl, read, run, s3_options, settings

from elspeth.cassettes import cassette

pytest.importorskip("vcr")

SESSION_TOKEN = "s3-session-token-for-the-cassette-5b7e"


def test_record_then_replay_a_run_with_the_s3_sink(s3: str, tmp_path: Path) -> None:
    rows = [{"id": i, "name": f"row {i}"} for i in range(7)]
    (tmp_path / "input.jsonl").write_bytes(jsonl(rows))
    source = {"plugin": "jsonl", "options": {"path": str(tmp_path / "input.jsonl")}}
    path = f"{tmp_path.name}/taped.jsonl"

    def pipeline(endpoint: str) -> dict:
        options = s3_options(endpoint, path, aws_session_token=SESSION_TOKEN)
        return settings(source, {"out": {"plugin": "s3", "options": options}}, write_batch_rows=3)

    tape = tmp_path / "tape.yaml"
    with cassette(tape, "record"):
        recorded = run(tmp_path / "recorded", pipeline(s3))
    assert recorded.summary.status == "completed", recorded.summary.error
    assert parse_jsonl(read(s3, path)) == rows
    text = tape.read_text()
    assert SESSION_TOKEN not in text and SECRET_ACCESS_KEY not in text
    assert "x-amz-security-token" not in text.lower() and "authorization" not in text.lower()

    with cassette(tape, "replay"):
        replayed = run(tmp_path / "replayed", pipeline("http://127.0.0.1:9"))
    assert replayed.summary.status == "completed", replayed.summary.error
    assert replayed.last_artifact()["content_hash"] == recorded.last_artifact()["content_hash"]
    assert replayed.operations() == recorded.operations()
