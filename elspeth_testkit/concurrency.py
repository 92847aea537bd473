"""The concurrency scenario (DESIGN 4.7 and 5, bug class 21 and thread safety).

A transform that makes external calls runs twice over the same rows, behind the fault proxy with the same
script of latency and faults: one row at a time, then with `CONCURRENCY` rows in flight. Each run passes the
sweep and the wire check, whose time check ties every exchange to the open interval of the state its call
names (`call-outside-state`). The serial run has the faults too: there a late answer is held back until the
plugin has moved on to other work (`fault_proxy.delay(..., amid_others=...)`), so a worker that outlives a
timeout records amid another row's work, as it would in production. Then the concurrent run is compared
with the serial one:

- `call-other-row`: a call under one row's state holds a request that, in the serial run, only another row
  made; or a row that recorded calls in the serial run recorded none under its own states.
- `concurrency-outputs-*` (a transform that declares `deterministic`): every sink holds the serial run's
  rows, in source order. Rows a fault reached in either run (an ERROR call) may differ: the plugin may turn
  a fault into the row's error. What a non-deterministic transform returns is not compared.

What the concurrent run proves depends on the engine: a run whose states never overlapped exercised no rows
in flight together, and the scenario then skips, saying so, after every check above has passed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from attrs import field, frozen

from elspeth.api import Capability
from elspeth_testkit import fault_proxy
from elspeth_testkit.checks import FAULTS, same_rows, wire_matches_calls
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.harness import SCAFFOLD_SINKS, Harness, RunResult, read_jsonl

CONCURRENCY = 8
ROWS = 16
LATENCY = (0.02, 0.005, 0.035, 0.04, 0.025, 0.0, 0.015, 0.01)
"""Seconds each request waits, request by request: answers to requests sent together come back out of order."""
HOLD_OTHERS = 0.2
"""Once the stalled answer goes out, the requests then in flight wait this long more: a worker that records
it late does so while their rows are still under way, however loaded the machine."""
STALL = FAULTS["timeout"].seconds
"""How long a held or stalled request may wait: the kit's timeout fault, which setups keep their timeouts under."""
CALLS_SHOWN = 10


def script_faults(proxy: FaultProxy) -> None:
    """The same script for both runs: a 500, a stalled answer, a 429, and latency on every other request.
    The stalled answer comes after 0.25 s and, once that is past, only when another request is in flight
    (the plugin gave up on it and moved on), or after STALL s more: a client that times out hangs up, a
    worker left waiting gets it amid other work, which the proxy holds HOLD_OTHERS s more."""
    proxy.script(fault_proxy.status(500), nth=2)
    proxy.script(fault_proxy.delay(0.25, amid_others=STALL, hold_others=HOLD_OTHERS), nth=3)
    proxy.script(fault_proxy.status(429, retry_after=0), nth=5)
    proxy.script(fault_proxy.latency(*LATENCY))


@frozen
class _Call:
    state_id: int
    call_index: int
    row_id: int
    status: str
    request_hash: str

    def brief(self, serial_rows: set[int] | None = None) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "state_id": self.state_id,
            "call_index": self.call_index,
            "row_id": self.row_id,
            "status": self.status,
            "request_hash": self.request_hash[:12],
        }
        if serial_rows is not None:
            shown["serial_run_rows"] = ", ".join(map(str, sorted(serial_rows)))
        return shown


