"""Bug class 25: a per-batch summary that emits nothing when the batch's total is 0 (`if total:`), so a
batch of zero amounts leaves no trace downstream."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .batch_sum import SampleBatchSum


class SkipsZeroTotal(SampleBatchSum):
    name = "sample_skips_zero_total"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        result = super().process_batch(rows, ctx)
        if isinstance(result, Success) and not result.rows[0]["sum"]:
            return Success()
        return result


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SkipsZeroTotal)
