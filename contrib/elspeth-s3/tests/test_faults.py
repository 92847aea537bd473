"""Failures on the wire, injected by the kit's fault proxy in front of moto: each failed attempt is an ERROR
call, retries are calls of their own, the wire matches the Landscape, and the object ends right."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from s3_pipelines import jsonl, open_uploads, parse_jsonl, put, read, resume, run, s3_options, settings, sha256

from elspeth.errors import ResumeError
from elspeth_testkit import fault_proxy
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.wire_check import assert_wire_matches_calls


def mixed_rows() -> list[dict]:
    tiny = [{"id": i, "blob": f"t{i}"} for i in range(50)]
    big = [{"id": i, "blob": hashlib.sha256(str(i).encode()).hexdigest() * 2048} for i in range(50, 150)]
    return tiny + big


def small_rows() -> list[dict]:
    return [{"id": i, "name": f"row {i}"} for i in range(12)]


# name -> (rows, fault, which requests: method, path regex, nth)
FAULTS = {
    "500 on the first UploadPart": (mixed_rows, fault_proxy.status(500), ("PUT", r"partNumber=1(&|$)", 1)),
    "429 on a ListObjectsV2": (small_rows, fault_proxy.status(429, retry_after=0), ("GET", r"list-type=2", 1)),
    "reset on the UploadPartCopy": (mixed_rows, fault_proxy.reset(), ("PUT", r"partNumber=1(&|$)", 2)),
    "timeout on a CompleteMultipartUpload": (mixed_rows, fault_proxy.timeout(1.0), ("POST", r"uploadId=", 1)),
    # Forwarded, then garbled: the upload completed, the client cannot tell; the retry finds it done.
    "garbled CompleteMultipartUpload answer": (mixed_rows, fault_proxy.malformed(), ("POST", r"uploadId=", 1)),
    # The object was written, the answer garbled: the retry under If-None-Match finds it there, and right.
    "garbled PutObject answer": (small_rows, fault_proxy.malformed(), ("PUT", r"\.jsonl$", 1)),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_is_an_error_call_then_a_retry(s3: str, tmp_path: Path, name: str) -> None:
    make_rows, fault, (method, path_re, nth) = FAULTS[name]
    rows = make_rows()
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))
    path = f"{tmp_path.name}/out.jsonl"
    with FaultProxy(s3) as proxy:
        proxy.script(fault, method=method, path=path_re, nth=nth)
        options = s3_options(proxy.url, path, part_size_mb=5, timeout_seconds=5)
        data = settings(
            {"plugin": "jsonl", "options": {"path": str(source)}},
            {"out": {"plugin": "s3", "options": options}},
            write_batch_rows=10,
            checkpoint_every_rows=50,
        )
        result = run(tmp_path, data)
        proxy.wait_idle()
        exchanges = proxy.exchanges
    assert result.summary.status == "completed", result.summary.error
    assert [e.fault for e in exchanges if e.fault], "the fault was never injected"
    result.assert_clean()
    assert_wire_matches_calls(exchanges, result.url, result.run_id, tmp_path / "payloads")
    # One ERROR call per failed exchange: the fault, and a precondition the retry found already met.
    errors = [c for c in result.table("calls") if c["status"] == "error"]
    assert errors and all(c["error_json"] for c in errors)
    assert len(errors) == len([e for e in exchanges if e.failed])
    stored = read(s3, path)
    assert parse_jsonl(stored) == rows
    assert result.last_artifact()["content_hash"] == sha256(stored)
    assert not open_uploads(s3, path)


def test_a_fault_that_persists_fails_the_run_and_resume_finishes_it(s3: str, tmp_path: Path) -> None:
    rows = small_rows()
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))
    path = f"{tmp_path.name}/out.jsonl"
    with FaultProxy(s3) as proxy:
        options = s3_options(proxy.url, path, max_attempts=3)
        data = settings(
            {"plugin": "jsonl", "options": {"path": str(source)}},
            {"out": {"plugin": "s3", "options": options}},
            write_batch_rows=3,
            checkpoint_every_rows=4,
        )
        # The first flush gets through (rule 1 lets one PUT pass), every later one fails three times.
        proxy.script(fault_proxy.delay(0), method="PUT", path=r"\.jsonl$", first=1)
        proxy.script(fault_proxy.status(503, retry_after=0), method="PUT", path=r"\.jsonl$")
        failed = run(tmp_path, data)
        proxy.wait_idle()
        assert failed.summary.status == "failed"
        assert "503" in failed.summary.error
        failed.assert_clean()
        assert_wire_matches_calls(proxy.exchanges, failed.url, failed.run_id, tmp_path / "payloads")
        errors = [c for c in failed.table("calls") if c["status"] == "error"]
        assert len(errors) == 3
        assert parse_jsonl(read(s3, path)) == rows[:4]

        proxy.clear()
        resumed = resume(tmp_path, failed.run_id, data)
    assert resumed.summary.status == "completed", resumed.summary.error
    resumed.assert_clean()
    stored = read(s3, path)
    assert parse_jsonl(stored) == rows
    assert resumed.last_artifact()["content_hash"] == sha256(stored)


def test_resume_refuses_an_object_changed_since(s3: str, tmp_path: Path) -> None:
    rows = small_rows()
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))
    path = f"{tmp_path.name}/out.jsonl"
    with FaultProxy(s3) as proxy:
        data = settings(
            {"plugin": "jsonl", "options": {"path": str(source)}},
            {"out": {"plugin": "s3", "options": s3_options(proxy.url, path, max_attempts=1)}},
            write_batch_rows=3,
            checkpoint_every_rows=4,
        )
        proxy.script(fault_proxy.delay(0), method="PUT", path=r"\.jsonl$", first=1)
        proxy.script(fault_proxy.status(500), method="PUT", path=r"\.jsonl$")
        failed = run(tmp_path, data)
        assert failed.summary.status == "failed"
        proxy.clear()
        put(s3, path, read(s3, path).replace(b"row 1", b"row X"))
        with pytest.raises(ResumeError, match="sha256 differs"):
            resume(tmp_path, failed.run_id, data)


def test_credentials_stay_out_of_the_landscape_and_the_logs(
    s3: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_id, secret = f"AKIA{uuid.uuid4().hex[:16].upper()}", f"secret-{uuid.uuid4().hex}"
    rows = mixed_rows()[45:60]
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))
    path = f"{tmp_path.name}/out.jsonl"
    options = {**s3_options(s3, path, part_size_mb=5), "aws_access_key_id": key_id, "aws_secret_access_key": secret}
    caplog.set_level("DEBUG")
    result = run(
        tmp_path,
        settings(
            {"plugin": "jsonl", "options": {"path": str(source)}},
            {"out": {"plugin": "s3", "options": options}},
            write_batch_rows=2,
            checkpoint_every_rows=7,
        ),
    )
    assert result.summary.status == "completed", result.summary.error
    assert "Sending http request" in caplog.text  # botocore did log every request...
    places = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "input.jsonl"]
    assert any(p.name.startswith("landscape.db") for p in places)
    for value in (secret, key_id):
        assert value not in caplog.text  # ...without the credentials
        leaked = [str(p) for p in places if value.encode() in p.read_bytes()]
        assert not leaked, f"{value[:6]}... found in {leaked}"


def test_an_object_replaced_between_flushes_is_not_overwritten(s3: str, tmp_path: Path) -> None:
    """Every write-out is conditional on the ETag of the last one: a concurrent writer is detected, not
    overwritten."""
    rows = small_rows()
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl(rows))
    path = f"{tmp_path.name}/out.jsonl"
    intruder = b'{"someone": "else"}\n'

    def replace_after_first_write(exchange: fault_proxy.Exchange) -> None:
        if exchange.method == "PUT" and exchange.status == 200 and not exchange.query:
            put(s3, path, intruder)

    with FaultProxy(s3, on_exchange=replace_after_first_write) as proxy:
        data = settings(
            {"plugin": "jsonl", "options": {"path": str(source)}},
            {"out": {"plugin": "s3", "options": s3_options(proxy.url, path)}},
            write_batch_rows=3,
            checkpoint_every_rows=4,
        )
        result = run(tmp_path, data)
    assert result.summary.status == "failed"
    assert "changed by someone else" in result.summary.error
    result.assert_clean()
    assert read(s3, path) == intruder
