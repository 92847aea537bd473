"""The recovery scenarios behind the fault proxy, whose log holds both the killed attempt's traffic and the
resume's. Bug class 26: a pending aggregate whose job the killed run submitted and recorded submits it
again after the resume; the samples hand each batch to the job service (job_service.py) as one job. Bug
class 3 across a kill: a request the killed attempt made well before the kill, never recorded."""

from __future__ import annotations

import re

import pytest

from .conformance_runs import install, run_kit, write_setups
from .job_service import JobService

pytest_plugins = ("pytester",)

SCENARIO = "test_aggregate_recovery_pending"
BATCHES = 3
"""The pending scenario's 10 rows with a count trigger of 4 make three batches: three jobs, submitted once."""


def _resubmitted(path: str, recorded: bool) -> str:
    """The message of `job-resubmitted` for the first batch of the pending scenario, submitted with POST `path`."""
    again = r"recorded as call 0 of node_state \d+" if recorded else "not recorded at all"
    return (
        rf"batch 0 of aggregate:under_test \(attempt 1\) submitted its job with POST {path} \(exchange #0\), first "
        r"recorded at \+\d+\.\d{3} s as call 0 of node_state \d+, and answered Pending with checkpoint "
        r'\{"job_id":"job-1","poll_errors":0\} at \+\d+\.\d{3} s; after the resume, its poll \(node_state \d+\) '
        rf"sent POST {path} again at \+\d+\.\d{{3}} s \(exchange #\d+, {again}\): the job was submitted twice"
    )


SAMPLES = {
    "job_aggregate": "sample_jobs",
    "job_rpc": "sample_jobs_rpc",
    "job_resubmits": "sample_jobs_resubmit",
    "job_resubmits_unrecorded": "sample_jobs_resubmit_unrecorded",
    "job_rpc_resubmits": "sample_jobs_rpc_resubmit",
}
"""Sample module -> the aggregate it registers."""


def _install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, service: JobService, module: str) -> str:
    install(pytester, monkeypatch, module)
    write_setups(pytester, {f"aggregate:{SAMPLES[module]}": f"setups.job_aggregate({service.url!r})"})
    return SAMPLES[module]


@pytest.mark.parametrize(
    ("module", "path", "recorded"),
    [
        pytest.param("job_resubmits", "/jobs", True, id="recorded"),
        pytest.param("job_resubmits_unrecorded", "/jobs", False, id="unrecorded"),
        pytest.param("job_rpc_resubmits", "/rpc", True, id="rpc-told-by-body"),
    ],
)
def test_job_submitted_again_after_resume_is_flagged(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    job_service: JobService,
    module: str,
    path: str,
    recorded: bool,
) -> None:
    """Recorded or not (then also `call-unrecorded`), and through an RPC endpoint whose polls share the
    submission's path (then told by its body)."""
    name = _install(pytester, monkeypatch, job_service, module)
    run = run_kit(pytester, f"aggregate:{name}", only=SCENARIO)
    text = run.assert_caught(SCENARIO, name, "job-resubmitted")
    assert re.search(_resubmitted(path, recorded), text), text
    assert ("(and 1 more: call-unrecorded)" in text) is not recorded, text
    assert len(job_service.submitted) == BATCHES + 1, job_service.submitted


def test_rpc_polls_sharing_the_submission_path_are_no_resubmission(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService
) -> None:
    """The correct sample through one RPC endpoint: after the resume it polls with POST /rpc, the very method
    and path of its submission; its other batches' polls show that is how it polls. Each batch submitted once."""
    _install(pytester, monkeypatch, job_service, "job_rpc")
    run = run_kit(pytester, "aggregate:sample_jobs_rpc", only="aggregate_recovery")
    outcomes = run.outcomes("sample_jobs_rpc")
    assert outcomes == {SCENARIO: "passed", "test_aggregate_recovery_half_full_buffer": "passed"}, run.tail
    # Three runs of three batches: the half-full scenario's killed and resumed run, its reference, the pending one.
    assert len(job_service.submitted) == 3 * BATCHES, job_service.submitted


def test_pending_aggregate_polling_its_checkpoint_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService
) -> None:
    """The correct sample through the whole suite; in the pending scenario each job was submitted once."""
    _install(pytester, monkeypatch, job_service, "job_aggregate")
    run = run_kit(pytester, "aggregate:sample_jobs")
    run.assert_clean(
        {
            "sample_jobs": {
                "test_aggregate_contract",
                "test_aggregate_empty_input",
                "test_aggregate_batch_state",
                "test_aggregate_recovery_half_full_buffer",
                SCENARIO,
                "test_aggregate_call_linkage",
                "test_aggregate_sdk_failure",
                "test_aggregate_audit_refused",
            }
        }
    )


def test_a_call_the_killed_attempt_left_unrecorded_is_flagged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    """The health check the transform sends unrecorded before its first row: the killed attempt's, finished
    long before the kill and outside the work the kill cut off, is reported first (exchange #0)."""
    install(pytester, monkeypatch, "http_unrecorded")
    write_setups(pytester, {"transform:sample_http_unrecorded": f"setups.http_transform({quiet_upstream!r})"})
    run = run_kit(pytester, "transform:sample_http_unrecorded", only="test_transform_recovery")
    text = run.assert_caught("test_transform_recovery", "sample_http_unrecorded", "call-unrecorded")
    assert re.search(r"across the SIGKILL and the resume: #0 GET /health -> 200, no request body", text), text
    assert "(and 1 more: call-unrecorded)" in text, text
