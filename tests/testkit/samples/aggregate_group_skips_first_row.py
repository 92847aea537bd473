"""Bug class 25: a group-by that starts at `rows[1:]` (as if the batch had a header row): a group whose
only row is the batch's first gets no output."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .aggregate_dedupe import Dedupe


class GroupSkipsFirstRow(Dedupe):
    name = "sample_group_skips_first_row"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        counts: dict[str, Row] = {}
        key = self.config.key
        for row in rows[1:]:
            counts.setdefault(repr(row.get(key)), {key: row.get(key), "count": 0})["count"] += 1
        return Success(*counts.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(GroupSkipsFirstRow)
