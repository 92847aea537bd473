"""The wire of a killed run and of its resume, held to the Landscape the resume leaves (bug classes 3, 26).

The recovery scenarios run the killed attempt in a child process and the resume in the kit's; the fault
proxy lives in the kit's process, so it sees both attempts' exchanges, and both are checked as one run:

- **the wire check** (`wire_check`), but for what the kill cut off. A call is committed as it is recorded,
  so an exchange of the killed attempt may lack its call only when the kill came between the answer and its
  record: when it ended after the last record the killed attempt made durable, or shortly before
  (`RECORD_GRACE`) for work the kill left unfinished (it started inside a state of the plugin left open).
  Any other exchange of the killed attempt without its call went unrecorded, as in any run. Exchanges that
  were recorded are matched whichever attempt made them.
- **`job-resubmitted`**: a batch that answered Pending, its checkpoint recorded, holds an external job the
  killed attempt submitted; the resume hands the checkpoint back, and the plugin must poll or collect that
  job through it, never submit it again. A submission is a non-read request (any method but GET, HEAD,
  OPTIONS, TRACE) that crossed the wire for a call recorded under one of the batch's flush states. One is
  repeated by a request of the batch's work after the resume (its polls, and the flush of a new attempt at
  its rows if a poll answered a retryable Error; a call recorded under one of them, or, unrecorded, a
  request sent while one of them was open) with the same method and either the same path or the same body
  (compared part by part, as the wire check compares bodies: multipart boundaries and JSON key order do not
  count). What the node's ordinary polls send (those before the kill, and every poll of a batch the kill
  did not leave pending) is how the plugin polls, not a submission: a path they use (one GraphQL or RPC
  endpoint for everything, say) leaves the body to decide, and a body they send decides nothing. A
  submission the service answers with the identifiers it gave the first (an idempotent create, keyed by
  the plugin) made no second job. Work the engine itself redoes after a kill (rows whose state never
  completed, a batch interrupted before its checkpoint was recorded) is no resubmission.

A batch's states are told apart by what the engine records of each execution: the node, the batch's attempt
and the hash of its members' rows (`input_hash`), which a flush and every poll of the batch share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from attrs import frozen

from elspeth.landscape.reading import BatchStatus, CallRecord, RunRecords, open_landscape
from elspeth_testkit.fault_proxy import Exchange
from elspeth_testkit.sweep import Violation
from elspeth_testkit.wire_check import Needle, WireMatch, match_wire

RECORD_GRACE = 5.0
"""Seconds before the killed attempt's last durable record within which an answer to work the kill cut off
may still have been waiting for its record (other rows in flight recorded theirs meanwhile, the plugin
records its calls when its work is done, the machine is loaded)."""
READS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that ask for something and change nothing (RFC 9110 9.2.1): never a submission."""


@frozen
class _State:
    state_id: int
    node_id: str
    operation: str
    attempt: int
    input_hash: str | None
    started_at: float
    ended_at: float | None

    def holds(self, moment: float) -> bool:
        return self.started_at <= moment and (self.ended_at is None or moment <= self.ended_at)


@frozen
class PendingBatch:
    """A batch the kill left pending with its checkpoint, and the states it had had by then."""

    batch_id: int
    node_id: str
    attempt: int
    checkpoint: str
    states: tuple[_State, ...]

    def owns(self, state: _State) -> bool:
        """A state of this batch's rows from its attempt on: its polls, and the flush of a batch the engine
        ran them again as (after a poll answered a retryable Error)."""
        last = self.states[-1]
        return (state.node_id, state.input_hash) == (last.node_id, last.input_hash) and state.attempt >= last.attempt


