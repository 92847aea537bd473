"""What the kit does with skips: `--elspeth-strict` fails a skip the plugin's author could fix (a missing
setup, an opt-out); an opt-out is a skip that shows its written reason; one without a reason is refused."""

from __future__ import annotations

import re

import pytest

from .conformance_runs import install, run_kit, write_setups

pytest_plugins = ("pytester",)

OPT_OUT = (
    'elspeth_testkit.PluginSetup(opt_out={"test_aggregate_recovery_half_full_buffer": '
    '"the sample keeps nothing between batches, and the kill scenario is too slow for this test"})'
)


def test_strict_fails_missing_setups_and_opt_outs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    install(pytester, monkeypatch, "jsonl_source", "batch_sum")
    write_setups(pytester, {"aggregate:sample_batch_sum": OPT_OUT})
    run = run_kit(pytester, "source:sample_jsonl", "aggregate:sample_batch_sum", options=("--elspeth-strict",))
    for scenario in ("test_source_empty_input", "test_source_quarantine", "test_source_secrets"):
        text = run.assert_caught(scenario, "sample_jsonl", "strict-setup")
        assert re.search(r"strict mode: the (setup gives no|plugin has required options \(path\) and no setup)", text)
    # The opt-out is checked in the scenario's fixture: an error, which fails the run as surely.
    text = run.assert_caught(
        "test_aggregate_recovery_half_full_buffer", "sample_batch_sum", "strict-opt-out", outcome="error"
    )
    assert "the kill scenario is too slow" in text
    source = run.outcomes("sample_jsonl")
    assert source["test_source_contract"] == "passed"
    # Not the author's to fix: the source makes no external calls.
    assert source["test_source_call_linkage"] == source["test_source_sdk_failure"] == "skipped"
    assert "strict: skips for a missing setup or an opt-out fail" in run.stdout


def test_opt_out_is_a_skip_with_its_reason(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    install(pytester, monkeypatch, "batch_sum")
    write_setups(pytester, {"aggregate:sample_batch_sum": OPT_OUT})
    run = run_kit(pytester, "aggregate:sample_batch_sum")
    reason = run.skip_reasons("sample_batch_sum")["test_aggregate_recovery_half_full_buffer"]
    assert "opted out: the sample keeps nothing between batches" in reason
    run.assert_clean(
        {
            "sample_batch_sum": {
                "test_aggregate_contract",
                "test_aggregate_empty_input",
                "test_aggregate_batch_state",
                "test_aggregate_cardinality",
            }
        }
    )


def test_opt_out_without_a_written_reason_is_refused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(pytester, monkeypatch, "batch_sum")
    write_setups(
        pytester,
        {"aggregate:sample_batch_sum": 'elspeth_testkit.PluginSetup(opt_out={"test_aggregate_batch_state": "n/a"})'},
    )
    run = run_kit(pytester, "aggregate:sample_batch_sum")
    outcomes = run.outcomes("sample_batch_sum")
    assert outcomes and set(outcomes.values()) == {"error"}, outcomes
    assert "opting out of 'test_aggregate_batch_state' needs a written reason (a sentence), not 'n/a'" in run.stdout
