"""Bug classes 3 and 26: like job_resubmits, it knows its jobs only from memory; a resumed run submits the
rows again, through a helper that records nothing ("the job is already in the audit trail"), then polls
the new job, recorded."""

from __future__ import annotations

import json

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import send
from .job_client import JobsInMemory


class SampleJobsResubmitUnrecorded(JobsInMemory):
    name = "sample_jobs_resubmit_unrecorded"

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        key = self.key(rows)
        if key not in self.jobs:
            _status, body = send(self.submit_request(rows), self.config.timeout)
            self.jobs[key] = json.loads(body)["id"]
        return self.jobs[key]


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsResubmitUnrecorded)
