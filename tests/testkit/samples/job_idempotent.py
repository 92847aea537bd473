"""A correct pending aggregate that submits idempotently: every call, the first and every poll, POSTs the
batch's rows with `ctx.work_key` as the Idempotency-Key (the same after a resume), and the service answers
with the job it already has for that key; then a poll asks for that job's status. A resumed poll POSTs the
rows again, but the service makes no second job."""

from __future__ import annotations

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import recorded_call
from .job_client import PROVIDER, JobAggregate


class SampleJobsIdempotent(JobAggregate):
    name = "sample_jobs_idempotent"

    def submit(self, rows: list[Row], ctx: Context) -> str:
        request = self.submit_request(rows)
        request = {**request, "headers": {**request["headers"], "Idempotency-Key": ctx.work_key}}
        job_id: str = recorded_call(ctx, PROVIDER, request, self.config.timeout)["id"]
        return job_id

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        return self.submit(rows, ctx)


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsIdempotent)
