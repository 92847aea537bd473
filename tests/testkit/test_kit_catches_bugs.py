"""For every bug class a plugin can have, a sample plugin with that bug (and only that bug) fails the kit,
in the scenario made for it, with a message naming the invariant it breaks.

The other classes are the engine's alone; no plugin can cause them through the plugin API:
- 8 (states left open, batches left draft/executing): node_states and batch statuses are opened and closed
  by the engine around every plugin call, whatever the plugin returns or raises.
- 9 (aggregation flush outside the audit): the engine owns buffering, triggers and batch status; an
  aggregate only sees the rows of a batch the engine has already recorded.
- 10 (pending/failed external batch loses rows): the engine records members and keeps the Pending
  checkpoint; a plugin only hands back a checkpoint, which the pending scenario drives through resume.
- 12 (recovery skips rows routed to a later or failed sink): what is unfinished is computed by the engine
  from token outcomes per sink; a sink never sees other sinks' rows or the recovery boundary.
- 15 (terminal-outcome list drifts from the enum): outcomes are recorded by the engine only.
- 16 (source payload not persisted): the engine stores every row a source yields before anything else.

Class 26 (a job submitted again after a resume) needs a job service: its samples run in
test_kit_recovery_wire.py.

Class 17 a plugin can attempt, but the engine stops it: whatever non-canonical value a plugin hands over
(a source row holding NaN, a transform's or aggregate's output, a call body) is quarantined, turned into an
Error or stored as text, never written or hashed as NaN. So a source yielding NaN breaks no invariant and
passes the kit; `test_nan_from_a_source_is_quarantined_by_the_engine` shows where it ends up.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from attrs import frozen

from .conformance_runs import install, run_kit, write_setups

pytest_plugins = ("pytester",)

NOT_OPEN = r"under node_state \d+, which is not open in run"


@frozen
class Bug:
    bug_class: str
    module: str
    plugin: str
    setup: str | None
    scenario: str
    invariant: str
    message: str = ""
    """A regex the failure's text must also match."""

    @property
    def name(self) -> str:
        return self.plugin.partition(":")[2]


