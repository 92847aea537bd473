"""The correct pending aggregate through the service's one RPC endpoint: submitting and polling are both
POST /rpc, told apart by their bodies only."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl

from .job_aggregate import SampleJobs
from .job_client import RpcRequests


class SampleJobsRpc(RpcRequests, SampleJobs):
    name = "sample_jobs_rpc"


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsRpc)
