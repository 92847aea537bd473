"""The `PluginSetup`s of the sample plugins, for the conftest.py files the kit's tests write."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from elspeth_testkit import PluginSetup, Service, local_file_setup
from elspeth_testkit.setups import Options, Row

API_KEY = "sample-api-key-4f1c9e27b8"
"""The secret the HTTP samples are given: the secrets scenario looks for it everywhere."""

BAD_JSONL = (
    b'{"id": 1, "name": "one"}\n'
    b"not json\n"
    b'{"id": 2, "amount": NaN}\n'
    b"[1, 2]\n"
    b'{"id": "\xff"}\n'
    b'{"id": 3, "name": "three"}\n'
    b"\n"
    b'{"id": 4, "amount": 1.5}\n'
)
BAD_JSONL_GOOD_ROWS = 3
BAD_JSONL_BAD_RECORDS = 4
"""Not JSON, NaN, not an object, invalid UTF-8 (the blank line is no record)."""


TEXT_ROWS = [{"id": i, "text": f"row {i} has some words"} for i in range(20)]
"""Rows for the samples that need a `text` field, which the kit's generic rows lack."""


def parse_jsonl(data: bytes) -> list[Row]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def jsonl_source() -> PluginSetup:
    def write_input(rows: list[Row], options: Options) -> None:
        Path(options["path"]).write_text("".join(json.dumps(row) + "\n" for row in rows))

    return attrs.evolve(
        local_file_setup("input.jsonl"),
        write_input=write_input,
        bad_input=BAD_JSONL,
        bad_input_good_rows=BAD_JSONL_GOOD_ROWS,
        bad_input_bad_records=BAD_JSONL_BAD_RECORDS,
    )


def http_transform(upstream: str, *, fallback: bool = True) -> PluginSetup:
    """Scenarios that do not check the wire give no `endpoint`: the plugin then talks to the upstream
    directly, unless `fallback` is off (as in docs/conformance.md's example)."""
    return PluginSetup(
        options=lambda workdir, endpoint: {"url": endpoint or (upstream if fallback else None), "api_key": API_KEY},
        service=Service(upstream=upstream),
    )


def http_fetch(upstream: str) -> PluginSetup:
    return PluginSetup(
        options=lambda workdir, endpoint: {"url": endpoint or upstream}, service=Service(upstream=upstream)
    )


def append_sink() -> PluginSetup:
    return local_file_setup("output.jsonl", parse_jsonl)


def json_document_sink() -> PluginSetup:
    return local_file_setup("output.json", lambda data: json.loads(data) if data else [])


def webhook_sink(upstream: str) -> PluginSetup:
    return attrs.evolve(
        append_sink(),
        options=lambda workdir, endpoint: {"path": str(workdir / "output.jsonl"), "url": endpoint or upstream},
        service=Service(upstream=upstream),
    )


def job_aggregate(upstream: str) -> PluginSetup:
    return PluginSetup(
        options=lambda workdir, endpoint: {"url": endpoint or upstream}, service=Service(upstream=upstream)
    )
