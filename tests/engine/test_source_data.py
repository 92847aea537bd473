"""What the engine does with the data itself: source payloads persisted with their types (class 16),
non-canonical values refused rather than written or hashed (class 17), malformed input quarantined rather
than crashing the run (class 18)."""

from __future__ import annotations

import json
import math

import pytest

from elspeth.errors import ElspethError
from elspeth_testkit.sweep import strict_loads


def typed_rows(count: int, tweak: str = "") -> list[dict]:
    return [
        {
            "id": i,
            "f": float(i),  # 3.0 must stay 3.0, not become 3
            "half": i / 2,
            "flag": i % 2 == 0,
            "none": None,
            "tags": ["x", i, {"deep": [True, None]}],
            "text": f"é✓ {tweak}{i}",
        }
        for i in range(count)
    ]


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def test_class16_source_payloads_are_stored_with_their_types_and_rebuild_rows_on_resume(world):
    crashed, clean = world("crashed"), world("clean")
    rows = typed_rows(40)

    def settings(w):
        source = w.root / "in.jsonl"
        write_jsonl(source, rows)
        return w.settings(source={"plugin": "jsonl", "options": {"path": str(source)}})

    crashed_settings = settings(crashed)
    failed = crashed.run(crashed_settings, faults={"out": {"at": "flush", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    stored = crashed.query("SELECT payload_json FROM rows WHERE run_id = :run ORDER BY row_id", run=failed.run_id)
    rebuilt = [json.loads(r["payload_json"]) for r in stored]
    assert rebuilt == rows
    assert all(type(r["f"]) is float and type(r["id"]) is int for r in rebuilt), "types lost in the Landscape"
    unfinished = crashed.query(
        "SELECT count(*) AS n FROM tokens t LEFT JOIN token_outcomes o ON o.run_id = t.run_id "
        "AND o.token_id = t.token_id WHERE t.run_id = :run AND o.token_id IS NULL",
        run=failed.run_id,
    )[0]["n"]
    assert unfinished == 20

    # The recorded rows must come from the Landscape, not from a second read of the source: change them.
    write_jsonl(crashed.root / "in.jsonl", typed_rows(40, tweak="CHANGED "))
    resumed = crashed.resume(failed.run_id, crashed_settings)
    assert resumed.status == "completed", resumed.error

    clean.run(settings(clean))
    assert crashed.bytes("out") == clean.bytes("out")
    assert [json.loads(line) for line in crashed.bytes("out").decode().splitlines()] == rows
    crashed.assert_clean(failed.run_id)


def test_class17_nan_infinity_and_unsafe_integers_from_a_source_are_quarantined(world):
    w = world("w")
    settings = w.settings(
        source={
            "plugin": "test_numbers",
            "options": {"count": 20, "nan_at": [3], "inf_at": [5], "bigint_at": [8]},
            "on_quarantine": "quarantine",
        },
        sinks=["out", "quarantine"],
        default_sink="out",
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    assert summary.outcomes == {"completed": 17, "quarantined": 3}
    assert [row["id"] for row in w.lines("out")] == [i for i in range(20) if i not in (3, 5, 8)]
    quarantined = w.query(
        "SELECT payload_json, payload_hash FROM rows WHERE run_id = :run AND quarantined ORDER BY row_id",
        run=summary.run_id,
    )
    assert len(quarantined) == 3 and all(r["payload_hash"] is None for r in quarantined)
    for sink in ("out", "quarantine"):
        for line in w.bytes(sink).decode().splitlines():
            strict_loads(line)  # no NaN / Infinity written
    reasons = [row["_reason"] for row in w.lines("quarantine")]
    assert len(reasons) == 3 and all("canonical" in reason for reason in reasons)
    w.assert_clean(summary.run_id)


def test_class17_a_transform_output_holding_infinity_fails_that_row(world):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 20}},
        transforms=[{"plugin": "test_flaky", "options": {"nan_output_every": 4}}],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    assert summary.outcomes == {"completed": 15, "failed": 5}
    reasons = w.query(
        "SELECT reason_json FROM token_outcomes WHERE run_id = :run AND outcome = 'failed'", run=summary.run_id
    )
    assert all("canonical" in r["reason_json"] for r in reasons)
    assert all(math.isfinite(row["value"]) and "ratio" not in row for row in w.lines("out"))
    w.assert_clean(summary.run_id)


def test_class17_an_aggregate_output_holding_infinity_fails_its_batch(world):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 20}},
        aggregations=[{"plugin": "test_batcher", "options": {"inf_output": True}, "trigger": {"count": 10}}],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    assert summary.outcomes == {"failed": 20}
    assert w.query("SELECT DISTINCT status FROM batches WHERE run_id = :run", run=summary.run_id) == [
        {"status": "failed"}
    ]
    assert w.bytes("out") == b""
    w.assert_clean(summary.run_id)


