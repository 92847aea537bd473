"""The concurrency scenario: a transform with external calls run one row at a time and with rows in flight
together, behind latency and faults. A correct plugin passes; one that records a late answer under another
row's state fails (test_kit_catches_bugs, class 21); plugins that are not thread-safe fail once the engine
runs rows in flight together (until then the scenario skips, saying so, and these tests are xfail). And the
comparison of the two runs, on data whose answer is known."""

from __future__ import annotations

import attrs
import pytest

from elspeth_testkit.concurrency import RunView, _Call, _peak, by_source_row, calls_elsewhere, expected_output

from .conformance_runs import ENGINE_RAN_ONE_ROW_AT_A_TIME, install, run_kit, write_setups

pytest_plugins = ("pytester",)

SCENARIO = "test_transform_concurrency"


def test_a_correct_transform_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    install(pytester, monkeypatch, "http_transform")
    write_setups(pytester, {"transform:sample_http": f"setups.http_transform({quiet_upstream!r})"})
    run = run_kit(pytester, "transform:sample_http", only=SCENARIO)
    outcome = run.outcomes("sample_http")[SCENARIO]
    if run.ran_rows_in_flight("sample_http"):
        assert outcome == "passed", run.tail
    else:
        assert outcome == "skipped", run.tail
        reason = run.skip_reasons("sample_http")[SCENARIO]
        assert "both runs passed the time, linkage and output checks" in reason, reason


def test_a_transform_without_external_calls_skips_saying_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(pytester, monkeypatch, "transform_mutates_input")
    run = run_kit(pytester, "transform:sample_mutating", only=SCENARIO)
    reason = run.skip_reasons("sample_mutating")[SCENARIO]
    assert "declares no external calls, so the engine runs it one row at a time" in reason, reason


NOT_THREAD_SAFE = [
    # The output of one row carries the fields of another: compared with the serial run's, row by row.
    pytest.param("http_shared_row", "transform:sample_http_shared_row", ("concurrency-outputs-changed",), id="row"),
    # One row's call under another row's state: later than it opened (time), among its calls (linkage), or,
    # when that row had already finished, refused by the engine, which fails the run.
    pytest.param(
        "http_shared_ctx",
        "transform:sample_http_shared_ctx",
        ("call-outside-state", "call-other-row", "run-status"),
        id="ctx",
    ),
]


@pytest.mark.parametrize(("module", "plugin", "invariants"), NOT_THREAD_SAFE)
def test_a_plugin_that_is_not_thread_safe_fails(
    module: str,
    plugin: str,
    invariants: tuple[str, ...],
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    quiet_upstream: str,
) -> None:
    install(pytester, monkeypatch, module)
    write_setups(pytester, {plugin: f"setups.http_transform({quiet_upstream!r})"})
    name = plugin.partition(":")[2]
    run = run_kit(pytester, plugin, only=SCENARIO)
    if not run.ran_rows_in_flight(name):
        # One row at a time such a plugin is correct, and passes every check the scenario can make.
        assert ENGINE_RAN_ONE_ROW_AT_A_TIME in run.skip_reasons(name)[SCENARIO]
        pytest.xfail("the engine runs a transform's rows one at a time, whatever its concurrency setting")
    text = run.cases[f"{SCENARIO}[{name}]"].text
    caught = next((i for i in invariants if f"[{i}]" in text), invariants[0])
    run.assert_caught(SCENARIO, name, caught)
    if caught == "run-status":
        assert "which is not open in run" in text, text
    print(text)  # shown with -s: the message a plugin author would read


# ---------------------------------------------------------------- the comparison, on known data


def _view(calls: dict[int, list[tuple[str, str]]], sink_rows: dict[str, dict[int, int]] | None = None) -> RunView:
    made = {
        row: [_Call(100 + row, i, row, status, request) for i, (request, status) in enumerate(pairs)]
        for row, pairs in calls.items()
    }
    faulted = frozenset(r for r, pairs in calls.items() if any(status == "error" for _, status in pairs))
    return RunView(made, faulted, sink_rows or {}, 1)


def test_a_call_holding_another_rows_request_is_found() -> None:
    serial = _view({0: [("a", "ok")], 1: [("b", "ok")], 2: [("c", "ok")], 3: [("d", "ok")]})
    # Row 1 holds row 0's request and its own; row 0 none; row 3 a request never seen (a nonce: not judged).
    concurrent = _view({1: [("a", "ok"), ("b", "ok")], 2: [("c", "ok")], 3: [("d2", "ok")]})
    elsewhere, bereft = calls_elsewhere(serial, concurrent)
    assert [(call.row_id, call.request_hash, rows) for call, rows in elsewhere] == [(1, "a", {0})]
    assert bereft == [0]


def test_rows_a_fault_reached_and_shared_requests_are_not_judged() -> None:
    # Rows 0 and 1 make the same request (row-independent): either may hold it.
    serial = _view({0: [("same", "ok")], 1: [("same", "ok")], 2: [("c", "error"), ("c", "ok")]})
    concurrent = _view({0: [("same", "ok"), ("same", "ok")], 1: [("x", "error")]})
    elsewhere, bereft = calls_elsewhere(serial, concurrent)
    assert elsewhere == []
    assert bereft == []  # row 2 recorded nothing, but a fault reached it in the serial run


def test_rows_handed_the_same_input_may_answer_each_other() -> None:
    """A plugin may ask once for two equal rows (a cache): which of them holds the call is not judged."""
    serial = _view({0: [("a", "ok")], 1: [], 2: [("c", "ok")]})
    serial = attrs.evolve(serial, inputs={0: "same", 1: "same", 2: "other"})
    concurrent = _view({1: [("a", "ok")], 2: [("c", "ok")]})
    assert calls_elsewhere(serial, concurrent) == ([], [])


def test_sink_rows_are_grouped_by_source_row_in_source_order() -> None:
    lines = [{"v": "a"}, {"v": "c1"}, {"v": "c2"}, {"v": "d"}]
    assert by_source_row(lines, {3: 1, 2: 2, 0: 1}) == {0: [{"v": "a"}], 2: [{"v": "c1"}, {"v": "c2"}], 3: [{"v": "d"}]}
    assert by_source_row(lines, {0: 1}) is None


def test_the_expected_output_takes_the_concurrent_runs_rows_where_a_fault_reached() -> None:
    serial = [{"r": 0}, {"r": 1}, {"r": 2}]
    concurrent = [{"r": 0}, {"r": "1-other"}, {"r": 2}, {"r": 3}]
    # Row 3 went to this sink only in the concurrent run (a fault sent it here); row 1 a fault reached too.
    expected = expected_output(serial, {0: 1, 1: 1, 2: 1}, concurrent, {0: 1, 1: 1, 2: 1, 3: 1}, frozenset({1, 3}))
    assert expected == concurrent
    # Without faults the serial run's rows are the answer, and any other order is wrong.
    assert expected_output(serial, {}, serial[::-1], {}, frozenset()) == serial


def test_peak_counts_states_open_at_once() -> None:
    def state(start: float, end: float | None) -> tuple[float, float | None]:
        return start, end

    assert _peak([state(0, 1), state(1, 2), state(2, 3)]) == 1  # one closes as the next opens
    assert _peak([state(0, 3), state(1, 2), state(1.5, 4), state(5, 6)]) == 3
    assert _peak([]) == 0
