"""The live progress line and the plain tables."""

from __future__ import annotations

import io

from elspeth.console import LiveStatus, table
from elspeth.engine.summary import Progress


def test_live_status_rewrites_one_line_and_ends_it():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=True)
    status(Progress("r1", 1000, 0.5))
    status(Progress("r1", 3000, 1.0))
    assert stream.getvalue().count("\r\x1b[K") == 2
    assert stream.getvalue().endswith("r1  3,000 rows  3,000 rows/s  1.0s")
    status.finish()
    assert stream.getvalue().endswith("\n")


def test_live_status_disabled_writes_nothing():
    stream = io.StringIO()
    status = LiveStatus(stream, enabled=False)
    status(Progress("r2", 10, 0.5, done=True))
    status.finish()
    assert stream.getvalue() == ""


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
