"""The `s3` sink in real pipelines against moto's S3 server: many writes and flushes, parts of 5 MiB and
more, the same bytes as elspeth's local sinks, overwrite refusal, empty runs."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest
from elspeth_s3.conformance import client
from elspeth_s3.sink import MIN_PART, MiB, _copy_ranges, _multipart_etag
from s3_pipelines import (
    Run,
    jsonl,
    local_jsonl,
    open_uploads,
    parse_jsonl,
    put,
    read,
    run,
    s3_options,
    settings,
    sha256,
    url_of,
)

from elspeth.errors import ConfigError
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.wire_check import assert_wire_matches_calls


def small_rows(n: int) -> list[dict]:
    return [{"id": i, "name": f"row {i:04d}", "ok": i % 2 == 0, "score": i * 1.5, "note": None} for i in range(n)]


def mixed_rows() -> list[dict]:
    """50 tiny rows, then 100 of 128 KiB: the object is small at the first flush, then crosses 5 MiB."""
    tiny = [{"id": i, "blob": f"t{i}"} for i in range(50)]
    big = [{"id": i, "blob": hashlib.sha256(str(i).encode()).hexdigest() * 2048} for i in range(50, 150)]
    return tiny + big


def source_of(tmp_path: Path, rows: list[dict]) -> dict:
    path = tmp_path / "input.jsonl"
    path.write_bytes(jsonl(rows))
    return {"plugin": "jsonl", "options": {"path": str(path)}}


def head_etag(s3: str, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return client(s3).head_object(Bucket=bucket, Key=key)["ETag"]


def assert_artifacts_describe(s3: str, result, data: bytes) -> None:
    """The last artifact is every stored byte; each earlier one a prefix of them (nothing durable was ever
    rewritten or cut)."""
    artifacts = sorted(result.table("artifacts", node_id="sink:out"), key=lambda a: a["artifact_id"])
    assert artifacts, "no artifact recorded"
    last = artifacts[-1]
    assert (last["content_hash"], last["size"]) == (sha256(data), len(data))
    for artifact in artifacts:
        assert sha256(data[: artifact["size"]]) == artifact["content_hash"], artifact
    sizes = [a["size"] for a in artifacts]
    assert sizes == sorted(sizes)
    # The state a resume continues from names the ETag the object has (the If-Match of the next write).
    [checkpoint] = [c for c in result.table("checkpoints") if c["artifact_id"] == last["artifact_id"]]
    assert json.loads(checkpoint["resume_json"])["etag"] == head_etag(s3, last["uri"])


def test_multi_write_small_object(s3: str, tmp_path: Path) -> None:
    rows = small_rows(23)
    path = f"{tmp_path.name}/small.jsonl"
    data = settings(
        source_of(tmp_path, rows),
        {"out": {"plugin": "s3", "options": s3_options(s3, path)}},
        write_batch_rows=4,
        checkpoint_every_rows=5,
    )
    result = run(tmp_path, data)
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    stored = read(s3, path)
    assert parse_jsonl(stored) == rows
    assert_artifacts_describe(s3, result, stored)
    writes = [s for s in result.table("node_states", node_id="sink:out") if s["operation"] == "write"]
    flushes = [s for s in result.table("node_states", node_id="sink:out") if s["operation"] == "flush"]
    assert len(writes) >= 6 and len(flushes) >= 4
    operations = result.operations()
    assert operations[0] == "ListObjectsV2"
    assert set(operations[1:]) == {"PutObject"}
    assert not open_uploads(s3, path)


def test_parts_of_5_mib_and_copied_prefixes(s3: str, tmp_path: Path) -> None:
    """The first flush is a small PutObject; then the buffer reaches a part and the small object is re-sent
    at the head of a multipart upload; then the object (over 5 MiB) is copied server side as the first part
    of the next upload. Every path goes through the fault proxy, and the wire matches the calls."""
    rows = mixed_rows()
    path = f"{tmp_path.name}/big.jsonl"
    with FaultProxy(s3) as proxy:
        data = settings(
            source_of(tmp_path, rows),
            {"out": {"plugin": "s3", "options": s3_options(proxy.url, path, part_size_mb=5)}},
            write_batch_rows=10,
            checkpoint_every_rows=50,
        )
        result = run(tmp_path, data)
        proxy.wait_idle()
        exchanges = proxy.exchanges
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert_wire_matches_calls(exchanges, result.url, result.run_id, tmp_path / "payloads")
    stored = read(s3, path)
    assert parse_jsonl(stored) == rows
    assert_artifacts_describe(s3, result, stored)

    calls = result.calls()
    operations = [c["request"]["operation"] for c in calls]
    assert "PutObject" in operations and "UploadPartCopy" in operations
    parts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for call in calls:
        request = call["request"]
        if request["operation"] == "UploadPart":
            body = request["body"]
            parts[request["UploadId"]].append((request["PartNumber"], len(body.encode("utf-8"))))
        if request["operation"] == "UploadPartCopy":
            parts[request["UploadId"]].append((request["PartNumber"], -1))
    assert len(parts) == 2, parts
    for sizes in parts.values():
        numbers = [n for n, _ in sizes]
        assert numbers == list(range(1, len(numbers) + 1))
        for _, size in sizes[:-1]:
            assert size == -1 or size == 5 * MiB  # a copy, or a full part: memory stays near one part
        assert 0 < sizes[-1][1] <= 5 * MiB
    artifacts = sorted(result.table("artifacts", node_id="sink:out"), key=lambda a: a["artifact_id"])
    copies = [c["request"] for c in calls if c["request"]["operation"] == "UploadPartCopy"]
    assert copies[0]["CopySourceRange"] == f"bytes=0-{artifacts[1]['size'] - 1}"
    assert artifacts[1]["size"] >= MIN_PART
    # The ETag a retry would check an ambiguous completion against is the one S3 gives.
    for call in calls:
        if call["request"]["operation"] == "CompleteMultipartUpload":
            assert _multipart_etag(call["request"]["MultipartUpload"]["Parts"]) == call["response"]["etag"]
    assert not open_uploads(s3, path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_same_bytes_as_the_local_sinks(s3: str, tmp_path: Path, fmt: str) -> None:
    rows = [
        {"id": 1, "name": "plain", "ok": True, "score": 1.5, "tags": ["a", "b"], "meta": {"k": 1}, "none": None},
        {"id": 2, "name": 'quote " and, comma', "ok": False, "score": 2.0, "tags": [], "meta": {}, "none": None},
        {"id": 3, "name": "ünïcode ☃ line\nbreak", "ok": True, "score": -0.25, "tags": ["x"], "meta": {}, "none": 1},
    ]
    extra = {"delimiter": ";"} if fmt == "csv" else {}
    path = f"{tmp_path.name}/same.{fmt}"
    s3_run = run(
        tmp_path / "s3",
        settings(
            source_of(tmp_path, rows),
            {"out": {"plugin": "s3", "options": s3_options(s3, path, format=fmt, **extra)}},
            write_batch_rows=2,
            checkpoint_every_rows=2,
        ),
    )
    local_path = tmp_path / "local" / f"out.{fmt}"
    local_run = run(
        tmp_path / "local",
        settings(
            source_of(tmp_path, rows),
            {"out": {"plugin": fmt, "options": {"path": str(local_path), **extra}}},
            write_batch_rows=2,
            checkpoint_every_rows=2,
        ),
    )
    assert s3_run.summary.status == local_run.summary.status == "completed"
    s3_run.assert_clean()
    assert read(s3, path) == local_path.read_bytes()
    assert s3_run.last_artifact()["content_hash"] == local_run.last_artifact()["content_hash"]


def test_existing_object_is_refused_unless_overwrite(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/exists.jsonl"
    old = b'{"old": "object, longer than what replaces it"}\n' * 50
    put(s3, path, old)
    rows = small_rows(3)
    refused_dir = tmp_path / "refused"
    with pytest.raises(ConfigError, match="already exists; set `overwrite: true`"):
        run(
            refused_dir,
            settings(source_of(tmp_path, rows), {"out": {"plugin": "s3", "options": s3_options(s3, path)}}),
            run_id="refused",
        )
    refused = Run(None, url_of(refused_dir), refused_dir, "refused")
    assert refused.table("runs")[0]["status"] == "failed"
    refused.assert_clean()
    assert refused.operations() == ["ListObjectsV2"]
    assert read(s3, path) == old

    replaced = run(
        tmp_path / "replaced",
        settings(source_of(tmp_path, rows), {"out": {"plugin": "s3", "options": s3_options(s3, path, overwrite=True)}}),
    )
    assert replaced.summary.status == "completed", replaced.summary.error
    replaced.assert_clean()
    stored = read(s3, path)
    assert parse_jsonl(stored) == rows
    assert_artifacts_describe(s3, replaced, stored)


def test_an_empty_run_stores_an_empty_object(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/empty.csv"
    result = run(
        tmp_path,
        settings(source_of(tmp_path, []), {"out": {"plugin": "s3", "options": s3_options(s3, path, format="csv")}}),
    )
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert read(s3, path) == b""
    assert result.last_artifact()["size"] == 0
    assert result.last_artifact()["uri"] == f"s3://elspeth-s3-tests/{path}"


def test_a_row_with_an_unknown_column_fails_the_run_cleanly(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/columns.csv"
    rows = [{"a": 1}, {"a": 2, "b": 3}]
    result = run(
        tmp_path,
        settings(
            source_of(tmp_path, rows),
            {"out": {"plugin": "s3", "options": s3_options(s3, path, format="csv")}},
            write_batch_rows=1,
        ),
    )
    assert result.summary.status == "failed"
    assert "'b'" in result.summary.error and "fields" in result.summary.error
    result.assert_clean()


def test_two_sinks_on_one_bucket_each_hold_their_rows(s3: str, tmp_path: Path) -> None:
    rows = [{"id": i, "group": "g1" if i % 3 else "g0"} for i in range(20)]
    data = settings(
        source_of(tmp_path, rows),
        {
            "out": {"plugin": "s3", "options": s3_options(s3, f"{tmp_path.name}/main.jsonl")},
            "other": {"plugin": "s3", "options": s3_options(s3, f"{tmp_path.name}/other.jsonl", format="csv")},
            "errors": local_jsonl(tmp_path / "errors.jsonl"),
        },
        write_batch_rows=3,
        checkpoint_every_rows=4,
    )
    data["transforms"] = [{"plugin": "route", "options": {"field": "group", "routes": {"g0": "other"}}}]
    result = run(tmp_path, data)
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert parse_jsonl(read(s3, f"{tmp_path.name}/main.jsonl")) == [r for r in rows if r["group"] == "g1"]
    other = read(s3, f"{tmp_path.name}/other.jsonl").decode().splitlines()
    assert other == ["id,group"] + [f"{r['id']},g0" for r in rows if r["group"] == "g0"]


def test_copy_ranges_cover_the_object_in_parts_s3_allows() -> None:
    gib = 1024 * MiB
    for size in (MIN_PART, 6 * MiB, 5 * gib, 5 * gib + 1, 12 * gib + 7, 50 * gib):
        ranges = _copy_ranges(size)
        assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
        assert all(MIN_PART <= last - first + 1 <= 5 * gib for first, last in ranges)
