"""The live progress line and the plain tables."""

from __future__ import annotations

import io

from elspeth.console import LiveStatus, table
from elspeth.console.run_summary import render_summary
from elspeth.engine.summary import Progress, RunSummary


def test_live_status_rewrites_one_line_and_ends_it():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=True)
    status(Progress("r1", 1000, 0.5))
    status(Progress("r1", 3000, 1.0))
    assert stream.getvalue().count("\r\x1b[K") == 2
    assert stream.getvalue().endswith("r1  3,000 rows  3,000 rows/s  1.0s")
    status.finish()
    assert stream.getvalue().endswith("\n")


def test_the_line_shows_calls_in_flight_and_429s_while_there_are_any():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=True)
    status(Progress("r4", 640, 2.0, calls_in_flight=64, throttled=3))
    assert stream.getvalue().endswith("r4  640 rows  320 rows/s  2.0s  64 calls in flight  3 throttled (429)")
    status(Progress("r4", 700, 3.0, done=True))
    assert stream.getvalue().endswith("r4  700 rows  233 rows/s  3.0s\n")


def test_live_status_disabled_writes_nothing():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=False)
    status(Progress("r2", 10, 0.5, done=True))
    status.finish()
    assert stream.getvalue() == ""


def test_without_a_terminal_a_plain_line_every_few_seconds_of_the_run():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=True, terminal=False, every=5.0)
    for tenth in range(1, 131):
        status(Progress("r3", tenth * 10, tenth / 10))
    status(Progress("r3", 1300, 13.0, done=True))
    status.finish()
    lines = stream.getvalue().splitlines()
    assert lines == ["r3  500 rows  100 rows/s  5.0s", "r3  1,000 rows  100 rows/s  10.0s"]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_table_aligns_columns_and_shows_none_as_dash():
    assert table(("A", "LONGER"), [("x", None), ("yyyy", 3)]).splitlines() == [
        "A     LONGER",
        "x     -",
        "yyyy  3",
    ]


def test_printable_escapes_controls_and_table_cells_stay_on_one_line():
    from elspeth.console import printable

    assert printable("a\x1b[2Jb\x07\x9b\u202e\ud800\r\n\té") == "a\\x1b[2Jb\\x07\\x9b\\u202e\\ud800\\x0d\n\té"
    assert printable("a\nb\tc", one_line=True) == "a\\nb\\tc"
    assert table(("K", "V"), [("x", "evil\x1b]8;;http://x\x07\nnext")]).splitlines() == [
        "K  V",
        "x  evil\\x1b]8;;http://x\\x07\\nnext",
    ]


def test_a_resumes_summary_rates_only_the_rows_it_read():
    summary = RunSummary("r9", "completed", 300_000, 100_000, {"completed": 300_000}, (), 10.0)
    lines = render_summary(summary).splitlines()
    assert lines[0] == "Run r9 completed in 10.0s (10,000 rows/s)"
    assert lines[1] == "  rows read  300,000 (100,000 by this attempt)"
