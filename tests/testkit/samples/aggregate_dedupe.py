"""A correct dedupe that declares nothing: the first row of each distinct `key` value in the batch, values
compared as JSON text (0, 0.0, false and "" are four values)."""

from __future__ import annotations

import json

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class DedupeConfig:
    key: str = "group"


class Dedupe(Aggregate):
    name = "sample_dedupe"
    config_class = DedupeConfig
    config: DedupeConfig

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        first: dict[str, Row] = {}
        for row in rows:
            first.setdefault(json.dumps(row.get(self.config.key)), row)
        return Success(*first.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(Dedupe)
