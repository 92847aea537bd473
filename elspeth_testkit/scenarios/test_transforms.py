"""Transform scenarios: recorded boundaries, determinism, calls on the wire, rows in flight together, exact
recovery."""

from __future__ import annotations

from typing import Any

import pytest

from elspeth.api import Capability
from elspeth_testkit import checks, concurrency
from elspeth_testkit.harness import Harness, generic_rows, read_jsonl

pytestmark = pytest.mark.elspeth_kind("transform")


def _rows(h: Harness, n: int) -> list[dict]:
    return h.plugin.setup.input_rows or generic_rows(n)


def _pipeline(h: Harness, rows: list, subdir: str = "", in_flight: int | None = None, **engine: int) -> dict:
    """`in_flight` is the transform's `concurrency:` setting (rows in flight at once)."""
    transform: dict[str, Any] = {"plugin": h.plugin.info.name, "options": h.options(subdir)}
    if in_flight is not None:
        transform["concurrency"] = in_flight
    return h.pipeline(rows, transforms=[transform], engine=engine)


def _outputs(h: Harness) -> dict[str, list[dict]]:
    return {name: read_jsonl(h.sink_path(name)) for name in ("main", "other", "errors")}


def test_transform_contract(h: Harness, plugin_info) -> None:
    checks.contract(h)


def test_transform_empty_input(h: Harness, plugin_info) -> None:
    checks.empty_run(h, _pipeline(h, []))


def test_transform_deterministic(h: Harness, plugin_info) -> None:
    """The same rows give the same recorded input and output hashes, run after run."""
    h.require(h.plugin.has(Capability.DETERMINISTIC), "the transform does not declare 'deterministic'")
    rows = _rows(h, 12)
    first = h.run(_pipeline(h, rows))
    h.check(first)
    outputs = _outputs(h)
    second = h.run(_pipeline(h, rows))
    h.check(second)
    checks.deterministic_outputs(h, first, second)
    if _outputs(h) != outputs:
        h.fail("deterministic-output", "the same rows gave different output rows in two runs")


def test_transform_recovery(h: Harness, plugin_info) -> None:
    """Killed mid-run: resume finishes every row exactly once, as an uninterrupted run would have; behind the
    fault proxy, every request of both attempts is recorded but for what the kill cut off (classes 3, 26)."""
    rows = _rows(h, 20)
    engine = {"write_batch_rows": 4, "checkpoint_every_rows": 5}
    run_id = f"kill-{h.scenario}"
    kill = {"kind": "transform", "name": h.plugin.info.name, "method": "process", "n": 12}
    with checks.recovery_proxy(h) as proxy:
        settings = _pipeline(h, rows, "killed", **engine)
        if h.run_killed(settings, kill, run_id) == 0:
            h.fail("kill-point", "the transform never processed its 12th row")
        h.check(h.resume(run_id, settings))
        checks.wire_across_resume(h, proxy, settings)
    resumed = _outputs(h)
    reference = h.run(_pipeline(h, rows, "reference", **engine))
    h.check(reference)
    expected = _outputs(h)
    for name in expected:
        checks.same_rows(
            h,
            "resume",
            resumed[name],
            expected[name],
            f"sink {name} after a SIGKILL and resume, against an uninterrupted run's",
            per_cause=True,
        )


def test_transform_call_linkage(h: Harness, plugin_info) -> None:
    checks.call_linkage(h, lambda hh: _pipeline(hh, _rows(hh, 6)))


def test_transform_sdk_failure(h: Harness, plugin_info) -> None:
    checks.sdk_failure(h, lambda hh: _pipeline(hh, _rows(hh, 6)))


def test_transform_concurrency(h: Harness, plugin_info) -> None:
    """Rows in flight together, behind latency and faults: every call under its own row's state, inside that
    state's open interval, and the serial run's outputs (elspeth_testkit/concurrency.py)."""
    concurrency.concurrency(h, lambda hh, n: _pipeline(hh, _rows(hh, concurrency.ROWS), in_flight=n))


def test_transform_audit_refused(h: Harness, plugin_info) -> None:
    checks.audit_refused(h, lambda hh: _pipeline(hh, _rows(hh, 6)))


def test_transform_secrets(h: Harness, plugin_info) -> None:
    options = h.options()
    settings = h.pipeline(_rows(h, 5), transforms=[{"plugin": h.plugin.info.name, "options": options}])
    checks.secrets_stay_out(h, settings, options)
