"""A correct aggregate: one row per batch with the batch's first id, its row count and the sum of `field`.
It keeps nothing between batches: the engine owns the buffer, and a resumed run has a fresh instance."""

from __future__ import annotations

import math

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Context, Error, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class BatchSumConfig:
    field: str = "amount"


class SampleBatchSum(Aggregate):
    name = "sample_batch_sum"
    config_class = BatchSumConfig
    config: BatchSumConfig

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        values = [row.get(self.config.field) for row in rows]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            return Error(f"field {self.config.field!r} (option `field`) is not a number in every row")
        return Success({"first_id": rows[0].get("id"), "count": len(rows), "sum": round(math.fsum(values), 6)})


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleBatchSum)
