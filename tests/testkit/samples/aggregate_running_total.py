"""Bug class 13: keeps a running total across batches in instance memory, which a resumed run (a new
process, a new instance) does not have: its later batches differ from an uninterrupted run's."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .batch_sum import BatchSumConfig, SampleBatchSum


class RunningTotalAggregate(SampleBatchSum):
    name = "sample_running_total"

    def __init__(self, config: BatchSumConfig) -> None:
        super().__init__(config)
        self.running = 0.0

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        result = super().process_batch(rows, ctx)
        if not isinstance(result, Success):
            return result
        self.running += result.rows[0]["sum"]
        return Success({**result.rows[0], "running_sum": round(self.running, 6)})


@hookimpl
def register_aggregates(register: Register) -> None:
    register(RunningTotalAggregate)
