"""A correct per-row enrichment that declares nothing: each row with the length of its `name` (as text) and
the size of its batch, whatever the values."""

from __future__ import annotations

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


class Enrich(Aggregate):
    name = "sample_enrich"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        return Success(*({**row, "length": len(str(row.get("name"))), "batch_size": len(rows)} for row in rows))


@hookimpl
def register_aggregates(register: Register) -> None:
    register(Enrich)