def test_class17_a_call_response_holding_nan_is_recorded_canonically(world):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 9}},
        transforms=[{"plugin": "test_caller", "options": {"calls": 2, "nan_response_every": 3}}],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    responses = w.query("SELECT response_json FROM calls WHERE run_id = :run", run=summary.run_id)
    assert len(responses) == 18
    for r in responses:
        strict_loads(r["response_json"])
    w.assert_clean(summary.run_id)


def test_class17_error_details_holding_nan_fail_the_row_not_the_run(world):
    """A transform returns Error(details={"score": nan}) for a row: that row's problem. The run must go on,
    the row end FAILED with its error stored as valid JSON, and no node_state be left open."""
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 20}},
        transforms=[{"plugin": "test_flaky", "options": {"nan_details_every": 7}}],
    )
    summary = w.run(settings)
    w.assert_clean(summary.run_id)
    assert summary.status == "completed", summary.error
    assert summary.outcomes == {"completed": 17, "failed": 3}


CSV_INPUT = (
    b"id,name,score\n"
    b"1,alpha,10\n"
    b"2,beta\n"  # too few fields
    b"3,gamma,not-a-number\n"  # fails the int coercion
    b"4,d\xe9lta,40\n"  # not UTF-8
    b"5,epsilon,50\n"
    b'6,"zeta,60\n'  # unterminated quote: swallows the rest of the file
)
JSONL_INPUT = (
    b'{"id": 1, "score": 10}\n'
    b"{not json}\n"
    b"[1, 2, 3]\n"
    b'{"id": 4, "score": NaN}\n'
    b'{"id": 5, "id": 6}\n'
    b'{"id": 7, "name": "\xff\xfe"}\n'
    b'{"id": 8, "score": 80}\n'
)


@pytest.mark.parametrize(
    ("plugin", "data", "good_ids", "bad"),
    [
        ("csv", CSV_INPUT, ["1", "5"], 4),
        ("jsonl", JSONL_INPUT, [1, 8], 5),
    ],
)
def test_class18_malformed_records_are_quarantined_and_good_ones_proceed(world, plugin, data, good_ids, bad):
    w = world("w")
    source = w.root / f"in.{plugin}"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    options = {"path": str(source)}
    if plugin == "csv":
        options["types"] = {"score": "int"}
    settings = w.settings(
        source={"plugin": plugin, "options": options, "on_quarantine": "quarantine"},
        sinks=["out", "quarantine"],
        default_sink="out",
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    assert [row["id"] for row in w.lines("out")] == good_ids
    quarantined = w.lines("quarantine")
    assert len(quarantined) == bad
    assert all(row["_reason"] and row["_raw"] is not None for row in quarantined)
    recorded = w.query("SELECT count(*) AS n FROM rows WHERE run_id = :run AND quarantined", run=summary.run_id)
    assert recorded == [{"n": bad}], "every bad record is recorded in the Landscape"
    assert summary.outcomes == {"completed": len(good_ids), "quarantined": bad}
    w.assert_clean(summary.run_id)


def test_class18_quarantined_records_survive_a_resume(world):
    crashed, clean = world("crashed"), world("clean")

    def settings(w):
        source = w.root / "in.jsonl"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(b"".join(b"{broken %d\n" % i if i % 5 == 0 else b'{"id": %d}\n' % i for i in range(60)))
        return w.settings(
            source={"plugin": "jsonl", "options": {"path": str(source)}, "on_quarantine": "quarantine"},
            sinks=["out", "quarantine"],
            default_sink="out",
        )

    failed = crashed.run(settings(crashed), faults={"quarantine": {"at": "flush", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    resumed = crashed.resume(failed.run_id, settings(crashed))
    assert resumed.status == "completed", resumed.error
    assert resumed.outcomes == {"completed": 48, "quarantined": 12}

    clean.run(settings(clean))
    assert crashed.bytes("quarantine") == clean.bytes("quarantine")
    assert crashed.bytes("out") == clean.bytes("out")
    crashed.assert_clean(failed.run_id)


def test_class18_a_missing_source_file_fails_the_run_cleanly(world):
    w = world("w")
    missing = w.root / "nowhere.csv"
    settings = w.settings(source={"plugin": "csv", "options": {"path": str(missing)}})
    try:
        summary = w.run(settings)
    except ElspethError as exc:
        assert str(missing) in str(exc)
    else:
        assert summary.status == "failed"
        assert str(missing) in (summary.error or "")
    runs = w.query("SELECT run_id, status FROM runs")
    assert [r["status"] for r in runs] == ["failed"]
    w.assert_clean(runs[0]["run_id"])
