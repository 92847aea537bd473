"""Registers the built-in plugins through the same hooks as any third-party plugin."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl
from elspeth.plugins.csv_files import CsvSink, CsvSource
from elspeth.plugins.field_map import FieldMap
from elspeth.plugins.jsonl_files import JsonlSink, JsonlSource
from elspeth.plugins.passthrough import Passthrough
from elspeth.plugins.route import Route
from elspeth.plugins.stats import Stats


@hookimpl
def register_sources(register: Register) -> None:
    register(CsvSource)
    register(JsonlSource)


@hookimpl
def register_transforms(register: Register) -> None:
    register(Passthrough)
    register(FieldMap)
    register(Route)


@hookimpl
def register_aggregates(register: Register) -> None:
    register(Stats)


@hookimpl
def register_sinks(register: Register) -> None:
    register(CsvSink)
    register(JsonlSink)
