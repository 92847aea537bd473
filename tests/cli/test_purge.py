"""`elspeth purge`: chooses runs by age or name, says what it did or would do, and leaves runs that
`runs` and `explain` show as purged, attributable by their hashes."""

from __future__ import annotations

import json

import pytest

from elspeth.landscape.retention import parse_age


def test_purge_by_name_then_runs_and_explain_say_so(elspeth, pipeline):
    assert elspeth("run", str(pipeline), "--run-id", "r1", "-q").exit_code == 0
    assert elspeth("run", str(pipeline), "--run-id", "r2", "-q").exit_code == 0
    row_before = json.loads(elspeth("explain", "r1", "--row", "1", "--json").stdout)

    fresh = elspeth("purge", "--older-than", "90d")
    assert fresh.exit_code == 0 and fresh.stdout.strip() == "Nothing to purge."
    dry = elspeth("purge", "--run", "r1", "--dry-run")
    assert dry.exit_code == 0 and "would purge r1 (completed" in dry.stdout and "nothing changed" in dry.stdout
    assert json.loads(elspeth("explain", "r1", "--row", "1", "--json").stdout) == row_before

    done = elspeth("purge", "--run", "r1")
    assert done.exit_code == 0, done.output
    assert "purged r1: 4 rows, 0 tokens, 0 batch members, 0 calls, 0 payload files" in done.stdout

    listed = elspeth("runs").stdout
    assert "completed, purged" in next(line for line in listed.splitlines() if line.startswith("r1"))
    assert "purged" not in next(line for line in listed.splitlines() if line.startswith("r2"))
    overview = elspeth("explain", "r1").stdout
    assert "Run r1: completed, purged" in overview and "every hash kept; attributable only" in overview
    text = elspeth("explain", "r1", "--row", "1").stdout
    assert "payload    (purged: attributable by its sha256 only)" in text
    assert f"sha256     {row_before['payload_hash']}" in text
    row_after = json.loads(elspeth("explain", "r1", "--row", "1", "--json").stdout)
    assert row_after["payload"] is None and row_after["purged"] is True
    bodies = ("payload", "purged", "values")  # the values at each step are read from the bodies
    assert {k: v for k, v in row_after.items() if k not in bodies} == {
        k: v for k, v in row_before.items() if k not in bodies
    }
    assert all(step["before"] is None and step["after"] is None for step in row_after["values"])
    assert elspeth("purge", "--run", "r1").stdout.strip() == "Nothing to purge.", "a purge is not repeated"


def test_purge_refuses_bad_input(elspeth, pipeline, user_error):
    assert elspeth("run", str(pipeline), "--run-id", "r1", "-q").exit_code == 0
    user_error(elspeth("purge"), "--older-than AGE", "--run RUN_ID")
    for bad in ("90", "ninety days", "0d", "-5d", "1.5d", "90m"):
        user_error(elspeth("purge", "--older-than", bad), f"--older-than {bad!r}", "90d or 36h")
    user_error(elspeth("purge", "--run", "nope"), "no run 'nope'", "elspeth runs")
    user_error(elspeth("purge", "--older-than", "1d", "--landscape", "sqlite:///elsewhere.db"), "no landscape at")


@pytest.mark.parametrize(
    ("age", "seconds"), [("90d", 90 * 86400), ("36h", 36 * 3600), ("2 days", 2 * 86400), ("1 hour", 3600)]
)
def test_ages_in_days_or_hours(age, seconds):
    assert parse_age(age) == seconds
