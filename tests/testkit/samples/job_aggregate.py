"""A correct pending aggregate: the job's id is in the checkpoint, so a resumed run polls the job the killed
one submitted."""

from __future__ import annotations

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .job_client import JobAggregate


class SampleJobs(JobAggregate):
    name = "sample_jobs"

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        assert ctx.checkpoint is not None
        job_id: str = ctx.checkpoint["job_id"]
        return job_id


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobs)
