"""Rows in flight (issue 9): a transform that calls out runs `concurrency` rows at once, and the run is the
serial run's, row for row, in the Landscape and in the outputs; a kill or a Ctrl-C with many rows in flight
loses nothing and duplicates nothing once resumed."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from sqlalchemy import text

from elspeth.engine.interrupts import StopRequest
from elspeth.engine.orchestrator import run_pipeline
from elspeth.landscape.database import open_database
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.recorder import Recorder
from elspeth.settings import Settings, structure

from .conftest import CRASHING_RUN, World
from .crash_points import integrity_problems


def caller(concurrency: int, **options: Any) -> dict[str, Any]:
    return {
        "plugin": "test_caller",
        "options": {"calls": 2, "jitter_ms": 6, "fail_every": 7, **options},
        "concurrency": concurrency,
        "on_error": "errors",
    }


def numbers_through(world: World, rows: int, node: dict[str, Any], **top: Any) -> dict[str, Any]:
    """`rows` numbers through the one transform `node`, its rows into sink out and its errors into errors."""
    return world.settings(
        source={"plugin": "test_numbers", "options": {"count": rows}},
        transforms=[node],
        sinks=["out", "errors"],
        default_sink="out",
        **top,
    )


def pipeline(world: World, concurrency: int, rows: int = 60) -> dict[str, Any]:
    """Serial steps before the rows in flight (one failing rows into the error sink, one expanding and
    filtering), an expansion after them, and an error sink fed from both sides of them."""
    return world.settings(
        source={"plugin": "test_numbers", "options": {"count": rows}},
        transforms=[
            {"plugin": "test_flaky", "options": {"fail_every": 5}, "on_error": "errors"},
            {"plugin": "test_fanout", "name": "before", "options": {"copies_mod": 4}},
            caller(concurrency),
            {"plugin": "test_fanout", "name": "after", "options": {"copies_mod": 3}},
        ],
        sinks=["out", "errors"],
        default_sink="out",
    )


def landscape_story(world: World, run_id: str) -> dict[str, Any]:
    """The run as the Landscape tells it, with ids and times taken out: each token named by its source row and
    its place among its siblings, with its states, their calls and its outcome."""
    tokens = world.query("SELECT * FROM tokens WHERE run_id = :r ORDER BY token_id", r=run_id)
    names: dict[int, tuple[int, ...]] = {}
    siblings: Counter[Any] = Counter()
    for t in tokens:
        if t["parent_token_id"] is None:
            names[t["token_id"]] = (t["row_id"],)
        else:
            parent = names[t["parent_token_id"]]
            names[t["token_id"]] = (*parent, siblings[parent])
            siblings[parent] += 1
    story: dict[tuple[int, ...], dict[str, Any]] = defaultdict(lambda: {"states": [], "outcomes": []})
    calls: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for c in world.query("SELECT * FROM calls WHERE run_id = :r", r=run_id):
        row = (c["call_index"], c["call_type"], c["status"], c["request_hash"], c["response_hash"], c["error_json"])
        calls[c["state_id"]].append(row)
    for s in world.query("SELECT * FROM node_states WHERE run_id = :r AND token_id IS NOT NULL", r=run_id):
        state = (s["node_id"], s["attempt"], s["status"], s["input_hash"], s["output_hash"], s["error_json"])
        story[names[s["token_id"]]]["states"].append((state, sorted(calls[s["state_id"]])))
    for o in world.query("SELECT * FROM token_outcomes WHERE run_id = :r", r=run_id):
        story[names[o["token_id"]]]["outcomes"].append(
            (o["outcome"], o["node_id"], o["sink_node_id"], o["reason_json"])
        )
    for entry in story.values():
        entry["states"].sort()
    return dict(story)


def test_a_concurrent_run_is_the_serial_run_row_for_row(tmp_path, registry):
    serial, concurrent = World(tmp_path / "serial", registry), World(tmp_path / "concurrent", registry)
    one = serial.run(pipeline(serial, 1), run_id="r")
    many = concurrent.run(pipeline(concurrent, 16), run_id="r")
    assert one.status == many.status == "completed", (one.error, many.error)
    assert one.outcomes == many.outcomes
    assert serial.bytes("out") == concurrent.bytes("out")
    assert serial.bytes("errors") == concurrent.bytes("errors")
    assert landscape_story(serial, "r") == landscape_story(concurrent, "r")
    overlapping = concurrent.query(
        "SELECT COUNT(*) AS n FROM node_states a JOIN node_states b ON a.run_id = b.run_id AND a.node_id = b.node_id "
        "AND a.state_id < b.state_id AND b.started_at < a.ended_at WHERE a.run_id = 'r' AND a.node_id = :n",
        n="transform:test_caller",
    )[0]["n"]
    assert overlapping > 0, "rows were in flight together"
    concurrent.assert_clean("r")


def test_calls_recorded_from_many_threads_under_one_state_are_numbered_durable_and_announced_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'landscape.db'}"
    engine = open_database(url)
    announced: list[int] = []
    recorder = Recorder(
        engine, FilePayloadStore(tmp_path / "payloads"), "r", on_call=lambda c: announced.append(c.call_index)
    )
    recorder.begin_run(settings_json="{}", settings_hash="h", settings_path=None, version="t", owner="t")
    recorder.add_node(
        node_id="n", kind="transform", plugin="p", distribution="d", plugin_version="1", position=0,
        config_json="{}", config_hash="h",
    )  # fmt: skip
    state = recorder.open_state("n", "process")
    recorder.commit()

    def record(k: int) -> None:
        for i in range(25):
            recorder.record_call(state, call_type="http", provider="svc", request={"k": k, "i": i}, response={})

    threads = [threading.Thread(target=record, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        indexes = sorted(conn.execute(text("SELECT call_index FROM calls WHERE state_id = :s"), {"s": state}).scalars())
    assert indexes == list(range(200)), "every call committed, each with its own index"
    assert sorted(announced) == list(range(200)), "each announced once, after its commit"
    recorder.close()
    engine.dispose()


def _kill_at_random(world: World, settings: dict[str, Any], run_id: str, seed: int) -> subprocess.Popen[str]:
    world.root.mkdir(parents=True, exist_ok=True)
    settings_file = world.root / "settings.json"
    settings_file.write_text(json.dumps(settings))
    child = subprocess.Popen(
        [sys.executable, str(CRASHING_RUN), str(settings_file), world.url, run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the run has rows in flight, then kill it at a random moment.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (world.root / "landscape.db").exists() and _open_states(world, run_id) >= 8:
            break
        time.sleep(0.02)
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return child


def _open_states(world: World, run_id: str) -> int:
    try:
        return world.query("SELECT COUNT(*) AS n FROM node_states WHERE run_id = :r AND status = 'open'", r=run_id)[0][
            "n"
        ]
    except Exception:  # the schema may not exist yet
        return 0


def _ids(world: World, sink: str) -> list[int]:
    path = world.out(sink)
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("seed", [1, 2])
def test_a_sigkill_with_64_rows_in_flight_then_resume_finishes_every_row_exactly_once(tmp_path, registry, seed):
    world = World(tmp_path / "w", registry)
    rows = 3000
    settings = numbers_through(
        world, rows, caller(64, jitter_ms=40), engine={"checkpoint_every_rows": 200, "write_batch_rows": 50}
    )
    child = _kill_at_random(world, settings, "k", seed)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _open_states(world, "k") >= 2, "the kill landed with rows in flight"

    resumed = world.resume("k", settings)
    assert resumed.status == "completed", resumed.error
    ids = _ids(world, "out") + _ids(world, "errors")
    assert sorted(ids) == list(range(rows)), "every row exactly once"
    assert _ids(world, "errors") == [i for i in range(rows) if i % 7 == 0]
    world.assert_clean("k")
    assert integrity_problems(world.url) == []


def test_ctrl_c_with_rows_in_flight_stops_dispatching_closes_every_state_and_resume_finishes(tmp_path, registry):
    world = World(tmp_path / "w", registry)
    rows = 2000
    settings = numbers_through(world, rows, caller(32, jitter_ms=40))
    stop = StopRequest()
    timer = threading.Timer(1.0, stop.request, args=("SIGINT",))
    timer.start()
    try:
        summary = run_pipeline(
            structure(dict(settings), Settings, where="$"),
            registry=registry,
            landscape_url=world.url,
            run_id="c",
            stop=stop,
        )
    finally:
        timer.cancel()
    assert summary.status == "interrupted", summary.error
    assert "elspeth resume c" in (summary.error or "")
    assert _open_states(world, "c") == 0, "no state left open"
    done = len(_ids(world, "out")) + len(_ids(world, "errors"))
    assert 0 < done < rows
    assert threading.active_count() == 1 or all(not t.name.startswith("elspeth") for t in threading.enumerate()), (
        "no worker left running"
    )

    resumed = world.resume("c", settings)
    assert resumed.status == "completed", resumed.error
    assert sorted(_ids(world, "out") + _ids(world, "errors")) == list(range(rows))
    world.assert_clean("c")


def test_a_plugin_crash_in_a_worker_fails_the_run_with_no_state_left_open(tmp_path, registry):
    world = World(tmp_path / "w", registry)
    settings = numbers_through(world, 200, caller(16, synthetic_parent=True))
    summary = world.run(settings, run_id="x")
    assert summary.status == "failed"
    assert "not open" in (summary.error or ""), summary.error
    assert _open_states(world, "x") == 0
