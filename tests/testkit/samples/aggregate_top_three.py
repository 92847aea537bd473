"""A correct aggregate that declares nothing: the three rows with the largest `amount` in each batch, as they
are. On batches of four generic rows its three outputs are always three distinct groups, by chance; the kit
must not take that for one output per group."""

from __future__ import annotations

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


class TopThree(Aggregate):
    name = "sample_top_three"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        ranked = sorted(range(len(rows)), key=lambda i: (-float(rows[i].get("amount") or 0), i))
        return Success(*(rows[i] for i in sorted(ranked[:3])))


@hookimpl
def register_aggregates(register: Register) -> None:
    register(TopThree)
