"""What the pending aggregate samples share: their options, and an aggregate that hands each batch of rows
to the job service (tests/testkit/job_service.py) as one job, answers Pending, and polls the job until it
is done. Each request is recorded through `http_client.recorded_call`. How a sample finds the job to poll
(`job_id`) is where they differ, and whether it speaks REST (POST /jobs, GET /jobs/<id>) or RPC."""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Capability, Context, Error, Pending, Row, Success

from .http_client import HttpStatusError, Request, recorded_call

PROVIDER = "sample_jobs"
MAX_POLL_ERRORS = 5


@frozen
class JobOptions:
    url: str
    timeout: float = 1.0
    poll_seconds: float = 0.05


class JobFailed(Exception):
    pass


class JobAggregate(Aggregate):
    config_class = JobOptions
    capabilities = frozenset({Capability.EXTERNAL_CALLS, Capability.PENDING})
    config: JobOptions

    def submit_request(self, rows: list[Row]) -> Request:
        return {
            "method": "POST",
            "url": f"{self.config.url.rstrip('/')}/jobs",
            "headers": {"Content-Type": "application/json"},
            "json": {"rows": rows},
        }

    def poll_request(self, job_id: str) -> Request:
        return {"method": "GET", "url": f"{self.config.url.rstrip('/')}/jobs/{job_id}"}

    def submit(self, rows: list[Row], ctx: Context) -> str:
        job_id: str = recorded_call(ctx, PROVIDER, self.submit_request(rows), self.config.timeout)["id"]
        return job_id

    def job_id(self, rows: list[Row], ctx: Context) -> str:
        """The job a pending batch was submitted as."""
        raise NotImplementedError

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        if ctx.checkpoint is None:
            try:
                job_id = self.submit(rows, ctx)
            except (HttpStatusError, OSError, ValueError) as exc:
                return Error(f"submitting the job failed: {exc}", retryable=True)
            return Pending({"job_id": job_id, "poll_errors": 0}, retry_after=self.config.poll_seconds)
        checkpoint: dict[str, Any] = dict(ctx.checkpoint)
        try:
            job_id = self.job_id(rows, ctx)
            job = recorded_call(ctx, PROVIDER, self.poll_request(job_id), self.config.timeout)
        except (HttpStatusError, OSError, ValueError) as exc:
            errors = checkpoint["poll_errors"] + 1
            if errors >= MAX_POLL_ERRORS:
                return Error(f"{errors} polls of the job failed, the last with {exc}")
            # The job exists: keep polling it, never submit the rows again.
            return Pending({**checkpoint, "poll_errors": errors}, retry_after=self.config.poll_seconds)
        if job["status"] != "done":
            return Pending({**checkpoint, "job_id": job_id, "poll_errors": 0}, retry_after=self.config.poll_seconds)
        return Success(*job["results"])


class JobsInMemory(JobAggregate):
    """Remembers each batch's job id on the plugin itself, keyed by the batch's rows: what the buggy samples
    rely on instead of the checkpoint (a resumed run is a new process with no such memory)."""

    def __init__(self, config: object) -> None:
        super().__init__(config)
        self.jobs: dict[str, str] = {}

    @staticmethod
    def key(rows: list[Row]) -> str:
        return json.dumps(rows, sort_keys=True)

    def submit(self, rows: list[Row], ctx: Context) -> str:
        job_id = super().submit(rows, ctx)
        self.jobs[self.key(rows)] = job_id
        return job_id


class RpcRequests(JobAggregate):
    """Submits and polls through the service's one RPC endpoint (POST /rpc), as GraphQL or JSON-RPC APIs do."""

    def rpc(self, call: dict[str, Any]) -> Request:
        return {
            "method": "POST",
            "url": f"{self.config.url.rstrip('/')}/rpc",
            "headers": {"Content-Type": "application/json"},
            "json": call,
        }

    def submit_request(self, rows: list[Row]) -> Request:
        return self.rpc({"op": "submit", "rows": rows})

    def poll_request(self, job_id: str) -> Request:
        return self.rpc({"op": "status", "id": job_id})
