"""Bug class 26 through one RPC endpoint: job_resubmits' memory bug, but submitting and polling are both
POST /rpc, so only the body of its second submission tells it from a poll."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl

from .job_client import RpcRequests
from .job_resubmits import SampleJobsResubmit


class SampleJobsRpcResubmit(RpcRequests, SampleJobsResubmit):
    name = "sample_jobs_rpc_resubmit"


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleJobsRpcResubmit)
