"""The runs list and a run's overview, from real runs: a purged run, a failed one, none at all; and what
`purge` says it keeps and would purge."""

from __future__ import annotations

from elspeth.console import when
from elspeth.console.purge import purge_record, render_selection
from elspeth.console.runs import overview_json, render_overview, render_runs, runs_json, trace_hint
from elspeth.evidence.grade import Level, grader
from elspeth.landscape import lineage, retention

SETTINGS = """\
    source: {plugin: csv, options: {path: "{root}/input.csv"}}
    default_sink: out
    sinks:
      out: {plugin: csv, options: {path: "{root}/out.csv", if_exists: overwrite}}
    """
INPUT = "id,name\n1,Ada\n2,Grace\n"
HINT = " --landscape sqlite:///elsewhere.db"


def _overview(landscape, run_id: str):
    with landscape.connect() as conn:
        return lineage.run_overview(conn, run_id), grader(conn, landscape.store)(run_id)


def _field(text: str, name: str) -> str:
    """The value of the overview's `name` line."""
    [line] = [line for line in text.splitlines() if line.startswith(f"  {name} ")]
    return line.removeprefix(f"  {name} ").strip()


def test_a_purged_runs_overview_says_who_purged_it_and_what_went(landscape):
    landscape.run("p1", SETTINGS, input_csv=INPUT)
    done = landscape.purge("p1")
    overview, grade = _overview(landscape, "p1")
    text = render_overview(overview, "", grade)
    assert text.splitlines()[0] == "Run p1: completed, purged"
    assert _field(text, "purged") == purge_record(done)
    assert f"{when(done.purged_at)} by {done.purged_by}" in purge_record(done)
    assert f"({done.rows_cleared:,} rows, {done.calls_cleared:,} calls" in purge_record(done)
    # The grade's reasons continue under it, aligned with its value.
    assert grade.level is Level.ATTRIBUTABLE and grade.reasons
    lines = text.splitlines()
    at = lines.index(f"  grade      {grade.level}")
    assert lines[at + 1 : at + 1 + len(grade.reasons)] == [" " * 13 + reason for reason in grade.reasons]
    assert overview_json(overview, grade)["grade"] == {"level": "attributable", "reasons": list(grade.reasons)}


def test_a_failed_runs_overview_shows_its_error_and_ends_with_the_hint_naming_the_landscape(landscape):
    (landscape.root / "blocked").write_text("")
    failing = SETTINGS.replace("{root}/out.csv", "{root}/blocked/out.csv")
    summary = landscape.run("f1", failing, input_csv=INPUT)
    overview, grade = _overview(landscape, "f1")
    text = render_overview(overview, HINT, grade)
    assert text.splitlines()[0] == "Run f1: failed"
    assert _field(text, "error") == summary.error
    assert "  purged " not in text
    assert text.splitlines()[-1] == trace_hint("f1", HINT) == f"Trace a row: elspeth explain f1 --row N{HINT}"


def test_the_runs_list_marks_purged_runs_and_says_how_to_start_when_there_are_none(landscape):
    landscape.run("r1", SETTINGS, input_csv=INPUT)
    landscape.run("r2", SETTINGS, input_csv=INPUT)
    landscape.purge("r1")
    with landscape.connect() as conn:
        found = lineage.list_runs(conn)
    grades = {"r1": "attributable", "r2": "reproducible"}
    rows = {line.split()[0]: line for line in render_runs(found, grades).splitlines()[1:]}
    assert "completed, purged" in rows["r1"] and rows["r1"].endswith("attributable")
    assert "purged" not in rows["r2"] and rows["r2"].endswith("reproducible")
    assert {r["run_id"]: r["grade"] for r in runs_json(found, grades)} == grades
    assert render_runs([], {}) == "No runs yet; start one with: elspeth run SETTINGS.yaml"


def test_purge_names_the_runs_it_keeps_and_why_before_those_it_would_purge(landscape):
    landscape.run("ok", SETTINGS, input_csv=INPUT)
    (landscape.root / "blocked").write_text("")
    landscape.run("bad", SETTINGS.replace("{root}/out.csv", "{root}/blocked/out.csv"), input_csv=INPUT)
    with landscape.connect() as conn:
        chosen = retention.select_runs(conn, cutoff=None, run_ids=["bad", "ok"])
    [(kept, reason)] = chosen.kept
    [candidate] = chosen.purge
    assert render_selection(chosen, dry_run=True).splitlines() == [
        f"kept bad: {reason}",
        f"would purge ok (completed, ended {when(candidate.ended_at)})",
        "Dry run: 1 run would be purged; nothing changed.",
    ]
    assert render_selection(chosen, dry_run=False) == f"kept bad: {reason}"
    assert kept.run_id == "bad" and "--include-unfinished" in reason