@frozen
class RunView:
    """What the comparison reads of one run: the calls of the plugin's node by source row, the rows a fault
    reached, how many of each row's tokens each sink got, the most states of the node open at once, and the
    hash of what the node was handed for each source row."""

    calls: dict[int, list[_Call]]
    faulted: frozenset[int]
    sink_rows: dict[str, dict[int, int]]
    peak: int
    inputs: dict[int, str | None] = field(factory=dict)

    @classmethod
    def of(cls, result: RunResult, plugin: str) -> RunView:
        records = result.records()
        nodes = {n.node_id for n in records.nodes if (n.kind, n.plugin) == ("transform", plugin)}
        row_of_token = {t.token_id: t.row_id for t in records.tokens}
        states = {s.state_id: s for s in records.states if s.node_id in nodes}
        calls: dict[int, list[_Call]] = defaultdict(list)
        for c in sorted(records.calls, key=lambda c: (c.created_at, c.state_id, c.call_index)):
            state = states.get(c.state_id)
            row_id = None if state is None or state.token_id is None else row_of_token.get(state.token_id)
            if row_id is not None:
                calls[row_id].append(_Call(c.state_id, c.call_index, row_id, c.status, c.request.hash or ""))
        faulted = frozenset(r for r, made in calls.items() if any(c.status == "error" for c in made))
        sink_rows: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for o in records.outcomes:
            row_id = row_of_token.get(o.token_id)
            if o.sink_node_id is not None and row_id is not None:
                sink_rows[o.sink_node_id][row_id] += 1
        process = [s for s in states.values() if s.operation == "process"]
        inputs = {row_of_token.get(s.token_id) if s.token_id is not None else None: s.input_hash for s in process}
        return cls(
            dict(calls),
            faulted,
            sink_rows,
            _peak([(s.started_at, s.ended_at) for s in process]),
            {r: h for r, h in inputs.items() if r is not None},
        )