SINK, TRANSFORM, WEBHOOK, SOURCE = (
    "setups.append_sink()",
    "setups.http_transform(UPSTREAM)",
    "setups.webhook_sink(UPSTREAM)",
    "setups.jsonl_source()",
)
# fmt: off
BUGS = [
    Bug("1", "sink_rewrites", "sink:sample_rewriting_sink", SINK,
        "test_sink_multi_write", "sink-overwrites", r"\d+ missing"),
    Bug("2", "sink_last_batch_hash", "sink:sample_last_batch_hash", SINK,
        "test_sink_multi_write", "artifact-bytes"),
    Bug("3", "http_unrecorded", "transform:sample_http_unrecorded", TRANSFORM,
        "test_transform_call_linkage", "call-unrecorded", r"GET /health"),
    Bug("3", "http_fetch_unrecorded", "transform:sample_http_fetch_unrecorded", "setups.http_fetch(UPSTREAM)",
        "test_transform_deterministic", "connection-unrecorded", r"opened 12 connection\(s\) .*recorded no call"),
    Bug("4", "http_stale_ctx", "transform:sample_http_stale_ctx", TRANSFORM,
        "test_transform_call_linkage", "run-status", NOT_OPEN),
    Bug("5", "webhook_late_record", "sink:sample_webhook_late", WEBHOOK,
        "test_sink_call_linkage", "run-status", r"failed in flush\(\): .*" + NOT_OPEN),
    Bug("6", "http_metadata_only", "transform:sample_http_metadata_only", TRANSFORM,
        "test_transform_call_linkage", "call-metadata-only", r"matched by its path only"),
    Bug("7", "http_error_escapes", "transform:sample_http_error_escapes", TRANSFORM,
        "test_transform_sdk_failure", "call-error-unrecorded", r"failed on the wire .* no calls row"),
    Bug("7", "http_error_as_ok", "transform:sample_http_error_as_ok", TRANSFORM,
        "test_transform_sdk_failure", "call-error-unrecorded", r"has status 'ok' and no error"),
    Bug("11", "sink_flush_not_durable", "sink:sample_flush_not_durable", SINK,
        "test_sink_recovery_mid_write", "artifact-bytes", r"after the SIGKILL: .*artifact"),
    Bug("13", "aggregate_running_total", "aggregate:sample_running_total", None,
        "test_aggregate_recovery_half_full_buffer", "resume-changed", r"against an uninterrupted run's"),
    Bug("25", "aggregate_skips_zero_total", "aggregate:sample_skips_zero_total", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"shows? one output per batch.*'amount' 0\.0 in every row\): its 4 input rows should give 1 output\(s\)"
        r".*it gave 0"),
    Bug("25", "aggregate_group_drops_falsy_key", "aggregate:sample_group_totals_drops_falsy", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"one output per group of rows sharing 'group'.*'group' \"\" in every row.*should give 1.*gave 0; "
        r"4 input row\(s\) no output accounts for"),
    Bug("25", "aggregate_group_drops_falsy_value", "aggregate:sample_group_totals_drops_zero", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"'amount' 0\.0 in every row\): its 4 input rows should give 3 output\(s\).*gave 0"),
    Bug("25", "aggregate_enrich_skips_empty", "aggregate:sample_enrich_skips_empty",
        'elspeth_testkit.PluginSetup(options=lambda w, e: {"field": "amount"})',
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"show one output per input row.*'amount' 0\.0 in every row.*should give 4 .*gave 0"),
    Bug("25", "group_count_drops_falsy_key", "aggregate:sample_group_drops_falsy_declared", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"the engine failed the batch, aggregate-cardinality: aggregate:under_test declares one output per group "
        r"of rows sharing 'group', so its 4 input rows should give 1 output\(s\), but process_batch\(\) returned 0"),
    Bug("25", "aggregate_enrich_skips_empty", "aggregate:sample_enrich_skips_empty", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"show one output per input row.*'name' \"\" in every row.*should give 4 .*gave 0"),
    Bug("25", "aggregate_dedupe_merges_falsy", "aggregate:sample_dedupe_merges_falsy", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"one output per group of rows sharing 'group'.*'group' \"\", 0, false among ordinary values.*should "
        r"give 4 .*gave 3"),
    Bug("25", "aggregate_group_skips_first_row", "aggregate:sample_group_skips_first_row", None,
        "test_aggregate_cardinality", "aggregate-cardinality",
        r"one output per group of rows sharing 'group'.*should give 4 .*gave 3; 1 input row\(s\) no output"),
    Bug("14", "sink_truncates_on_resume", "sink:sample_truncates_on_resume", SINK,
        "test_sink_recovery_after_flush", "resume-missing", r"[1-9]\d* missing"),
    Bug("14", "sink_keeps_tail", "sink:sample_keeps_tail", SINK,
        "test_sink_recovery_mid_write", "resume-duplicated", r"[1-9]\d* duplicated"),
    Bug("18", "source_raises", "source:sample_raising_source", SOURCE,
        "test_source_quarantine", "run-status", r"failed while reading"),
    Bug("19", "http_logs_key", "transform:sample_http_logs_key", TRANSFORM,
        "test_transform_secrets", "secret-leak", r"'api_key' \(or an encoding of it\) appears in: the run's output"),
    Bug("20", "http_fetch_undeclared", "transform:sample_http_fetch_undeclared", "setups.http_fetch(UPSTREAM)",
        "test_transform_deterministic", "calls-undeclared",
        r"opened 12 connection\(s\) .*first to 127\.0\.0\.1:\d+.*does not declare the `external_calls`"),
    Bug("21", "http_late_worker", "transform:sample_http_late_worker", TRANSFORM,
        "test_transform_concurrency", "call-outside-state",
        r"POST /rows/\d+ -> 200.*hangs off node_state \d+ \(\S+ process, row \d+, token \d+, attempt \d\).*"
        r"sent \d\.\d{3} s before that state opened\. At that moment the open state\(s\) of \S+ were: "
        r"node_state \d+ \(\S+ process, row \d+"),
    Bug("22", "http_swallows_audit", "transform:sample_http_swallows_audit", TRANSFORM,
        "test_transform_audit_refused", "audit-failure-ignored", r"the run ended 'completed'"),
    Bug("23", "transform_mutates_input", "transform:sample_mutating", None,
        "test_transform_deterministic", "input-mutated", r"process\(\) changed 12 row\(s\) .*field 'fields'"),
    Bug("23", "sink_mutates_rows", "sink:sample_trimming_sink", SINK,
        "test_sink_multi_write", "input-mutated", r"write\(\) changed 23 row\(s\) .*field 'flag'"),
    Bug("24", "source_skips_bad_lines", "source:sample_skipping_source", SOURCE,
        "test_source_quarantine", "records-dropped", r"4 bad\); 3 became rows and 3 were quarantined: 1 record"),
]
# fmt: on


