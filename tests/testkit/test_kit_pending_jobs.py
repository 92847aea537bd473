"""Bug class 26: a pending aggregate whose job the killed run submitted and recorded submits it again after
the resume. The samples hand each batch to the job service (job_service.py) as one job; the kit runs the
recovery scenarios behind the fault proxy, whose log holds both attempts' traffic."""

from __future__ import annotations

import re

import pytest

from .conformance_runs import install, run_kit, write_setups
from .job_service import JobService

pytest_plugins = ("pytester",)

SCENARIO = "test_aggregate_recovery_pending"
BATCHES = 3
"""The pending scenario's 10 rows with a count trigger of 4 make three batches: three jobs, submitted once."""
RESUBMITTED = (
    r"batch 0 of aggregate:under_test \(attempt 1\) submitted its job with POST /jobs \(exchange #0\), first "
    r"recorded at \+\d+\.\d{3} s as call 0 of node_state \d+, and answered Pending with checkpoint "
    r'\{"job_id":"job-1","poll_errors":0\} at \+\d+\.\d{3} s; after the resume, its poll \(node_state \d+\) sent '
    r"POST /jobs again at \+\d+\.\d{3} s \(exchange #\d+, "
)


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, service: JobService, module: str, name: str):  # type: ignore[no-untyped-def]
    install(pytester, monkeypatch, module)
    write_setups(pytester, {f"aggregate:{name}": f"setups.job_aggregate({service.url!r})"})
    return run_kit(pytester, f"aggregate:{name}", only=SCENARIO)


def test_job_submitted_again_after_resume_is_flagged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService
) -> None:
    run = _run(pytester, monkeypatch, job_service, "job_resubmits", "sample_jobs_resubmit")
    text = run.assert_caught(SCENARIO, "sample_jobs_resubmit", "job-resubmitted")
    assert re.search(RESUBMITTED + r"recorded as call 0 of node_state \d+\)", text), text
    assert len(job_service.submitted) == BATCHES + 1, job_service.submitted


def test_unrecorded_resubmission_is_flagged_from_the_wire(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService
) -> None:
    run = _run(pytester, monkeypatch, job_service, "job_resubmits_unrecorded", "sample_jobs_resubmit_unrecorded")
    text = run.assert_caught(SCENARIO, "sample_jobs_resubmit_unrecorded", "job-resubmitted")
    assert re.search(RESUBMITTED + r"not recorded at all\)", text), text
    assert "(and 1 more: call-unrecorded)" in text, text
    assert len(job_service.submitted) == BATCHES + 1, job_service.submitted


def test_pending_aggregate_polling_its_checkpoint_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, job_service: JobService
) -> None:
    """The correct sample through the whole suite; in the pending scenario each job was submitted once."""
    install(pytester, monkeypatch, "job_aggregate")
    write_setups(pytester, {"aggregate:sample_jobs": f"setups.job_aggregate({job_service.url!r})"})
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