def _peak(intervals: list[tuple[float, float | None]]) -> int:
    """The most of these (opened, closed) intervals open at one moment (one that closes as another opens does
    not overlap it)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals if end is not None])
    peak = open_now = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def concurrency(h: Harness, build: Callable[[Harness, int], dict[str, Any]]) -> None:
    """`build(harness, concurrency)` gives the settings of a pipeline over the same rows at that concurrency."""
    kind = h.plugin.info.kind
    h.require(
        h.plugin.has(Capability.EXTERNAL_CALLS),
        f"the {kind} declares no external calls, so the engine runs it one row at a time",
    )
    with h.proxied() as proxy:
        runs = {}
        for name, rows_in_flight in (("serial", 1), ("concurrent", CONCURRENCY)):
            run_dir = h.workdir / name
            run_dir.mkdir()
            harness = Harness(h.plugin, f"{h.scenario}[{name}]", run_dir, h.registry, proxy.url, h.strict)
            settings = build(harness, rows_in_flight)
            proxy.clear()
            script_faults(proxy)
            result = harness.run(settings)
            harness.check(result)
            wire_matches_calls(harness, proxy, result)
            runs[name] = (harness, RunView.of(result, h.plugin.info.name))
    (serial_h, serial), (concurrent_h, concurrent) = runs["serial"], runs["concurrent"]
    at = f"at concurrency {CONCURRENCY} ({concurrent.peak} row(s) in flight at most)"
    calls_of_their_rows(concurrent_h, serial, concurrent, at)
    if h.plugin.has(Capability.DETERMINISTIC):
        faulted = serial.faulted | concurrent.faulted
        for sink in SCAFFOLD_SINKS:
            node, got = f"sink:{sink}", read_jsonl(concurrent_h.sink_path(sink))
            expected = expected_output(
                read_jsonl(serial_h.sink_path(sink)),
                serial.sink_rows.get(node, {}),
                got,
                concurrent.sink_rows.get(node, {}),
                faulted,
            )
            if expected is None:
                continue
            left_out = f"; rows a fault reached are left out: {', '.join(map(str, sorted(faulted)))}" if faulted else ""
            same_rows(
                concurrent_h,
                "concurrency-outputs",
                got,
                expected,
                f"sink {sink} {at}, against the serial run over the same rows and faults (a plugin that keeps "
                f"per-row state on itself or on a shared client mixes rows up when they overlap{left_out})",
                per_cause=True,
            )
    h.require(
        concurrent.peak >= 2,
        f"the engine ran the {kind} one row at a time although concurrency {CONCURRENCY} was set (no two of its "
        "states were open at once), so rows in flight together were not exercised; both runs passed the time, "
        "linkage and output checks",
    )


def calls_elsewhere(serial: RunView, concurrent: RunView) -> tuple[list[tuple[_Call, set[int]]], list[int]]:
    """The concurrent run's calls that hold a request only other rows made in the serial run (each with
    those rows), and the rows that recorded calls in the serial run but none in the concurrent one. Not
    judged: rows a fault reached (their calls may have failed before any was made), and rows handed the
    same input as another (a plugin may rightly answer one from what it asked for the other)."""
    owners: dict[str, set[int]] = defaultdict(set)
    for row_id, made in serial.calls.items():
        for call in made:
            owners[call.request_hash].add(row_id)
    twins = Counter(h for h in serial.inputs.values() if h is not None)

    def alike(row: int, others: set[int]) -> bool:
        mine = serial.inputs.get(row)
        return mine is not None and any(serial.inputs.get(o) == mine for o in others)

    elsewhere = [
        (call, owners[call.request_hash])
        for made in concurrent.calls.values()
        for call in made
        if owners.get(call.request_hash)
        and call.row_id not in owners[call.request_hash]
        and not alike(call.row_id, owners[call.request_hash])
    ]
    faulted = serial.faulted | concurrent.faulted
    bereft = sorted(
        r
        for r in serial.calls
        if r not in faulted and not concurrent.calls.get(r) and twins[serial.inputs.get(r) or ""] < 2
    )
    return elsewhere, bereft


def calls_of_their_rows(h: Harness, serial: RunView, concurrent: RunView, at: str) -> None:
    """`call-other-row`: each row's calls are under that row's states (DESIGN 4.7), judged against the serial
    run. Only what can be compared whatever the plugin returns: equal requests (a request that holds a
    timestamp or a random id matches nothing, and is not judged) and whether a row recorded calls at all."""
    elsewhere, bereft = calls_elsewhere(serial, concurrent)
    if not elsewhere and not bereft:
        return
    found = []
    if elsewhere:
        call, rows = elsewhere[0]
        found.append(
            f"{len(elsewhere)} call(s) hold a request that another row made in the serial run (the first: "
            f"call_index {call.call_index} of node_state {call.state_id}, row {call.row_id}, holds the request of "
            f"row {', '.join(map(str, sorted(rows)))})"
        )
    if bereft:
        found.append(
            f"{len(bereft)} row(s) recorded calls in the serial run but none under their own states "
            f"(the first: row {bereft[0]}, {len(serial.calls[bereft[0]])} call(s) in the serial run)"
        )
    h.fail(
        "call-other-row",
        f"{at}: {'; '.join(found)}. A call is recorded under the state of the row that made it: a plugin that "
        "keeps the ctx (or the row) on itself or on a shared client records one row's call under another's "
        "state once rows overlap. Use the ctx and the row that each process() call was handed, and keep "
        "nothing per row on the plugin.",
        [call.brief(rows) for call, rows in elsewhere[:CALLS_SHOWN]]
        + [{"row_id": r, "serial_run_calls": len(serial.calls[r]), "concurrent_run_calls": 0} for r in bereft[:5]],
    )


Lines = list[dict[str, Any]]


def by_source_row(lines: Lines, counts: dict[int, int]) -> dict[int, Lines] | None:
    """A sink's rows grouped by the source row each comes from, read in source order (`counts`: how many
    of each source row's tokens the sink got); None if the sink holds another number of rows."""
    if sum(counts.values()) != len(lines):
        return None
    groups, at = {}, 0
    for row_id in sorted(counts):
        groups[row_id] = lines[at : at + counts[row_id]]
        at += counts[row_id]
    return groups


def expected_output(
    serial: Lines,
    serial_counts: dict[int, int],
    concurrent: Lines,
    concurrent_counts: dict[int, int],
    faulted: frozenset[int],
) -> Lines | None:
    """What a sink of the concurrent run must hold: the serial run's rows, in source order, but for a row a
    fault reached, whatever the concurrent run gave it. None when that cannot be told: a sink that holds
    another number of rows than the Landscape says it was given (the sweep judges that)."""
    if not faulted:
        return serial
    reference = by_source_row(serial, serial_counts)
    own = by_source_row(concurrent, concurrent_counts)
    if reference is None or own is None:
        return None
    rows = sorted(set(reference) | set(own))
    return [line for r in rows for line in (own.get(r, []) if r in faulted else reference.get(r, []))]
