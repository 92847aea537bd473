"""Bug class 26 by way of the engine: it knows its jobs only from memory, and a poll for a job it does not
know answers a retryable Error ("lost track of the job"), so after a resume the engine runs the batch's rows
again as a new batch, which submits them again, while the first job runs on."""

from __future__ import annotations

import json

from elspeth.api import BatchResult, Context, Error, Register, Row
from elspeth.hookspecs import hookimpl

from .job_client import JobAggregate


class SampleJobsRetryWhenLost(JobAggregate):
    name = "sample_jobs_retry_when_lost"

    def __init__(self, config: object) -> None:
        super().__init__(config)
        self.jobs: dict[str, str] = {}

    def submit(self, rows: list[Row], ctx: Context) -> str:
        job_id = super().submit(rows, ctx)
        self.jobs[json.dumps(rows, sort_keys=True)] = job_id
        return job_id

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        if ctx.checkpoint is not None and json.dumps(rows, sort_keys=True) not in self.jobs:
            return Error("lost track of the job", retryable=True)
        return super().process_batch(rows, ctx)

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        return self.jobs[json.dumps(rows, sort_keys=True)]


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsRetryWhenLost)
