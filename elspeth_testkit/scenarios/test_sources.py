"""Source scenarios: rows read faithfully, bad records quarantined and recorded, exact recovery."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from elspeth.landscape.reading import TokenOutcome
from elspeth_testkit import checks
from elspeth_testkit.harness import Harness, generic_rows, read_jsonl
from elspeth_testkit.setups import Options, Row

pytestmark = pytest.mark.elspeth_kind("source")


def _pipeline(h: Harness, subdir: str = "", **engine: int) -> tuple[dict, dict]:
    options = h.options(subdir)
    settings = h.pipeline(source={"plugin": h.plugin.info.name, "options": options}, engine=engine)
    settings["source"]["on_quarantine"] = "errors"
    return settings, options


def _writable(h: Harness) -> Callable[[list[Row], Options], None]:
    """The setup's write_input; the scenario skips when it gives none."""
    write = h.plugin.setup.write_input
    h.require(write, "the setup gives no write_input to put rows in place", author_can_fix=True)
    assert write is not None
    return write


def _text_cells(rows: list[dict]) -> list[dict]:
    return checks.text_rows(rows)


def test_source_contract(h: Harness, plugin_info) -> None:
    checks.contract(h)


def test_source_empty_input(h: Harness, plugin_info) -> None:
    write_input = _writable(h)
    settings, options = _pipeline(h)
    write_input([], options)
    result = checks.empty_run(h, settings)
    if result.summary.rows_read:
        h.fail("source-empty", f"an empty input gave {result.summary.rows_read} records")


def test_source_round_trip(h: Harness, plugin_info) -> None:
    """Every row arrives once, in order, with its values; each is stored in the Landscape (class 16)."""
    write_input = _writable(h)
    rows = generic_rows(17)
    settings, options = _pipeline(h)
    write_input(rows, options)
    result = h.run(settings)
    h.check(result)
    checks.same_rows(h, "source-rows", read_jsonl(h.sink_path("main")), rows, "rows through the source")
    stored = result.records().rows
    if len(stored) != len(rows) or any(r.quarantined for r in stored):
        h.fail("source-rows-stored", f"{len(rows)} good rows should be stored, found {len(stored)}", stored[:10])


ENGINE_QUARANTINE = "value cannot be recorded canonically"
"""How the engine's reason begins when it quarantines a row a source yielded (a NaN, an unsafe integer)."""


def test_source_quarantine(h: Harness, plugin_info) -> None:
    """Every record is accounted for: each good one a row, each bad one quarantined with its reason, counted
    exactly; none dropped, and the run does not crash (classes 18, 24)."""
    setup = h.plugin.setup
    h.require(
        setup.bad_input is not None and setup.write_raw_input, "the setup gives no bad_input", author_can_fix=True
    )
    h.require(
        setup.bad_input_bad_records is not None,
        "the setup does not say how many bad records its bad_input holds (PluginSetup.bad_input_bad_records), so "
        "a record the source drops cannot be told from one it never had",
        author_can_fix=True,
    )
    good, bad = setup.bad_input_good_rows, setup.bad_input_bad_records or 0
    settings, options = _pipeline(h)
    assert setup.write_raw_input is not None and setup.bad_input is not None
    setup.write_raw_input(setup.bad_input, options)
    result = h.run(settings)
    h.check(result)
    outcomes = {o.token_id: o for o in result.records().outcomes}
    quarantined = [o for o in outcomes.values() if o.outcome == TokenOutcome.QUARANTINED]
    completed = [o for o in outcomes.values() if o.outcome == TokenOutcome.COMPLETED]
    counts = (
        f"bad_input holds {good + bad} records ({good} good, {bad} bad); {len(completed)} became rows and "
        f"{len(quarantined)} were quarantined"
    )
    if len(completed) + len(quarantined) < good + bad:
        h.fail(
            "records-dropped",
            f"{counts}: {good + bad - len(completed) - len(quarantined)} record(s) vanished with no trace in the "
            "audit; a source must yield Quarantine(raw, reason) for every record it cannot read, never skip it",
            list(outcomes.values()),
        )
    if len(completed) != good or len(quarantined) != bad:
        h.fail("quarantine", f"{counts}, expected exactly {good} and {bad}", list(outcomes.values()))
    unexplained = [o for o in quarantined if not o.reason_json]
    if unexplained:
        h.fail("quarantine-reason", "quarantined records must carry their reason", unexplained)
    h.require(
        any(ENGINE_QUARANTINE not in (o.reason_json or "") for o in quarantined),
        "every bad record of bad_input was quarantined by the engine (values it cannot record, such as NaN), so "
        "the source's own handling of bad records went untested: add records the source itself must reject, "
        "such as a malformed line of its format",
        author_can_fix=True,
    )


def test_source_recovery(h: Harness, plugin_info) -> None:
    """Killed while reading: resume re-reads, skips what is recorded, and finishes with each row once."""
    write_input = _writable(h)
    rows = generic_rows(40)
    run_id = f"kill-{h.scenario}"
    kill = {"kind": "source", "name": h.plugin.info.name, "method": "load", "n": 25}
    with checks.recovery_proxy(h) as proxy:
        settings, options = _pipeline(h, "killed", write_batch_rows=5, checkpoint_every_rows=10)
        write_input(rows, options)
        if proxy is not None:
            proxy.clear()  # what setting up the input sent is not the plugin's
        if h.run_killed(settings, kill, run_id) == 0:
            h.fail("kill-point", "the source never yielded its 25th record")
        resumed = h.resume(run_id, settings)
        h.check(resumed)
        checks.wire_across_resume(h, proxy, settings)
    checks.same_rows(
        h, "resume", read_jsonl(h.sink_path("main")), rows, "the rows after a SIGKILL at record 25", per_cause=True
    )


def _with_rows(h: Harness) -> dict:
    write_input = _writable(h)
    settings, options = _pipeline(h)
    write_input(generic_rows(6), options)
    return settings


def test_source_call_linkage(h: Harness, plugin_info) -> None:
    checks.call_linkage(h, _with_rows)


def test_source_sdk_failure(h: Harness, plugin_info) -> None:
    checks.sdk_failure(h, _with_rows)


def test_source_audit_refused(h: Harness, plugin_info) -> None:
    checks.audit_refused(h, _with_rows)


def test_source_secrets(h: Harness, plugin_info) -> None:
    settings, options = _pipeline(h)
    if h.plugin.setup.write_input:
        h.plugin.setup.write_input(generic_rows(5), options)
    checks.secrets_stay_out(h, settings, options)
