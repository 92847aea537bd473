"""What elspeth prints. Here, the terminal's primitives: plain tables, times and durations, and the live
progress line. Beside them, one module per kind of output, each a pure function from data to text (or to a
JSON-ready value): `run_summary`, `pipeline`, `runs`, `row_lineage`, `purge`, `verification`, `export`,
`landscape_schema`, `plugins`.

Whatever elspeth prints goes through `echo`, which escapes control characters: a row value holding
`\x1b[2J` or an OSC 8 link, read back from the Landscape by `explain`, must show as text, not act on the
terminal.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from typing import Any, TextIO

import click

from elspeth.engine.summary import Progress

# C0 and C1 controls, DEL, bidirectional overrides and isolates (which reorder what the eye reads), and lone
# surrogates (undecodable bytes, which the terminal's encoding would refuse). Tab and newline are layout.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNPRINTABLE = re.compile(f"[{_CONTROLS}]")
_UNPRINTABLE_IN_LINE = re.compile(f"[{_CONTROLS}\t\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {9: "\\t", 10: "\\n"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\u202e`); with `one_line`, tabs
    and newlines too, for a value inside a line or a table cell."""
    return (_UNPRINTABLE_IN_LINE if one_line else _UNPRINTABLE).sub(_escape, text)


def echo(message: str = "", *, err: bool = False) -> None:
    """click.echo, with control characters escaped: every line elspeth prints goes through here."""
    click.echo(printable(message), err=err)


def echo_json(value: Any) -> None:
    """`value` as indented JSON on stdout. json escapes C0 controls itself; the others that it leaves raw
    are written as \\uXXXX escapes, which keep the output valid JSON with the same meaning."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    click.echo(_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, under `headers` if given; None shows as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    lines = [list(headers), *cells] if headers is not None else cells
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _cell(value: object) -> str:
    return "-" if value is None else printable(str(value), one_line=True)


def indent(text: str, width: int = 2) -> list[str]:
    """The lines of `text`, each `width` spaces in."""
    return [" " * width + line for line in text.splitlines()]


def when(timestamp: float | None) -> str | None:
    """Local wall-clock time of an epoch timestamp, to the second."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "- rows/s"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def short_hash(digest: str | None) -> str | None:
    return digest[:12] if digest else None


PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two progress lines when stderr is no terminal (a log file, a pipe, CI)."""


class LiveStatus:
    """The progress callback. On a terminal, one line rewritten in place on `stream`; elsewhere (a log file
    or a pipe would fill up with carriage returns) a plain line every `every` seconds of the run, so a slow
    run is never silent."""

    def __init__(self, stream: TextIO, *, enabled: bool, terminal: bool = True, every: float = PLAIN_PROGRESS_EVERY):
        self.stream = stream
        self.enabled = enabled
        self.terminal = terminal
        self.every = every
        self._open_line = False
        self._next_plain = every

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        line = (
            f"{progress.run_id}  {progress.rows_read:,} rows  "
            f"{rate(progress.rows_read, progress.elapsed_seconds)}  {duration(progress.elapsed_seconds)}"
        )
        if progress.calls_in_flight or progress.throttled:
            line += f"  {plural(progress.calls_in_flight, 'call')} in flight  {progress.throttled:,} throttled (429)"
        if not self.terminal:
            # The summary follows the last one; in between, one line per `every` seconds at most.
            if not progress.done and progress.elapsed_seconds >= self._next_plain:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._next_plain = progress.elapsed_seconds + self.every
            return
        self.stream.write("\r\x1b[K" + line)
        self._open_line = not progress.done
        if progress.done:
            self.stream.write("\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the status line so whatever is printed next starts on a fresh one."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
