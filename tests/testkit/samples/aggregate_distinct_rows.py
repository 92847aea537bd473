"""A correct aggregate that declares nothing: each distinct row of the batch once (whole rows compared as
JSON), in order. On the kit's batch of doubled rows it merges; no single field explains it, all do."""

from __future__ import annotations

import json

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


class DistinctRows(Aggregate):
    name = "sample_distinct_rows"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        first: dict[str, Row] = {}
        for row in rows:
            first.setdefault(json.dumps(row, sort_keys=True), row)
        return Success(*first.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(DistinctRows)
