"""External calls recorded through ctx: under the real, open node_state of the operation that made them,
with gap-free indexes and full bodies (bug class 4)."""

from __future__ import annotations

import json


def test_class4_calls_hang_off_the_open_state_of_the_operation_that_made_them(world):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 30}},
        transforms=[{"plugin": "test_caller", "options": {"calls": 3, "error_every": 5, "big_every": 10}}],
        aggregations=[
            {"plugin": "test_batcher", "name": "batcher", "options": {"pending_polls": 1}, "trigger": {"count": 10}}
        ],
    )
    summary = w.run(settings)
    assert summary.status == "completed", summary.error

    calls = w.query(
        "SELECT c.state_id, c.call_index, c.call_type, c.status, c.request_json, c.request_ref, c.error_json, "
        "s.node_id, s.operation, s.token_id, s.status AS state_status FROM calls c "
        "JOIN node_states s ON s.run_id = c.run_id AND s.state_id = c.state_id "
        "WHERE c.run_id = :run ORDER BY c.state_id, c.call_index",
        run=summary.run_id,
    )
    total = w.query("SELECT count(*) AS n FROM calls WHERE run_id = :run", run=summary.run_id)[0]["n"]
    assert len(calls) == total == 30 * 3 + 3 * 2, "every call joins its node_state"

    by_state: dict[int, list[dict]] = {}
    for call in calls:
        by_state.setdefault(call["state_id"], []).append(call)
    for state_calls in by_state.values():
        assert [c["call_index"] for c in state_calls] == list(range(len(state_calls)))
        first = state_calls[0]
        if first["node_id"] == "transform:test_caller":
            assert first["operation"] == "process" and first["token_id"] is not None
            assert len(state_calls) == 3
            request = json.loads(first["request_json"]) if first["request_json"] else None
            assert (
                request is None
                or request["id"]
                == w.query(
                    "SELECT row_id FROM tokens WHERE run_id = :run AND token_id = :token",
                    run=summary.run_id,
                    token=first["token_id"],
                )[0]["row_id"]
            ), "a call's request belongs to the token whose state it hangs off"
        else:
            assert first["node_id"] == "aggregate:batcher" and first["operation"] in ("flush", "poll")
            assert len(state_calls) == 1

    errors = [c for c in calls if c["status"] == "error"]
    assert len(errors) == 6 and all("ConnectionResetError" in c["error_json"] for c in errors)
    big = [c for c in calls if c["request_ref"] is not None]
    assert len(big) == 3 * 3, "large requests go to the payload store, by reference"
    assert w.query("PRAGMA foreign_key_check") == []
    w.assert_clean(summary.run_id)


def test_class4_a_call_under_a_synthetic_parent_is_refused_not_written(world):
    w = world("w")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 10}},
        transforms=[{"plugin": "test_caller", "options": {"synthetic_parent": True}}],
    )
    summary = w.run(settings)
    assert summary.status == "failed"
    assert "not open" in (summary.error or "")
    assert w.query("SELECT count(*) AS n FROM calls WHERE run_id = :run", run=summary.run_id) == [{"n": 0}]
    assert w.query("PRAGMA foreign_key_check") == []
    w.assert_clean(summary.run_id)


def test_record_call_hook_fires_after_the_call_is_durable(tmp_path, registry):
    """Observers (cassettes, telemetry, the kit) hear of a call only once another connection can read it."""
    from sqlalchemy import create_engine, text

    from elspeth.engine.orchestrator import run_pipeline
    from elspeth.hookspecs import hookimpl
    from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
    from elspeth.settings import Settings, structure

    from . import sample_plugins

    url = f"sqlite:///{tmp_path / 'landscape.db'}"
    heard: list[tuple[int, int, bool]] = []

    class Observer:
        @hookimpl
        def record_call(self, call):
            engine = create_engine(url)
            with engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT count(*) FROM calls WHERE run_id = :r AND state_id = :s AND call_index = :i"),
                    {"r": call.run_id, "s": call.state_id, "i": call.call_index},
                ).scalar()
            engine.dispose()
            heard.append((call.state_id, call.call_index, stored == 1))

    registry = PluginRegistry(make_plugin_manager([sample_plugins, Observer()]))
    settings = {
        "source": {"plugin": "test_numbers", "options": {"count": 4}},
        "transforms": [{"plugin": "test_caller", "options": {"calls": 2}}],
        "sinks": {"out": {"plugin": "jsonl", "options": {"path": str(tmp_path / "out.jsonl")}}},
        "landscape": {"payload_dir": str(tmp_path / "payloads")},
    }
    summary = run_pipeline(structure(settings, Settings, where="$"), registry=registry, landscape_url=url)
    assert summary.status == "completed", summary.error
    assert len(heard) == 8
    assert all(durable for _, _, durable in heard), "the hook fired before the call was committed"
