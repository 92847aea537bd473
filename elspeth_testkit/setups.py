"""How the conformance kit exercises a plugin: the one thing a plugin author may have to write.

A plugin whose options all have defaults, that reads and writes nothing outside the process, needs no
setup. Others describe, per plugin, the options to use in a scenario's working directory, how a source's
input is put in place, how a sink's output is read back, and which service the plugin talks to. Authors
supply them through the `elspeth_conformance_setups` fixture in their `conftest.py` (docs/conformance.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

Row = dict[str, Any]
Options = dict[str, Any]


@frozen
class Service:
    """Where a plugin's external calls go. The kit puts its fault proxy in front of `upstream` and hands
    the proxy's URL to `options`, so every request crosses a wire the kit can see and break."""

    upstream: str
    """Base URL of the real service or emulator, e.g. http://127.0.0.1:10000."""


@frozen
class PluginSetup:
    """Everything optional; what a scenario needs and does not find here makes it skip, saying why.

    `options(workdir, endpoint)` returns the plugin's options for one scenario: `workdir` is an empty
    directory of that scenario, `endpoint` the URL to reach `service` at (through the fault proxy), or None.
    """

    options: Callable[[Path, str | None], Options] = field(default=lambda workdir, endpoint: {})
    service: Service | None = None
    write_input: Callable[[list[Row], Options], None] | None = None
    """Source: put these rows where a source with these options reads them."""
    write_raw_input: Callable[[bytes, Options], None] | None = None
    """Source: put these raw bytes (with records that should be quarantined) where the source reads."""
    bad_input: bytes | None = None
    """Source: raw input holding good and bad records, for the quarantine scenario..."""
    bad_input_good_rows: int = 0
    """...how many good records it holds (each must become a row)..."""
    bad_input_bad_records: int | None = None
    """...and how many bad ones (each must be quarantined with its reason): records the source itself must
    reject, such as a malformed line of its format, not only values the engine refuses (NaN, unsafe integers)."""
    read_output: Callable[[Options], bytes] | None = None
    """Sink: the bytes stored so far at the destination these options name."""
    parse_output: Callable[[bytes], list[Row]] | None = None
    """Sink: rows back from stored bytes (values may come back as strings: they are compared as text)."""
    input_rows: list[Row] | None = None
    """Transform/aggregate: rows to feed it; the kit's generic rows are used when None."""
    opt_out: Mapping[str, str] = field(factory=dict)
    """Scenario name -> the written reason it does not apply although the capabilities say it does."""

    def __attrs_post_init__(self) -> None:
        for scenario, reason in self.opt_out.items():
            if not isinstance(reason, str) or len(reason.strip()) < 10:
                raise ValueError(f"opting out of {scenario!r} needs a written reason (a sentence), not {reason!r}")


def text_rows(rows: list[Row]) -> list[dict[str, str]]:
    """Rows with every value as the text a file would hold, so what a CSV sink gives back compares with
    what went in."""
    return [{str(k): _text(v) for k, v in row.items()} for row in rows]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def key(kind: str, name: str) -> str:
    """Setups are keyed "kind:name", e.g. "sink:csv"."""
    return f"{kind}:{name}"


def local_file_setup(filename: str, parse: Callable[[bytes], list[Row]] | None = None, **options: Any) -> PluginSetup:
    """A plugin reading or writing one local file given by its `path` option."""

    def make_options(workdir: Path, endpoint: str | None) -> Options:
        return {"path": str(workdir / filename), **options}

    def write_raw(data: bytes, opts: Options) -> None:
        Path(opts["path"]).write_bytes(data)

    def read(opts: Options) -> bytes:
        path = Path(opts["path"])
        return path.read_bytes() if path.exists() else b""

    return PluginSetup(options=make_options, write_raw_input=write_raw, read_output=read, parse_output=parse)
