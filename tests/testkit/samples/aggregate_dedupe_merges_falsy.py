"""Bug class 25: a dedupe keyed by the raw value in a dict, where 0 == false (and 1 == true == 1.0): two
distinct values become one and a row vanishes."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .aggregate_dedupe import Dedupe


class DedupeMergesFalsy(Dedupe):
    name = "sample_dedupe_merges_falsy"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        first: dict[object, Row] = {}
        for row in rows:
            value = row.get(self.config.key)
            first.setdefault(value if isinstance(value, int | float | str | bool) else repr(value), row)
        return Success(*first.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(DedupeMergesFalsy)