@frozen
class KilledRun:
    """What the Landscape held of a run just after its process was killed, read before any resume."""

    run_id: str
    started_at: float
    read_at: float
    """Every exchange of the killed attempt started before this moment, every one of the resume after."""
    last_record: float
    """The latest moment any durable record of the run names."""
    open_since: tuple[float, ...]
    """When each state of the plugin under test that the kill left open had opened: its unfinished work."""
    last_state_id: int
    pending: tuple[PendingBatch, ...]

    @classmethod
    def read(cls, url: str, run_id: str, plugin: str) -> KilledRun:
        """`plugin`: the name of the plugin under test, whose traffic the proxy carries."""
        read_at = time.time()
        with open_landscape(url) as landscape:
            records = landscape.run(run_id)
            started = records.run.started_at if records.run is not None else 0.0
            states = _states(records)
            nodes = {n.node_id for n in records.nodes if n.plugin == plugin}
            pending_batches = [
                b for b in records.batches if b.status == BatchStatus.EXECUTING and b.checkpoint_json is not None
            ]
            last_record = max([started, *_moments(records)])
        pending = []
        for batch in pending_batches:
            last = states.get(batch.flush_state_id) if batch.flush_state_id is not None else None
            if last is None or batch.checkpoint_json is None:
                continue
            had = sorted(
                (s for s in states.values() if s.state_id <= last.state_id and _same_batch(s, last)),
                key=lambda s: s.state_id,
            )
            pending.append(
                PendingBatch(batch.batch_id, batch.node_id, batch.attempt, batch.checkpoint_json, tuple(had))
            )
        return cls(
            run_id,
            started,
            read_at,
            last_record,
            tuple(s.started_at for s in states.values() if s.ended_at is None and s.node_id in nodes),
            max(states, default=0),
            tuple(pending),
        )

    def resumed_work(self, states: dict[int, _State]) -> dict[int, PendingBatch]:
        """The states after the resume of the batches left pending, by state_id (`PendingBatch.owns`)."""
        return {
            s.state_id: batch
            for s in states.values()
            if s.state_id > self.last_state_id
            for batch in self.pending
            if batch.owns(s)
        }

    def attempt_of(self, exchange: Exchange) -> str:
        return "killed" if exchange.started_at < self.read_at else "resumed"

    def cut_off(self, exchange: Exchange) -> bool:
        """Whether the kill may have come between this exchange of the killed attempt and its record."""
        if self.attempt_of(exchange) != "killed":
            return False
        if exchange.ended_at > self.last_record:
            return True
        unfinished = any(opened <= exchange.started_at for opened in self.open_since)
        return unfinished and exchange.ended_at > self.last_record - RECORD_GRACE


def _moments(records: RunRecords) -> Iterator[float]:
    """Every moment a durable record of the run names, besides its start."""
    for state in records.states:
        yield state.started_at
        if state.ended_at is not None:
            yield state.ended_at
    yield from (c.created_at for c in records.calls)
    for batch in records.batches:
        yield from (batch.created_at, batch.updated_at)
    yield from (a.created_at for a in records.artifacts)
    yield from (c.created_at for c in records.checkpoints)
    yield from (o.recorded_at for o in records.outcomes)


def _same_batch(a: _State, b: _State) -> bool:
    return a.operation in ("flush", "poll") and (a.node_id, a.attempt, a.input_hash) == (
        b.node_id,
        b.attempt,
        b.input_hash,
    )


def _states(records: RunRecords) -> dict[int, _State]:
    return {
        s.state_id: _State(s.state_id, s.node_id, s.operation, s.attempt, s.input_hash, s.started_at, s.ended_at)
        for s in records.states
    }


def compare_across_resume(
    exchanges: Iterable[Exchange],
    url: str,
    killed: KilledRun,
    payload_dir: str | Path | None = None,
    secrets: Iterable[str] = (),
) -> list[Violation]:
    """The violations of both attempts' exchanges against the Landscape of the resumed run (or of the killed
    run alone, when it was not resumed): `job-resubmitted` first, then the wire check's."""
    sent = list(exchanges)
    with open_landscape(url, payload_dir) as landscape:
        wire = match_wire(sent, landscape, killed.run_id, secrets=secrets, excused=killed.cut_off)
        states = _states(landscape.run(killed.run_id))
    writes = _Writes(
        [e for e in sent if e.method.upper() not in READS], wire, states, killed, killed.resumed_work(states)
    )
    return [v for batch in killed.pending for v in writes.resubmitted(batch)] + wire.violations


