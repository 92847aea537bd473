"""Bug class 26: keeps each batch's job id on itself, keyed by the batch's rows, and takes the checkpoint
only as a sign that a job exists. A resumed run is a new process with no such memory, so it submits the
rows again (and records it) instead of polling the job the killed run submitted."""

from __future__ import annotations

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .job_client import JobsInMemory


class SampleJobsResubmit(JobsInMemory):
    name = "sample_jobs_resubmit"

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        return self.jobs.get(self.key(rows)) or self.submit(rows, ctx)


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsResubmit)
