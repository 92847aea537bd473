"""The `s3` source in real pipelines against moto's S3 server: ranged GETs each recorded with the bytes
received, elspeth's own CSV/JSON Lines parsing and quarantine, faults on the wire, a missing object."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from elspeth_s3.conformance import ACCESS_KEY_ID
from s3_pipelines import Run, jsonl, local_jsonl, parse_jsonl, put, run, s3_options, settings, url_of

from elspeth.errors import ConfigError
from elspeth_testkit import fault_proxy
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.wire_check import assert_wire_matches_calls


def rows_of(n: int) -> list[dict]:
    return [{"id": i, "name": f"row {i:04d}", "amount": i * 1.25, "flag": i % 2 == 0} for i in range(n)]


def pipeline(tmp_path: Path, options: dict) -> dict:
    data = settings(
        {"plugin": "s3", "options": options, "on_quarantine": "errors"},
        {"out": local_jsonl(tmp_path / "out.jsonl"), "errors": local_jsonl(tmp_path / "errors.jsonl")},
        write_batch_rows=5,
        checkpoint_every_rows=10,
    )
    return data


def body_bytes(value: object) -> bytes:
    """A recorded body back as bytes (the recorder keeps UTF-8 as text, anything else as base64)."""
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    assert isinstance(value, str)
    return value.encode("utf-8")


def test_rows_arrive_in_order_and_every_get_holds_its_bytes(s3: str, tmp_path: Path) -> None:
    rows = rows_of(40)
    path = f"{tmp_path.name}/in.jsonl"
    data = jsonl(rows)
    put(s3, path, data)
    result = run(tmp_path, pipeline(tmp_path, s3_options(s3, path, chunk_size_mb=0.0005)))
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert parse_jsonl((tmp_path / "out.jsonl").read_bytes()) == rows
    gets = [c for c in result.calls() if c["request"]["operation"] == "GetObject"]
    assert len(gets) == -(-len(data) // 524)  # one per 0.0005 MiB
    assert b"".join(body_bytes(c["response"]["body"]) for c in gets) == data
    etag = gets[0]["response"]["etag"]
    for i, call in enumerate(gets):
        assert call["request"]["Range"] == f"bytes={i * 524}-{min((i + 1) * 524, len(data)) - 1}"
        assert call["response"]["status"] == 206
        assert call["request"].get("IfMatch") == (etag if i else None)
    load_state = {s["state_id"] for s in result.table("node_states", node_id="source:s3") if s["operation"] == "load"}
    assert {c["state_id"] for c in gets} <= load_state


def test_csv_with_types_and_bad_records_quarantined(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/in.csv"
    put(s3, path, b'id;name;score\n1;alpha;1.5\n2;beta;oops\n3;\xff\xfegamma;2\n4;delta;2.5;extra\n5;eps;3\n6;"open\n')
    options = s3_options(s3, path, format="csv", delimiter=";", types={"id": "int", "score": "float"})
    result = run(tmp_path, pipeline(tmp_path, options))
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert parse_jsonl((tmp_path / "out.jsonl").read_bytes()) == [
        {"id": 1, "name": "alpha", "score": 1.5},
        {"id": 5, "name": "eps", "score": 3.0},
    ]
    outcomes = result.table("token_outcomes")
    quarantined = [o for o in outcomes if o["outcome"] == "quarantined"]
    assert len(quarantined) == 4 and all(o["reason_json"] for o in quarantined)
    reasons = " ".join(o["reason_json"] for o in quarantined)
    assert "'score'" in reasons and "not valid utf-8" in reasons and "this record 4" in reasons


def test_jsonl_bad_records_quarantined(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/in.jsonl"
    put(s3, path, b'{"id": 1}\nnot json\n{"id": NaN}\n[1, 2]\n{"id": "\xff"}\n\n{"id": 2}\n')
    result = run(tmp_path, pipeline(tmp_path, s3_options(s3, path, chunk_size_mb=0.0001)))
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert parse_jsonl((tmp_path / "out.jsonl").read_bytes()) == [{"id": 1}, {"id": 2}]
    assert len([o for o in result.table("token_outcomes") if o["outcome"] == "quarantined"]) == 4


def test_an_empty_object_gives_no_rows(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/empty.jsonl"
    put(s3, path, b"")
    result = run(tmp_path, pipeline(tmp_path, s3_options(s3, path)))
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert result.summary.rows_read == 0
    # The ranged GET of an empty object is refused (416, an ERROR call); a HEAD confirms it is empty.
    assert [(c["request"]["operation"], c["status"]) for c in result.calls()] == [
        ("GetObject", "error"),
        ("HeadObject", "ok"),
    ]


def test_a_missing_object_fails_the_run_with_what_to_do(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/missing.jsonl"
    with pytest.raises(ConfigError, match="does not exist; set `bucket` and `path`"):
        run(tmp_path, pipeline(tmp_path, s3_options(s3, path)), run_id="missing")
    result = Run(None, url_of(tmp_path), tmp_path, "missing")
    assert result.table("runs")[0]["status"] == "failed"
    result.assert_clean()
    [call] = result.calls()
    assert call["status"] == "error" and call["response"]["status"] == 404


@pytest.mark.parametrize(
    "fault",
    [fault_proxy.status(500), fault_proxy.status(429, retry_after=0), fault_proxy.reset(), fault_proxy.malformed()],
    ids=["500", "429", "reset", "malformed"],
)
def test_faults_on_a_middle_get_are_error_calls_then_retried(s3: str, tmp_path: Path, fault: object) -> None:
    rows = rows_of(30)
    path = f"{tmp_path.name}/in.jsonl"
    put(s3, path, jsonl(rows))
    with FaultProxy(s3) as proxy:
        proxy.script(fault, method="GET", nth=3)
        result = run(tmp_path, pipeline(tmp_path, s3_options(proxy.url, path, chunk_size_mb=0.0005)))
        proxy.wait_idle()
        exchanges = proxy.exchanges
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert_wire_matches_calls(exchanges, result.url, result.run_id, tmp_path / "payloads")
    assert parse_jsonl((tmp_path / "out.jsonl").read_bytes()) == rows
    assert [c["status"] for c in result.table("calls")].count("error") == 1


def test_an_object_replaced_while_read_fails_the_run(s3: str, tmp_path: Path) -> None:
    path = f"{tmp_path.name}/in.jsonl"
    put(s3, path, jsonl(rows_of(30)))
    replaced: list[int] = []

    def replace_after_first(exchange: fault_proxy.Exchange) -> None:
        if not replaced:
            replaced.append(exchange.index)
            put(s3, path, jsonl(rows_of(31)))

    with FaultProxy(s3, on_exchange=replace_after_first) as proxy:
        result = run(tmp_path, pipeline(tmp_path, s3_options(proxy.url, path, chunk_size_mb=0.0005)))
    assert result.summary.status == "failed"
    assert "replaced while it was read" in result.summary.error
    result.assert_clean()
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_bytes()


def test_bad_options_are_config_errors_naming_the_option(s3: str, tmp_path: Path) -> None:
    for options, named in [
        ({**s3_options(s3, "x.jsonl"), "format": "parquet"}, "format"),
        ({**s3_options(s3, "s3://bucket/x.jsonl")}, "path"),
        ({**s3_options(s3, "x.jsonl"), "aws_secret_access_key": None}, "aws_secret_access_key"),
        ({**s3_options(s3, "x.jsonl"), "chunk_size_mb": 0}, "chunk_size_mb"),
        ({**s3_options(s3, "x.jsonl"), "bucket_name": "typo"}, "bucket_name"),
    ]:
        with pytest.raises(ConfigError, match=named):
            run(tmp_path, pipeline(tmp_path, options))


def test_credentials_stay_out_of_the_landscape(s3: str, tmp_path: Path) -> None:
    secret = f"source-secret-{uuid.uuid4().hex}"
    path = f"{tmp_path.name}/in.jsonl"
    put(s3, path, jsonl(rows_of(5)))
    options = {**s3_options(s3, path), "aws_secret_access_key": secret}
    result = run(tmp_path, pipeline(tmp_path, options))
    assert result.summary.status == "completed", result.summary.error
    for place in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert secret.encode() not in place.read_bytes(), place
        if place.name.startswith("landscape.db"):
            assert ACCESS_KEY_ID.encode() not in place.read_bytes(), place


def test_a_region_redirect_inside_botocore_is_two_calls(s3: str, tmp_path: Path) -> None:
    """botocore follows S3's "wrong region" answer by itself, sending the request again: each send is a call."""
    path = f"{tmp_path.name}/empty.jsonl"
    put(s3, path, b"")
    moved = fault_proxy.status(301, body=b"", headers=(("x-amz-bucket-region", "eu-west-1"),))
    with FaultProxy(s3) as proxy:
        proxy.script(moved, method="HEAD", nth=1)
        result = run(tmp_path, pipeline(tmp_path, s3_options(proxy.url, path)))
        proxy.wait_idle()
        exchanges = proxy.exchanges
    assert result.summary.status == "completed", result.summary.error
    result.assert_clean()
    assert [(e.method, e.status) for e in exchanges] == [("GET", 416), ("HEAD", 301), ("HEAD", 200)]
    assert_wire_matches_calls(exchanges, result.url, result.run_id, tmp_path / "payloads")
    calls = result.calls()
    assert [(c["request"]["operation"], c["status"], (c["response"] or {}).get("status")) for c in calls] == [
        ("GetObject", "error", 416),
        ("HeadObject", "error", 301),
        ("HeadObject", "ok", 200),
    ]


def test_no_credentials_is_a_config_error(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {k: v for k, v in s3_options(s3, "x.jsonl").items() if not k.startswith("aws_")}
    with pytest.raises(ConfigError, match="no usable AWS credentials"):
        run(tmp_path, pipeline(tmp_path, options))
