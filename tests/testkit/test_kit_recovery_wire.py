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


def _resubmitted(path: str, recorded: bool, by: str = r"its poll \(node_state \d+\)") -> str:
    """The message of `job-resubmitted` for the first batch of the pending scenario, submitted with POST `path`
    and again by `by`."""
    again = r"recorded as call 0 of node_state \d+" if recorded else "not recorded at all"
    return (
        rf"batch 0 of aggregate:under_test \(attempt 1\) submitted its job with POST {path} \(exchange #0\), first "
        r"recorded at \+\d+\.\d{3} s as call 0 of node_state \d+, and answered Pending with checkpoint "
        rf'\{{"job_id":"job-1","poll_errors":0\}} at \+\d+\.\d{{3}} s; after the resume, {by} '
        rf"sent POST {path} again at \+\d+\.\d{{3}} s \(exchange #\d+, {again}\): the job was submitted twice"
    )


SAMPLES = {
    "job_aggregate": "sample_jobs",
    "job_rpc": "sample_jobs_rpc",
    "job_resubmits": "sample_jobs_resubmit",
    "job_resubmits_unrecorded": "sample_jobs_resubmit_unrecorded",
    "job_rpc_resubmits": "sample_jobs_rpc_resubmit",
    "job_retries_when_lost": "sample_jobs_retry_when_lost",
    "job_idempotent": "sample_jobs_idempotent",
}
"""Sample module -> the aggregate it registers."""


def _install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, service: JobService, module: str) -> str:
    install(pytester, monkeypatch, module)
    write_setups(pytester, {f"aggregate:{SAMPLES[module]}": f"setups.job_aggregate({service.url!r})"})
    return SAMPLES[module]


RERUN = (
    r"the flush of attempt 2 of its rows \(node_state \d+\), which the engine ran because a poll with the "
    r"checkpoint answered a retryable Error,"
)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        pytest.param("job_resubmits", _resubmitted("/jobs", recorded=True), id="recorded"),
        pytest.param("job_resubmits_unrecorded", _resubmitted("/jobs", recorded=False), id="unrecorded"),
        pytest.param("job_rpc_resubmits", _resubmitted("/rpc", recorded=True), id="rpc-told-by-body"),
        pytest.param("job_retries_when_lost", _resubmitted("/jobs", recorded=True, by=RERUN), id="rerun-by-engine"),
    ],
)
def test_job_submitted_again_after_resume_is_flagged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService, module: str, message: str
) -> None:
    """Recorded or not (then also `call-unrecorded`), through an RPC endpoint whose polls share the
    submission's path (then told by its body), or by the engine, asked to run the rows again."""
    name = _install(pytester, monkeypatch, job_service, module)
    run = run_kit(pytester, f"aggregate:{name}", only=SCENARIO)
    text = run.assert_caught(SCENARIO, name, "job-resubmitted")
    assert re.search(message, text), text
    recorded = "not recorded at all" not in message
    assert ("(and 1 more: call-unrecorded)" in text) is not recorded, text
    assert len(job_service.submitted) == BATCHES + 1, job_service.submitted


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("job_rpc", id="rpc-polls-share-the-path"),
        pytest.param("job_idempotent", id="idempotent-submission"),
    ],
)
def test_polls_that_look_like_a_submission_are_no_resubmission(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService, module: str
) -> None:
    """Correct samples whose resumed polls send what their submission sent: POST /rpc, the very method and
    path (their other batches' polls show that is how they poll), or the rows themselves, POSTed again with
    the same idempotency key (the service answers with the job it has). Each batch makes one job."""
    name = _install(pytester, monkeypatch, job_service, module)
    run = run_kit(pytester, f"aggregate:{name}", only="aggregate_recovery")
    outcomes = run.outcomes(name)
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
                "test_aggregate_cardinality",
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
