"""SIGKILL at chosen points of the `s3` sink, resume in a new process: the object equals an uninterrupted
run's byte for byte, with every row once, no multipart upload left open, and a clean Landscape."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from s3_pipelines import jsonl, open_uploads, parse_jsonl, read, resume, run, run_killed, s3_options, settings, sha256


def small_rows() -> list[dict]:
    return [{"id": i, "name": f"row {i:04d}", "flag": i % 2 == 0} for i in range(30)]


def mixed_rows() -> list[dict]:
    """50 tiny rows, then 100 of 128 KiB (about 13 MiB in all)."""
    tiny = [{"id": i, "blob": f"t{i}"} for i in range(50)]
    big = [{"id": i, "blob": hashlib.sha256(str(i).encode()).hexdigest() * 2048} for i in range(50, 150)]
    return tiny + big


SMALL = {"write_batch_rows": 4, "checkpoint_every_rows": 10}
MIXED = {"write_batch_rows": 10, "checkpoint_every_rows": 50}

CASES = {
    # Rows written, not flushed: they come again, once.
    "small-mid-write": (small_rows, SMALL, {"method": "write", "n": 5, "when": "after"}, ()),
    # Killed inside flush, before it did anything.
    "small-before-flush": (small_rows, SMALL, {"method": "flush", "n": 2, "when": "before"}, ()),
    # The object holds a flush the engine never recorded: it goes back to the recorded size (PutObject).
    "small-after-flush": (small_rows, SMALL, {"method": "flush", "n": 2, "when": "after"}, ("PutObject",)),
    # A multipart upload is open with a 5 MiB part in it: aborted on resume.
    "big-mid-upload": (mixed_rows, MIXED, {"method": "write", "n": 9, "when": "after"}, ("AbortMultipartUpload",)),
    # The object (over 5 MiB) holds 50 rows more than recorded: rebuilt by server-side copy of its head.
    "big-after-flush": (
        mixed_rows,
        MIXED,
        {"method": "flush", "n": 3, "when": "after"},
        ("UploadPartCopy", "CompleteMultipartUpload"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_then_resume_equals_an_uninterrupted_run(s3: str, tmp_path: Path, case: str) -> None:
    make_rows, engine, kill, repair = CASES[case]
    rows = make_rows()
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))

    def pipeline(path: str) -> dict:
        sinks = {"out": {"plugin": "s3", "options": s3_options(s3, path, part_size_mb=5)}}
        return settings({"plugin": "jsonl", "options": {"path": str(source)}}, sinks, **engine)

    killed_path, reference_path = f"{tmp_path.name}/killed.jsonl", f"{tmp_path.name}/reference.jsonl"
    data = pipeline(killed_path)
    run_killed(tmp_path, data, "killed", {"kind": "sink", "name": "s3", **kill})
    resumed = resume(tmp_path, "killed", data)
    assert resumed.summary.status == "completed", resumed.summary.error
    resumed.assert_clean()

    reference = run(tmp_path / "reference", pipeline(reference_path))
    assert reference.summary.status == "completed", reference.summary.error
    stored = read(s3, killed_path)
    assert parse_jsonl(stored) == rows
    assert stored == read(s3, reference_path)
    last = resumed.last_artifact()
    assert (last["content_hash"], last["size"], last["row_count"]) == (sha256(stored), len(stored), len(rows))
    assert not open_uploads(s3, killed_path)

    # What the resumed attempt did to repair the object happened while the sink was opened.
    open_states = {s["state_id"] for s in resumed.table("node_states", node_id="sink:out") if s["operation"] == "open"}
    at_open = [c["request"]["operation"] for c in resumed.calls() if c["state_id"] in open_states]
    for operation in repair:
        assert operation in at_open, at_open
