"""Conformance setups for the plugins that ship in `elspeth` itself, the defaults of the
`elspeth_conformance_setups` fixture. They use nothing an outside plugin author could not use."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import attrs

from elspeth_testkit.setups import Options, PluginSetup, Row, local_file_setup, text_rows


def _csv_bytes(rows: list[Row]) -> bytes:
    out = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(text_rows(rows))
    return out.getvalue().encode()


def _jsonl_bytes(rows: list[Row]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parse_csv(data: bytes) -> list[Row]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def parse_jsonl(data: bytes) -> list[Row]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _file_source(
    filename: str, encode: Callable[[list[Row]], bytes], bad_input: bytes, good: int, bad: int
) -> PluginSetup:
    def write_input(rows: list[Row], opts: Options) -> None:
        Path(opts["path"]).write_bytes(encode(rows))

    return attrs.evolve(
        local_file_setup(filename),
        write_input=write_input,
        bad_input=bad_input,
        bad_input_good_rows=good,
        bad_input_bad_records=bad,
    )


BUILTIN_SETUPS: dict[str, PluginSetup] = {
    # Bad input: a record with too many fields, one with invalid UTF-8, an unterminated quote; 3 good ones.
    "source:csv": _file_source(
        "input.csv",
        _csv_bytes,
        b'id,name\n1,alpha\n2,beta,extra\n3,\xff\xfegamma\n4,delta\n6,eta\n7,"unterminated\n',
        3,
        3,
    ),
    "source:jsonl": _file_source(
        "input.jsonl",
        _jsonl_bytes,
        b'{"id": 1}\nnot json\n{"id": NaN}\n[1, 2]\n{"id": "\xff"}\n{"id": 2}\n{"id": 3}\n',
        3,
        4,
    ),
    "sink:csv": local_file_setup("output.csv", parse_csv),
    "sink:jsonl": local_file_setup("output.jsonl", parse_jsonl),
    "transform:field_map": PluginSetup(options=lambda workdir, endpoint: {"rename": {"name": "label"}}),
    "transform:route": PluginSetup(options=lambda workdir, endpoint: {"field": "group", "routes": {"g1": "other"}}),
    "aggregate:stats": PluginSetup(options=lambda workdir, endpoint: {"group_by": "group", "fields": ["amount"]}),
}
