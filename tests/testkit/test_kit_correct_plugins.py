"""The kit passes correct plugins: every scenario that applies passes, the rest skip with a reason, the
meta-check passes. And its strictness: `--elspeth-strict` fails a skip the author could fix, an opt-out
needs a written reason."""

from __future__ import annotations

import pytest

from .conformance_runs import install, run_kit, write_setups

pytest_plugins = ("pytester",)


def test_correct_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    install(pytester, monkeypatch, "jsonl_source")
    write_setups(pytester, {"source:sample_jsonl": "setups.jsonl_source()"})
    run = run_kit(pytester, "source:sample_jsonl")
    run.assert_clean(
        {
            "sample_jsonl": {
                "test_source_contract",
                "test_source_empty_input",
                "test_source_round_trip",
                "test_source_quarantine",
                "test_source_recovery",
            }
        }
    )


def test_correct_sinks(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, upstream: str) -> None:
    install(pytester, monkeypatch, "append_sink", "webhook_sink")
    write_setups(
        pytester,
        {"sink:sample_append": "setups.append_sink()", "sink:sample_webhook": f"setups.webhook_sink({upstream!r})"},
    )
    run = run_kit(pytester, "sink:sample_append", "sink:sample_webhook")
    files = {
        "test_sink_contract",
        "test_sink_empty_input",
        "test_sink_multi_write",
        "test_sink_recovery_mid_write",
        "test_sink_recovery_after_flush",
    }
    run.assert_clean(
        {
            "sample_append": files,
            "sample_webhook": files | {"test_sink_call_linkage", "test_sink_sdk_failure", "test_sink_audit_refused"},
        }
    )


def test_correct_sinks_that_cannot_resume(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without 'resumable' the recovery scenarios pass when the engine refuses to resume the killed run: for
    an appending sink, and for one that rewrites its whole output at every flush."""
    install(pytester, monkeypatch, "fresh_file_sink", "json_document_sink")
    write_setups(
        pytester,
        {
            "sink:sample_fresh_file": "setups.append_sink()",
            "sink:sample_json_document": "setups.json_document_sink()",
        },
    )
    run = run_kit(pytester, "sink:sample_fresh_file", "sink:sample_json_document")
    scenarios = {
        "test_sink_contract",
        "test_sink_empty_input",
        "test_sink_multi_write",
        "test_sink_recovery_mid_write",
        "test_sink_recovery_after_flush",
    }
    run.assert_clean({"sample_fresh_file": scenarios, "sample_json_document": scenarios})


def test_correct_transform(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str) -> None:
    install(pytester, monkeypatch, "http_transform")
    write_setups(pytester, {"transform:sample_http": f"setups.http_transform({quiet_upstream!r})"})
    run = run_kit(pytester, "transform:sample_http")
    run.assert_clean(
        {
            "sample_http": {
                "test_transform_contract",
                "test_transform_empty_input",
                "test_transform_deterministic",
                "test_transform_call_linkage",
                "test_transform_sdk_failure",
                "test_transform_audit_refused",
                "test_transform_recovery",
                "test_transform_secrets",
            }
            | run.concurrency_if_run("sample_http")
        }
    )


def test_correct_transform_fetching_with_urllib(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    """Its connections are watched in every scenario run in the kit's process; it declares them and records
    each one, so every scenario passes (as the undeclared variant in test_kit_catches_bugs does not)."""
    install(pytester, monkeypatch, "http_fetch")
    write_setups(pytester, {"transform:sample_http_fetch": f"setups.http_fetch({quiet_upstream!r})"})
    run = run_kit(pytester, "transform:sample_http_fetch")
    run.assert_clean(
        {
            "sample_http_fetch": {
                "test_transform_contract",
                "test_transform_empty_input",
                "test_transform_deterministic",
                "test_transform_call_linkage",
                "test_transform_sdk_failure",
                "test_transform_recovery",
                "test_transform_audit_refused",
            }
            | run.concurrency_if_run("sample_http_fetch")
        }
    )


def test_correct_aggregate_needs_no_setup(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    install(pytester, monkeypatch, "batch_sum")
    run = run_kit(pytester, "aggregate:sample_batch_sum")
    run.assert_clean(
        {
            "sample_batch_sum": {
                "test_aggregate_contract",
                "test_aggregate_empty_input",
                "test_aggregate_batch_state",
                "test_aggregate_cardinality",
                "test_aggregate_recovery_half_full_buffer",
            }
        }
    )


def test_correct_aggregates_hold_to_their_cardinality(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zero, empty and false values are no trouble to a declared group-by, nor to a per-row enrichment, a
    per-batch sum, a dedupe by one field or of whole rows that declare nothing (their rule inferred from the
    ordinary rows); a filter whose ordinary rows all pass is not taken for one output per input, nor a top
    three for one output per group: they skip, saying why and asking for a declaration."""
    modules = ("group_count", "aggregate_enrich", "batch_sum", "aggregate_dedupe", "aggregate_distinct_rows")
    install(pytester, monkeypatch, *modules, "aggregate_filter", "aggregate_top_three")
    plugins = ("sample_group_count", "sample_enrich", "sample_batch_sum", "sample_dedupe", "sample_distinct_rows")
    scenario = "test_aggregate_cardinality"
    run = run_kit(
        pytester, *(f"aggregate:{p}" for p in (*plugins, "sample_keep_set", "sample_top_three")), only=scenario
    )
    for plugin in plugins:
        assert run.outcomes(plugin) == {scenario: "passed"}, (plugin, run.tail)
    reason = run.skip_reasons("sample_keep_set")[scenario]
    assert "declares no cardinality and no simple rule" in reason, reason
    assert "its outputs are its own input rows (or parts of them), as a filter's are" in reason, reason
    reason = run.skip_reasons("sample_top_three")[scenario]
    assert "(inputs -> outputs per batch: 4 -> 3, 4 -> 3, 4 -> 3, 4 -> 3)" in reason, reason
    strict = run_kit(pytester, "aggregate:sample_keep_set", only=scenario, options=("--elspeth-strict",))
    strict.assert_caught(scenario, "sample_keep_set", "aggregate-cardinality-undeclared")


def test_no_false_positives_over_every_installed_plugin(pytester: pytest.Pytester) -> None:
    """The whole suite over every plugin installed in this environment, from an empty directory, as a user
    would first run it: nothing fails (a plugin whose setup lives in its own conftest.py skips what it
    cannot run without one)."""
    run = run_kit(pytester)
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("passed", 0) > 1, run.tail
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0, run.stdout[-10000:]
    assert run.cases["test_conformance_suite_complete"].outcome == "passed"


def test_plugin_without_a_setup_skips_what_it_cannot_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The correct transform installed but run where its setup is not (its `url` option has no default):
    what needs options skips and says so, as what needs a service does."""
    install(pytester, monkeypatch, "http_transform")
    run = run_kit(pytester, "transform:sample_http")
    run.assert_clean({"sample_http": {"test_transform_contract"}})
    reasons = run.skip_reasons("sample_http")
    assert "the plugin has required options (url) and no setup" in reasons["test_transform_empty_input"]
    assert "names no service" in reasons["test_transform_call_linkage"]