@pytest.mark.parametrize("bug", [pytest.param(b, id=f"class{b.bug_class}-{b.module}") for b in BUGS])
def test_buggy_plugin_fails_naming_the_invariant(
    bug: Bug, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    install(pytester, monkeypatch, bug.module)
    if bug.setup is not None:
        write_setups(pytester, {bug.plugin: bug.setup.replace("UPSTREAM", repr(quiet_upstream))})
    run = run_kit(pytester, bug.plugin, only=bug.scenario)
    text = run.assert_caught(bug.scenario, bug.name, bug.invariant)
    assert re.search(bug.message, text, re.DOTALL), text


def test_a_scenario_where_every_row_errored_is_not_a_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transform fed only rows it answers Error to exercised nothing, and its planted non-determinism would
    pass: the scenario skips saying to give `input_rows` (a failure under --elspeth-strict); given them, the
    determinism scenario catches the bug."""
    install(pytester, monkeypatch, "transform_needs_text")
    scenario = "test_transform_deterministic"
    run = run_kit(pytester, "transform:sample_needs_text", only=scenario)
    reason = run.skip_reasons("sample_needs_text")[scenario]
    assert "answered Error every time it was handed rows" in reason and "PluginSetup.input_rows" in reason, reason
    assert "field 'text' (option `field`) is not text" in reason, reason
    strict = run_kit(pytester, "transform:sample_needs_text", only=scenario, options=("--elspeth-strict",))
    strict.assert_caught(scenario, "sample_needs_text", "rows-all-errored")
    write_setups(pytester, {"transform:sample_needs_text": "elspeth_testkit.PluginSetup(input_rows=setups.TEXT_ROWS)"})
    fed = run_kit(pytester, "transform:sample_needs_text", only=scenario)
    fed.assert_caught(scenario, "sample_needs_text", "deterministic-hashes")


def test_an_aggregate_that_errored_on_every_batch_is_not_a_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for an aggregate: the correct batch sum, told to sum a field the generic rows lack."""
    install(pytester, monkeypatch, "batch_sum")
    write_setups(
        pytester,
        {"aggregate:sample_batch_sum": 'elspeth_testkit.PluginSetup(options=lambda w, e: {"field": "weight"})'},
    )
    scenario = "test_aggregate_batch_state"
    run = run_kit(pytester, "aggregate:sample_batch_sum", only=scenario)
    reason = run.skip_reasons("sample_batch_sum")[scenario]
    assert "the aggregate answered Error every time it was handed rows in this scenario (3 times" in reason, reason
    assert "field 'weight' (option `field`) is not a number in every row" in reason, reason


def test_nan_from_a_source_is_quarantined_by_the_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Class 17: the kit passes a source that yields NaN, because the engine quarantines the row itself,
    with a reason naming the value, and the quarantine scenario's sweep finds no NaN stored anywhere."""
    install(pytester, monkeypatch, "source_yields_nan")
    write_setups(pytester, {"source:sample_nan_source": "setups.jsonl_source()"})
    run = run_kit(pytester, "source:sample_nan_source", only="test_source_quarantine")
    assert run.outcomes("sample_nan_source")["test_source_quarantine"] == "passed", run.tail
    with sqlite3.connect(run.landscape("test_source_quarantine")) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason_json FROM token_outcomes WHERE outcome = 'quarantined'")]
    assert any("value cannot be recorded canonically" in r and "nan is not a JSON number" in r for r in reasons), (
        reasons
    )
