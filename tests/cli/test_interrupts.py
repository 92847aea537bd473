"""Ctrl-C, SIGTERM, two resumes at once and a full disk, against the real `elspeth` command in a process of
its own: each ends with one clear line, a run that is not left `running`, and a resume whose output equals an
uninterrupted run's."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elspeth_testkit.sweep import assert_clean

ROWS = 30_000


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A CSV -> passthrough -> CSV pipeline large enough to be stopped part-way."""
    with (tmp_path / "in.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "amount"])
        writer.writerows((i, f"name {i}", i * 1.5) for i in range(ROWS))
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "source: {plugin: csv, options: {path: in.csv}}\n"
        "transforms: [{plugin: passthrough}]\n"
        "sinks: {out: {plugin: csv, options: {path: out.csv}}}\n"
        "default_sink: out\n"
        "engine: {checkpoint_every_rows: 500}\n"
    )
    return settings


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'landscape.db'}"


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "elspeth", *args, "--landscape", url(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_output(tmp_path: Path, process: subprocess.Popen[str]) -> None:
    """Until the sink has written something: the run is under way."""
    out = tmp_path / "out.csv"
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size > 10_000):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote nothing in 60 s"
        time.sleep(0.02)


def run_status(tmp_path: Path, run_id: str) -> str:
    with sqlite3.connect(tmp_path / "landscape.db") as db:
        return str(db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])


def assert_exact_output(tmp_path: Path) -> None:
    with (tmp_path / "out.csv").open(newline="") as f:
        ids = [int(r["id"]) for r in csv.DictReader(f)]
    assert ids == list(range(ROWS)), f"{len(ids)} rows, {len(set(ids))} distinct; expected each of {ROWS} once"


def resume(tmp_path: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elspeth", "resume", run_id, "-q", "--landscape", url(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT, signal.SIGTERM]])
def test_a_stop_signal_ends_the_run_interrupted_with_one_line(tmp_path, big, signals):
    process = start(tmp_path, "run", str(big), "--run-id", "r1", "-q")
    wait_for_output(tmp_path, process)
    for sig in signals:
        process.send_signal(sig)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "elspeth resume r1" in stderr
    assert run_status(tmp_path, "r1") == "interrupted"
    with sqlite3.connect(tmp_path / "landscape.db") as db:
        assert db.execute("SELECT count(*) FROM node_states WHERE status = 'open'").fetchone() == (0,)
        # Everything read was made durable at the safe point: each row recorded has its outcome.
        rows, finished = db.execute(
            "SELECT (SELECT count(*) FROM rows), (SELECT count(*) FROM token_outcomes)"
        ).fetchone()
        assert 0 < rows == finished < ROWS

    done = resume(tmp_path, "r1")
    assert done.returncode == 0, done.stderr
    assert_exact_output(tmp_path)
    assert_clean(url(tmp_path), "r1", tmp_path / "payloads")


def test_two_resumes_at_once_one_finishes_the_other_is_refused(tmp_path, big):
    process = start(tmp_path, "run", str(big), "--run-id", "r2", "-q")
    wait_for_output(tmp_path, process)
    process.kill()
    process.wait()
    assert run_status(tmp_path, "r2") == "running"

    first, second = (start(tmp_path, "resume", "r2", "-q") for _ in range(2))
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "Traceback" not in refused
    assert "claimed by another" in refused or "still running" in refused or "already completed" in refused
    assert_exact_output(tmp_path)
    assert_clean(url(tmp_path), "r2", tmp_path / "payloads")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs for the Landscape, grown once the test says so; skips where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_landscape_disk_fails_the_run_with_one_line_and_it_resumes_once_there_is_room(tmp_path, big, small_disk):
    landscape = f"sqlite:///{small_disk / 'landscape.db'}"
    command = [sys.executable, "-m", "elspeth"]
    failed = subprocess.run(
        [*command, "run", str(big), "--run-id", "r3", "-q", "--landscape", landscape],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert "disk is full" in failed.stderr and "elspeth resume r3" in failed.stderr
    assert "INSERT INTO" not in failed.stderr, "the statement and its row data are not an error message"

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    done = subprocess.run(
        [*command, "resume", "r3", "-q", "--landscape", landscape], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert_exact_output(tmp_path)
    assert_clean(landscape, "r3", small_disk / "payloads")