@frozen
class _Writes:
    """The non-read exchanges of both attempts, each with the state it belongs to."""

    exchanges: list[Exchange]
    wire: WireMatch
    states: dict[int, _State]
    killed: KilledRun
    resumed_work: dict[int, PendingBatch]
    """The states after the resume of the batches the kill left pending, by state_id."""

    def state_of(self, exchange: Exchange) -> _State | None:
        """The state of its call; unrecorded, the resumed work that was under way while it crossed the wire."""
        call = self.wire.calls.get(exchange.index)
        if call is not None:
            return self.states.get(call.state_id)
        if self.killed.attempt_of(exchange) == "resumed":
            return next(
                (s for i, s in self.states.items() if i in self.resumed_work and s.holds(exchange.started_at)), None
            )
        return None

    def polling(self, node_id: str) -> list[Exchange]:
        """What the node sent while polling in the ordinary way (any poll but those resumed): what a
        resumed poll may send again."""
        found = []
        for exchange in self.exchanges:
            state = self.state_of(exchange)
            if (
                state
                and state.node_id == node_id
                and state.operation == "poll"
                and state.state_id not in self.resumed_work
            ):
                found.append(exchange)
        return found

    def resubmitted(self, batch: PendingBatch) -> list[Violation]:
        flushes = {s.state_id for s in batch.states if s.operation == "flush"}
        submitted = [e for e in self.exchanges if (s := self.state_of(e)) is not None and s.state_id in flushes]
        if not submitted:
            return []
        polling = self.polling(batch.node_id)
        found = []
        for again in self.exchanges:
            state = self.state_of(again)
            if state is None or self.resumed_work.get(state.state_id) is not batch:
                continue
            first = next((e for e in submitted if self.repeats(again, e, polling)), None)
            if first is not None:
                found.append(_violation(batch, first, again, state, self.wire, self.killed))
        return found

    def repeats(self, again: Exchange, first: Exchange, polling: list[Exchange]) -> bool:
        """`again` submits what `first` did: the same method, and the same path or the same body, unless
        the node's ordinary polls send that path or that body too, or the service answered with the very
        job it answered the first time (an idempotent submission: the same identifiers)."""
        if again.method.upper() != first.method.upper() or _same_job(first, again):
            return False
        if again.path == first.path and not any(p.path == again.path for p in polling):
            return True
        body = self.wire.requests.get(again.index)
        return _same_body(body, self.wire.requests.get(first.index)) and not any(
            _same_body(body, self.wire.requests.get(p.index)) for p in polling
        )


def _identifiers(exchange: Exchange) -> dict[str, Any]:
    """The identifiers a JSON object answer names at its top level (`id`, `job_id`, `batchId`, ...)."""
    try:
        answer = json.loads(exchange.response_body)
    except ValueError:
        return {}
    if not isinstance(answer, dict):
        return {}
    return {
        k: v
        for k, v in answer.items()
        if (k.lower() == "id" or k.endswith(("_id", "Id", "ID"))) and isinstance(v, str | int)
    }


def _same_job(first: Exchange, again: Exchange) -> bool:
    ids = _identifiers(first)
    return bool(ids) and ids == _identifiers(again)


def _same_body(a: Needle | None, b: Needle | None) -> bool:
    if a is None or b is None or len(a.parts) != len(b.parts):
        return False
    return all(not x.isdisjoint(y) for x, y in zip(a.parts, b.parts, strict=True))


def _violation(
    batch: PendingBatch, first: Exchange, again: Exchange, state: _State, wire: WireMatch, killed: KilledRun
) -> Violation:
    origin = killed.started_at
    first_call = wire.calls[first.index]
    again_call = wire.calls.get(again.index)
    assert first_call is not None
    pending_state = batch.states[-1]
    answered = "" if pending_state.ended_at is None else f" at +{pending_state.ended_at - origin:.3f} s"
    recorded = "not recorded at all" if again_call is None else f"recorded as {_call_name(again_call)}"
    return Violation(
        "job-resubmitted",
        f"batch {batch.batch_id} of {batch.node_id} (attempt {batch.attempt}) submitted its job with "
        f"{first.method} {first.path} (exchange #{first.index}), first recorded at "
        f"+{first_call.created_at - origin:.3f} s as {_call_name(first_call)}, and answered Pending with "
        f"checkpoint {batch.checkpoint}{answered}; after the resume, {_work(state)} sent "
        f"{again.method} {again.path} again at +{again.started_at - origin:.3f} s (exchange #{again.index}, "
        f"{recorded}): the job was submitted twice. A resumed batch is handed its checkpoint in ctx.checkpoint: "
        "poll and collect the job it names, and keep whatever finds that job in the checkpoint, never on the "
        "plugin, which a new process does not have.",
        [
            _shown("first submitted", first, first_call, origin),
            _shown("submitted again", again, again_call, origin),
        ],
    )


def _work(state: _State) -> str:
    if state.operation == "poll":
        return f"its poll (node_state {state.state_id})"
    return (
        f"the flush of attempt {state.attempt} of its rows (node_state {state.state_id}), which the engine ran "
        "because a poll with the checkpoint answered a retryable Error,"
    )


def _call_name(call: CallRecord) -> str:
    return f"call {call.call_index} of node_state {call.state_id}"


def _shown(which: str, exchange: Exchange, call: CallRecord | None, origin: float) -> dict[str, Any]:
    return {
        "which": which,
        "exchange": exchange.describe(),
        "sent": f"+{exchange.started_at - origin:.3f} s",
        "call": "none" if call is None else _call_name(call),
    }
