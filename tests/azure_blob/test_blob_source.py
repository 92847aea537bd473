"""The azure_blob source through the real SDK against Azurite: CSV, JSON and JSON Lines streamed in
ranged GETs, bad records quarantined as the file sources do, every GET a recorded call with its bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from elspeth.errors import ConfigError
from elspeth.plugins.azure.blob_source import AzureBlobSourceConfig
from elspeth.settings import structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.azurite import Azurite
from elspeth_testkit.fault_proxy import FaultProxy

from .blob_world import Blobs, World, endpoint

CSV = b'id,name,score\n1,alpha,1.5\n2,beta,extra,3\n3,\xff\xfegamma,2\n4,delta,x\n5,"multi\nline",4\n6,"unterminated\n'
JSONL = b'{"id": 1}\nnot json\n{"id": NaN}\n[1, 2]\n\n{"id": "\xff"}\n{"id": 2, "a": {"b": [1, "\\u00e9"]}}\n'
JSON = b'[\n {"id": 1},\n not json,\n {"id": NaN},\n [1, 2],\n {"id": "\xff"},\n {"id": 2, "s": "a,]\\"b"}\n]\n'


def pipeline(world: World, options: dict[str, Any], **engine: Any) -> dict[str, Any]:
    return world.settings(
        source={"plugin": "azure_blob", "options": options, "on_quarantine": "quarantine"},
        sinks={"out": world.local_sink("out.jsonl"), "quarantine": world.local_sink("quarantine.jsonl")},
        engine=engine,
    )


def output(world: World, name: str = "out.jsonl") -> list[dict[str, Any]]:
    path = world.root / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def quarantined(world: World, run_id: str) -> list[str]:
    rows = world.query(
        "SELECT reason_json FROM token_outcomes WHERE run_id = :r AND outcome = 'quarantined' ORDER BY token_id",
        r=run_id,
    )
    return [json.loads(r["reason_json"])["reason"] for r in rows]


@pytest.mark.parametrize(
    ("name", "data", "options", "good", "reasons"),
    [
        pytest.param(
            "in.csv",
            CSV,
            {"types": {"score": "float"}},
            [{"id": "1", "name": "alpha", "score": 1.5}, {"id": "5", "name": "multi\nline", "score": 4.0}],
            ["the header has 3 fields", "not valid utf-8", "column 'score'", "malformed CSV"],
            id="csv",
        ),
        pytest.param(
            "in.jsonl",
            JSONL,
            {},
            [{"id": 1}, {"id": 2, "a": {"b": [1, "é"]}}],
            ["not valid JSON", "NaN", "a JSON array", "not valid utf-8"],
            id="jsonl",
        ),
        pytest.param(
            "in.json",
            JSON,
            {},
            [{"id": 1}, {"id": 2, "s": 'a,]"b'}],
            ["element 2 (line 3): not valid JSON", "NaN", "a JSON array", "not valid utf-8"],
            id="json",
        ),
    ],
)
def test_bad_records_are_quarantined_and_good_ones_go_on(
    world: World,
    blobs: Blobs,
    azurite: Azurite,
    proxy: FaultProxy,
    name: str,
    data: bytes,
    options: dict,
    good: list,
    reasons: list[str],
) -> None:
    blobs.put(name, data)
    summary = world.run(pipeline(world, blobs.options(name, endpoint(proxy, azurite), chunk_bytes=7, **options)))
    assert summary.status == "completed", summary.error
    assert output(world) == good
    found = quarantined(world, summary.run_id)
    assert len(found) == len(reasons)
    for reason, expected in zip(found, reasons, strict=True):
        assert expected in reason
    # 7-byte chunks: one GET per chunk, each recorded with the bytes it returned.
    gets = [c for c in world.calls(summary.run_id) if c["request"]["operation"] == "download"]
    assert len(gets) == -(-len(data) // 7)
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_rows_stream_in_chunks_that_split_characters_and_line_ends(world: World, blobs: Blobs) -> None:
    text = "\ufeffid,name\r\n" + "".join(f"{i},naïve ☃ {i}\r\n" for i in range(50))
    blobs.put("split.csv", text.encode("utf-8"))
    summary = world.run(pipeline(world, blobs.options("split.csv", chunk_bytes=5)))
    assert summary.status == "completed", summary.error
    assert output(world) == [{"id": str(i), "name": f"naïve ☃ {i}"} for i in range(50)]
    calls = world.calls(summary.run_id)
    assert b"".join(_body(c["response"]) for c in calls) == text.encode("utf-8")
    assert all(c["request"]["range"].startswith("bytes=") for c in calls)
    world.assert_clean(summary.run_id)


def _body(response: dict[str, Any]) -> bytes:
    body = response.get("body", "")
    if isinstance(body, dict):
        import base64

        return base64.b64decode(body["base64"])
    return body.encode("utf-8")


def test_an_empty_blob_has_no_rows(world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy) -> None:
    blobs.put("empty.jsonl", b"")
    summary = world.run(pipeline(world, blobs.options("empty.jsonl", endpoint(proxy, azurite))))
    assert summary.status == "completed", summary.error
    assert summary.rows_read == 0
    # The SDK asks for a range first (416 on an empty blob), then for the whole blob: both recorded.
    statuses = [(c["status"], (c["response"] or {}).get("status")) for c in world.calls(summary.run_id)]
    assert statuses == [("error", 416), ("ok", 200)]
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_a_missing_blob_is_an_error_call_and_a_clear_message(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy
) -> None:
    settings = pipeline(world, blobs.options("nope/missing.csv", endpoint(proxy, azurite)))
    with pytest.raises(ConfigError) as raised:
        world.run(settings, run_id="missing")
    message = str(raised.value)
    assert "'nope/missing.csv'" in message and repr(blobs.container) in message and "`blob_path`" in message
    (call,) = world.calls("missing")
    assert call["status"] == "error" and call["error"]["status"] == 404
    assert call["request"]["operation"] == "download" and call["request"]["blob"] == "nope/missing.csv"
    world.assert_clean("missing")
    world.assert_wire(proxy, "missing")


def test_a_missing_container_names_the_container(world: World, blobs: Blobs) -> None:
    settings = pipeline(world, {**blobs.options("x.csv"), "container": "no-such-container"})
    with pytest.raises(ConfigError, match="container 'no-such-container' does not exist"):
        world.run(settings)


@pytest.mark.parametrize(
    ("fault", "nth"),
    [
        pytest.param(fault_proxy.status(500), 1, id="500-on-the-first-GET"),
        pytest.param(fault_proxy.status(429, retry_after=0), 2, id="429-on-the-second-GET"),
        pytest.param(fault_proxy.reset(), 3, id="reset-on-the-third-GET"),
        pytest.param(fault_proxy.timeout(1.0), 2, id="timeout-on-the-second-GET"),
        pytest.param(fault_proxy.malformed(), 1, id="malformed-first-GET"),
        pytest.param(fault_proxy.malformed(), 4, id="malformed-fourth-GET"),
    ],
)
def test_a_fault_mid_read_is_an_error_call_and_the_read_goes_on(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy, fault: Any, nth: int
) -> None:
    rows = [{"id": i, "text": f"value number {i}"} for i in range(40)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    blobs.put("rows.jsonl", data)
    proxy.script(fault, method="GET", nth=nth)
    options = blobs.options("rows.jsonl", endpoint(proxy, azurite), chunk_bytes=256, timeout_seconds=0.5)
    summary = world.run(pipeline(world, options))
    assert summary.status == "completed", summary.error
    assert output(world) == rows
    errors = [c for c in world.calls(summary.run_id) if c["status"] == "error"]
    assert len(errors) == 1
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_a_fault_that_persists_fails_the_run_with_every_attempt_recorded(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy
) -> None:
    blobs.put("down.jsonl", b'{"id": 1}\n')
    proxy.script(fault_proxy.status(503), method="GET")
    summary = world.run(pipeline(world, blobs.options("down.jsonl", endpoint(proxy, azurite), max_attempts=3)))
    assert summary.status == "failed"
    assert "HTTP 503" in (summary.error or "") and "after 3 attempt(s)" in (summary.error or "")
    calls = world.calls(summary.run_id)
    assert [(c["status"], c["request"]["attempt"]) for c in calls] == [("error", 1), ("error", 2), ("error", 3)]
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_a_killed_read_resumes_without_losing_or_repeating_a_row(world: World, blobs: Blobs) -> None:
    rows = [{"id": i} for i in range(40)]
    blobs.put("many.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    settings = pipeline(
        world, blobs.options("many.jsonl", chunk_bytes=64), write_batch_rows=5, checkpoint_every_rows=10
    )
    kill = {"kind": "source", "name": "azure_blob", "method": "load", "n": 25}
    assert world.child(settings, "read", kill) == -9
    summary = world.resume("read", settings)
    assert summary.status == "completed", summary.error
    assert output(world) == rows
    world.assert_clean("read")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "xml"}, "use one of: csv, json, jsonl"),
        ({"blob_path": "in.txt"}, "set `format`"),
        ({"blob_path": "../in.csv"}, "'..' segment"),
        ({"blob_path": "/in.csv"}, "absolute"),
        ({"blob_path": "in.jsonl", "types": {"a": "int"}}, "`types` applies to format csv only"),
        ({"delimiter": ";;"}, "single character"),
        ({"encoding": "klingon"}, "`encoding`"),
        ({"chunk_bytes": 0}, "`chunk_bytes` must be a number greater than 0"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str, blobs: Blobs) -> None:
    with pytest.raises(ConfigError, match=message):
        structure({**blobs.options("in.csv"), **options}, AzureBlobSourceConfig, where="source.options")
