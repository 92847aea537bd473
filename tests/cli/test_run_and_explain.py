"""`elspeth run`, `resume`, `explain` and `runs` end to end, with the real engine and a SQLite Landscape."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def landscape(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit' / 'landscape.db'}"


def test_run_prints_summary_and_hint(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    result = elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Run r1 completed in ")
    assert "rows read  4" in out
    assert "completed 2, quarantined 1, routed 1" in out
    assert "out/europe.csv" in out and "1 row " in out and "sha256 " in out
    assert f"elspeth explain r1 --row N --landscape {url}" in out
    # stderr is not a terminal here: no live status line.
    assert "\r" not in result.stderr
    assert (tmp_path / "out" / "europe.csv").read_text().splitlines()[0] == "id,name,region,amount"


def test_settings_landscape_url_is_the_default(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    pipeline.write_text(pipeline.read_text() + f"landscape: {{url: '{url}'}}\n")
    assert elspeth("run", str(pipeline), "--run-id", "r2", "-q").exit_code == 0
    listed = json.loads(elspeth("runs", "--landscape", url, "--json").stdout)
    assert [(r["run_id"], r["status"], r["rows"]) for r in listed] == [("r2", "completed", 4)]


def test_runs_table(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r3")
    result = elspeth("runs", "--landscape", url)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["RUN", "STATUS", "STARTED", "ENDED", "ATTEMPTS", "ROWS", "GRADE"]
    assert row.split()[:2] == ["r3", "completed"] and row.split()[-3:] == ["1", "4", "reproducible"]


def test_explain_run(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r4")
    result = elspeth("explain", "r4", "--landscape", url)
    assert result.exit_code == 0, result.output
    for fragment in ["Run r4: completed", "4 read, 1 quarantined", "route", "sink:europe", "out/europe.csv"]:
        assert fragment in result.stdout
    overview = json.loads(elspeth("explain", "r4", "--landscape", url, "--json").stdout)
    assert overview["run"]["attempt"] == 1
    assert overview["outcomes"] == {"completed": 2, "quarantined": 1, "routed": 1}
    assert {n["plugin"] for n in overview["nodes"]} == {"csv", "route", "jsonl"}
    assert {a["uri"].rsplit("/", 1)[-1] for a in overview["artifacts"]} == {"rest.csv", "europe.csv", "rejects.jsonl"}


def test_explain_row_lineage(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r5")
    lineage = json.loads(elspeth("explain", "r5", "--row", "0", "--landscape", url, "--json").stdout)
    assert lineage["payload"] == {"id": "1", "name": "Ada", "region": "EU", "amount": 10}
    assert lineage["quarantined"] is False
    route = next(s for s in lineage["states"] if s["node_id"].endswith("by_region"))
    assert route["status"] == "completed" and route["input_hash"] == lineage["payload_hash"]
    [outcome] = lineage["outcomes"]
    assert outcome["outcome"] == "routed"
    assert outcome["artifact"]["uri"].endswith("out/europe.csv")

    text = elspeth("explain", "r5", "--row", "2", "--landscape", url)
    assert text.exit_code == 0, text.output
    assert "quarantined: line 4: column 'amount'" in text.stdout
    assert "out/rejects.jsonl" in text.stdout


def test_explain_unknown_run_and_row(elspeth, pipeline, tmp_path, user_error):
    url = landscape(tmp_path)
    elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r6")
    user_error(elspeth("explain", "nope", "--landscape", url), "no run 'nope'", "elspeth runs")
    user_error(elspeth("explain", "r6", "--row", "9", "--landscape", url), "no row 9", "0 to 3")


def test_a_run_id_in_use_is_refused_before_any_sink_writes(elspeth, pipeline, tmp_path, user_error):
    url = landscape(tmp_path)
    assert elspeth("run", str(pipeline), "--landscape", url, "--run-id", "taken", "-q").exit_code == 0
    written = (tmp_path / "out" / "europe.csv").stat().st_mtime_ns
    again = elspeth("run", str(pipeline), "--landscape", url, "--run-id", "taken")
    user_error(again, "run 'taken' is already in", "another --run-id", "elspeth resume taken")
    assert (tmp_path / "out" / "europe.csv").stat().st_mtime_ns == written
    listed = json.loads(elspeth("runs", "--landscape", url, "--json").stdout)
    assert [(r["run_id"], r["status"], r["rows"]) for r in listed] == [("taken", "completed", 4)]


def test_missing_landscape_is_not_created(elspeth, tmp_path, user_error):
    url = landscape(tmp_path)
    user_error(elspeth("runs", "--landscape", url), "no landscape at", "elspeth run")
    assert not (tmp_path / "audit").exists()


def test_failed_run_exits_1_and_resumes(elspeth, pipeline, tmp_path):
    url = landscape(tmp_path)
    blocker = tmp_path / "out" / "rest.csv"
    blocker.mkdir(parents=True)  # the sink cannot open a directory as its file
    failed = elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r7")
    assert failed.exit_code == 1, failed.output
    assert "Run r7 failed" in failed.stdout
    assert failed.stderr.startswith("Error: run r7 failed: ")
    assert f"elspeth resume r7 --landscape {url}" in failed.stderr

    blocker.rmdir()
    # No --settings: the settings path comes from the run's record in the Landscape.
    resumed = elspeth("resume", "r7", "--landscape", url)
    assert resumed.exit_code == 0, resumed.output
    assert "Run r7 completed" in resumed.stdout
    assert (tmp_path / "out" / "rest.csv").read_text().splitlines() == [
        "id,name,region,amount",
        "2,Grace,NA,20",
        "4,Barbara,APAC,40",
    ]
    overview = json.loads(elspeth("explain", "r7", "--landscape", url, "--json").stdout)
    assert overview["run"]["attempt"] == 2
    assert overview["outcomes"] == {"completed": 2, "quarantined": 1, "routed": 1}


def test_resume_unknown_run(elspeth, pipeline, tmp_path, user_error):
    url = landscape(tmp_path)
    elspeth("run", str(pipeline), "--landscape", url, "--run-id", "r8")
    user_error(elspeth("resume", "nope", "--landscape", url), "no run 'nope'")


def test_demo(elspeth, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the demo's paths are relative to the repository root
    monkeypatch.setenv("DEMO_OUT", str(tmp_path / "demo"))
    result = elspeth("run", "examples/demo/settings.yaml", "--landscape", landscape(tmp_path), "--run-id", "demo")
    assert result.exit_code == 0, result.output
    assert "completed 22, quarantined 2, routed 6" in result.stdout
    lines = {name: (tmp_path / "demo" / name).read_text().splitlines() for name in ("orders.csv", "urgent.csv")}
    assert len(lines["orders.csv"]) == 1 + 22 and len(lines["urgent.csv"]) == 1 + 6
    rejects = [json.loads(line) for line in (tmp_path / "demo" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 2
