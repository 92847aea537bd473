"""Bug class 26 by way of the engine: it knows its jobs only from memory, and a poll for a job it does not
know answers a retryable Error ("lost track of the job"), so after a resume the engine runs the batch's rows
again as a new batch, which submits them again, while the first job runs on."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Error, Register, Row
from elspeth.hookspecs import hookimpl

from .job_client import JobsInMemory


class SampleJobsRetryWhenLost(JobsInMemory):
    name = "sample_jobs_retry_when_lost"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        if ctx.checkpoint is not None and self.key(rows) not in self.jobs:
            return Error("lost track of the job", retryable=True)
        return super().process_batch(rows, ctx)

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        return self.jobs[self.key(rows)]


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsRetryWhenLost)
