"""An endpoint that refuses every connection (a real closed port on 127.0.0.1) is no row's failure: the run
stops at once, failed, with one message naming the node and the endpoint, every row unfinished and no
output file left behind; once the endpoint is up, `elspeth resume` finishes it as an uninterrupted run."""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

from elspeth_testkit import fault_proxy
from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator, BatchScript
from elspeth_testkit.fault_proxy import FaultProxy

from .conftest import API_KEY, CLASSIFY, llm_options, rows

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting is refused (until a test starts a server there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llm(endpoint):
    return {"plugin": "azure_llm", "options": llm_options(endpoint, prompt=CLASSIFY)}


def batch(endpoint):
    options = llm_options(endpoint, prompt=CLASSIFY, poll_interval_seconds=0.05)
    return {"plugin": "azure_batch_llm", "name": "batch", "options": options, "trigger": {"count": 3}}


def outcomes(bench, run_id):
    return bench.query("SELECT token_id, outcome FROM token_outcomes WHERE run_id = :r", r=run_id)


def test_a_transform_that_cannot_connect_stops_the_run_with_every_row_unfinished_and_resume_finishes_it(
    bench, tmp_path
):
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    settings = bench.settings(rows(6), transforms=[llm(endpoint)])
    started = time.monotonic()
    summary = bench.run(settings, run_id="run-down")
    assert time.monotonic() - started < 10, "it stops at the first row that gives up, not after every row failed"
    assert summary.status == "failed"
    assert summary.error.startswith(f"transform:azure_llm: cannot reach {endpoint}: no connection")
    assert "(3 attempts)" in summary.error and "`elspeth resume run-down`" in summary.error
    assert outcomes(bench, "run-down") == [], "no row failed for it: every one is unfinished"
    calls = bench.calls("run-down")
    assert calls and all(c["status"] == "error" for c in calls), "every attempt is a recorded ERROR call"
    per_state = collections.Counter(c["state_id"] for c in calls)
    assert set(per_state.values()) == {3}, "each row in flight made its 3 attempts under its own state"
    assert not (bench.root / "main.jsonl").exists() and not (bench.root / "errors.jsonl").exists()
    bench.check("run-down", wire=False)

    with AzureOpenAIEmulator(port=port, api_keys=[API_KEY]):
        resumed = bench.resume("run-down", settings)
    assert resumed.status == "completed", resumed.error
    assert resumed.outcomes == {"completed": 6}
    bench.check("run-down", wire=False)

    clean = attrs.evolve(bench, root=tmp_path / "clean")
    reference = clean.run(clean.settings(rows(6), transforms=[llm(bench.endpoint)]))
    assert reference.status == "completed", reference.error
    assert bench.lines("main") == clean.lines("main"), "the resumed run's output equals an uninterrupted run's"


def test_a_batch_that_cannot_be_submitted_stops_the_run_and_resume_submits_it_once(bench, tmp_path):
    port = closed_port()
    settings = bench.settings(rows(4), aggregations=[batch(f"http://127.0.0.1:{port}")])
    summary = bench.run(settings, run_id="batch-down")
    assert summary.status == "failed"
    assert summary.error.startswith("aggregate:batch: cannot reach http://127.0.0.1:")
    assert outcomes(bench, "batch-down") == []
    bench.check("batch-down", wire=False)

    with AzureOpenAIEmulator(port=port, api_keys=[API_KEY]) as up:
        resumed = bench.resume("batch-down", settings)
        created = len(up.requests_to("POST", r"^/openai/batches$"))
    assert resumed.status == "completed", resumed.error
    assert created == 2, "one batch of 3 rows, one of the last row: each submitted once"
    bench.check("batch-down", wire=False)

    clean = attrs.evolve(bench, root=tmp_path / "clean")
    reference = clean.run(clean.settings(rows(4), aggregations=[batch(bench.endpoint)]))
    assert reference.status == "completed", reference.error
    assert bench.lines("main") == clean.lines("main")


def test_a_pending_batch_whose_service_went_away_stays_pending_for_the_next_resume(bench):
    bench.emulator.script_batches(BatchScript(polls=3))
    settings = bench.settings(rows(3), aggregations=[batch(bench.endpoint)])
    first_poll = {"kind": "aggregate", "name": "azure_batch_llm", "method": "process_batch", "n": 2, "when": "before"}
    bench.killed(settings, "run-pending", first_poll)
    port = bench.proxy.port
    bench.proxy.stop()  # the endpoint now refuses every connection

    down = bench.resume("run-pending", settings)
    assert down.status == "failed"
    assert down.error.startswith(f"aggregate:batch: cannot reach http://127.0.0.1:{port}: no connection")
    (pending,) = bench.query("SELECT status, checkpoint_json FROM batches WHERE run_id = 'run-pending'")
    assert pending["status"] == "executing" and pending["checkpoint_json"] is not None, "its job is still ours"
    bench.check("run-pending", wire=False)

    with FaultProxy(bench.emulator.url, port=port):
        up = bench.resume("run-pending", settings)
    assert up.status == "completed", up.error
    assert len(bench.emulator.requests_to("POST", r"^/openai/batches$")) == 1
    assert [r["llm_status"] for r in bench.lines("main")] == ["ok"] * 3
    bench.check("run-pending", wire=False)


def elspeth(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a child process: stdout and stderr are pipes, not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "elspeth", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )


def write_settings(directory: Path, endpoint: str, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "input.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(count)))
    settings = {
        "source": {"plugin": "jsonl", "options": {"path": "input.jsonl"}},
        "transforms": [
            {
                "plugin": "azure_llm",
                "options": llm_options(endpoint, prompt=CLASSIFY, timeout_seconds=5),
                "concurrency": 1,
            }
        ],
        "sinks": {
            "main": {"plugin": "jsonl", "options": {"path": "out.jsonl"}},
            "errors": {"plugin": "jsonl", "options": {"path": "errors.jsonl"}},
        },
        "default_sink": "main",
        "on_error": "errors",
        "landscape": {"url": f"sqlite:///{directory / 'landscape.db'}"},
    }
    path = directory / "settings.yaml"
    path.write_text(json.dumps(settings))  # JSON is YAML
    return path


def test_the_cli_fails_fast_with_one_message_then_resume_shows_progress_without_a_terminal(tmp_path):
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    work = tmp_path / "down"
    write_settings(work, endpoint, 12)  # one row at a time: the resume is slow enough to report progress
    failed = elspeth("run", "settings.yaml", "--run-id", "cli-down", cwd=work)
    assert failed.returncode == 1, failed.stderr
    assert f"run cli-down failed: transform:azure_llm: cannot reach {endpoint}: no connection" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (work / "out.jsonl").exists() and not (work / "errors.jsonl").exists()

    with (
        AzureOpenAIEmulator(api_keys=[API_KEY]) as emulator,
        FaultProxy(emulator.url, port=port) as slow,
    ):
        slow.script(fault_proxy.delay(0.5))  # 12 rows take over 6 s: progress lines on a pipe
        landscape = f"sqlite:///{work / 'landscape.db'}"
        resumed = elspeth("resume", "cli-down", "--landscape", landscape, cwd=work)
        assert resumed.returncode == 0, resumed.stderr
        progress = [line for line in resumed.stderr.splitlines() if line.startswith("cli-down  ")]
        assert progress and all(" rows/s  " in line for line in progress), resumed.stderr
        assert "\r" not in resumed.stderr

        clean = tmp_path / "clean"
        write_settings(clean, emulator.url, 12)
        reference = elspeth("run", "settings.yaml", "--quiet", cwd=clean)
        assert reference.returncode == 0, reference.stderr
    assert len((work / "out.jsonl").read_text().splitlines()) == 12
    assert (work / "out.jsonl").read_text() == (clean / "out.jsonl").read_text()
    assert (work / "errors.jsonl").read_text() == ""
