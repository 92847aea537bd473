"""`elspeth report` on the command line: what it writes, which rows it shows in full, its errors, purged
payloads, and a big run's report staying bounded in size and time."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from elspeth.cli import main
from elspeth.errors import ConfigError
from elspeth.report.row_choice import FIRST_ROWS, INDEX_ROWS, PER_GROUP, parse_rows


def _data(page: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _pipeline(tmp_path: Path, rows: int, constant: str = "gold") -> tuple[str, Path]:
    """csv -> field_map (adds a constant) -> route (EU rows aside) -> csv sinks, into a SQLite Landscape."""
    lines = ["id,name,region"] + [f"{i},name-{i},{'EU' if i % 7 == 0 else 'NA'}" for i in range(rows)]
    (tmp_path / "input.csv").write_text("\n".join(lines) + "\n")
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"""\
source: {{plugin: csv, options: {{path: {tmp_path / "input.csv"}}}}}
transforms:
  - {{name: tidy, plugin: field_map, options: {{constants: {{tier: "{constant}"}}}}}}
  - {{name: by_region, plugin: route, options: {{field: region, routes: {{EU: europe}}}}}}
default_sink: rest
sinks:
  rest: {{plugin: csv, options: {{path: {tmp_path / "out" / "rest.csv"}}}}}
  europe: {{plugin: csv, options: {{path: {tmp_path / "out" / "europe.csv"}}}}}
"""
    )
    url = f"sqlite:///{tmp_path / 'audit' / 'landscape.db'}"
    result = _cli("run", str(settings), "--landscape", url, "--run-id", "r", "-q")
    assert result.exit_code == 0, result.output
    return url, tmp_path / "audit" / "payloads"


def test_rows_chosen_with_rows(tmp_path):
    url, _ = _pipeline(tmp_path, 30)
    page = tmp_path / "chosen.html"
    result = _cli("report", "r", "--landscape", url, "-o", str(page), "--rows", "3-5,20,99")
    assert result.exit_code == 0, result.output
    data = _data(page)
    assert sorted(int(k) for k in data["details"]) == [3, 4, 5, 20]  # row 99 does not exist: left out
    assert data["rows"]["total"] == 30 and data["rows"]["why"] == "the 4 rows asked for with --rows"
    assert [entry[0] for entry in data["index"]] == list(range(30))
    step = next(s for s in data["details"]["20"]["states"] if s["node_id"] == "transform:tidy")
    assert data["details"]["20"]["values"][str(step["state_id"])]["changes"] == [
        {"field": "tier", "change": "added", "before": None, "after": "gold"}
    ]


def test_default_output_file_is_named_for_the_run(tmp_path, monkeypatch):
    url, _ = _pipeline(tmp_path, 3)
    monkeypatch.chdir(tmp_path)
    result = _cli("report", "r", "--landscape", url)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report-r.html").is_file() and "3 of 3 rows in full" in result.stdout


def test_errors_are_one_line_and_exit_2(tmp_path):
    url, _ = _pipeline(tmp_path, 3)
    _user_error(_cli("report", "nope", "--landscape", url, "-o", str(tmp_path / "x.html")), "no run 'nope'")
    missing_dir = tmp_path / "no" / "such" / "dir" / "x.html"
    _user_error(_cli("report", "r", "--landscape", url, "-o", str(missing_dir)), "cannot write the report", "-o")
    _user_error(_cli("report", "r", "--landscape", url, "--rows", "5-2"), "--rows", "5-2")
    _user_error(_cli("report", "r", "--landscape", url, "--rows", "a"), "--rows", "0-99,512")
    _user_error(_cli("report", "r", "--landscape", f"sqlite:///{tmp_path / 'none.db'}"), "no landscape at")


def test_parse_rows():
    assert parse_rows("0-2, 5,5") == [0, 1, 2, 5]
    with pytest.raises(ConfigError, match="more than"):
        parse_rows("0-999999999")


def test_purged_payloads_are_shown_as_purged(tmp_path):
    url, payloads = _pipeline(tmp_path, 2, constant="z" * 40_000)
    assert any(payloads.rglob("*")), "the large output should be in the payload store"
    shutil.rmtree(payloads)
    page = tmp_path / "purged.html"
    result = _cli("report", "r", "--landscape", url, "-o", str(page))
    assert result.exit_code == 0, result.output
    data = _data(page)
    tidy = next(s for s in data["details"]["0"]["states"] if s["node_id"] == "transform:tidy")
    assert tidy["output_status"] == "purged" and tidy["output"] is None and tidy["output_hash"]
    assert data["details"]["0"]["values"][str(tidy["state_id"])]["note"] == "output purged"


def test_a_big_runs_report_stays_bounded(tmp_path):
    rows = 20_000
    url, _ = _pipeline(tmp_path, rows)
    page = tmp_path / "big.html"
    started = time.monotonic()
    result = _cli("report", "r", "--landscape", url, "-o", str(page))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    data = _data(page)
    groups = 2  # completed at rest, routed to europe
    assert data["rows"]["total"] == rows
    assert len(data["details"]) <= FIRST_ROWS + PER_GROUP * (groups + 2)
    assert len(data["index"]) <= INDEX_ROWS + len(data["details"])
    assert data["rows"]["why"].startswith(f"the first {FIRST_ROWS} rows, up to {PER_GROUP} of each outcome")
    # Rows of each ending are among those shown in full: the routed ones are every 7th.
    assert any(int(k) % 7 == 0 and int(k) >= FIRST_ROWS for k in data["details"])
    # Loose bounds: what matters is that they do not grow with the run (a 1M-row run gives the same page).
    assert page.stat().st_size < 3_000_000, page.stat().st_size
    assert elapsed < 60, elapsed
