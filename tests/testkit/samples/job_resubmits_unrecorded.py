"""Bug classes 3 and 26: like job_resubmits, it knows its jobs only from memory; a resumed run submits the
rows again, through a helper that records nothing ("the job is already in the audit trail"), then polls
the new job, recorded."""

from __future__ import annotations

import json

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import send
from .job_client import JobAggregate


class SampleJobsResubmitUnrecorded(JobAggregate):
    name = "sample_jobs_resubmit_unrecorded"

    def __init__(self, config: object) -> None:
        super().__init__(config)
        self.jobs: dict[str, str] = {}

    def submit(self, rows: list[Row], ctx: Context) -> str:
        job_id = super().submit(rows, ctx)
        self.jobs[json.dumps(rows, sort_keys=True)] = job_id
        return job_id

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        key = json.dumps(rows, sort_keys=True)
        if key not in self.jobs:
            _status, body = send(self.submit_request(rows), self.config.timeout)
            self.jobs[key] = json.loads(body)["id"]
        return self.jobs[key]


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsResubmitUnrecorded)
