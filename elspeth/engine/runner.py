"""The token flow: source rows through transforms and aggregations into sinks, every step recorded."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from elspeth import canonical
from elspeth.api import Capability, Clock, Error, Quarantine, Routed, Row, Success
from elspeth.engine import unchanged
from elspeth.engine.aggregation import AggregationRuntime, Batch, Member
from elspeth.engine.context import CallsInFlight, NodeContext
from elspeth.engine.delivery_order import DeliveryOrder, Path
from elspeth.engine.inflight import InFlight, Slot
from elspeth.engine.interrupts import Interrupted, StopRequest
from elspeth.engine.pipeline import Node, Pipeline
from elspeth.engine.sinks import SinkRuntime
from elspeth.engine.summary import Progress, ProgressCallback
from elspeth.errors import ElspethError, NonCanonicalValueError, PluginCrash, ServiceUnreachable
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.recorder import Recorder, SetAside, error_info
from elspeth.landscape.statuses import BatchStatus, StateStatus, TokenOutcome, TriggerReason
from elspeth.landscape.unfinished import UnfinishedBatch, UnfinishedToken
from elspeth.rate_budgets import budget_snapshots
from elspeth.settings import EngineSettings

_PROGRESS_EVERY = 0.5
_HELD_LIMIT = 10_000
"""Deliveries held for order (delivery_order.py) above which the source is not read on until some go out."""
_WAIT_SLICE = 0.2
"""How long the main thread waits for rows in flight before it looks at its stop request and progress again."""

# Per row: a tuple isinstance-checks faster than a union made anew each time, and a name faster than an enum
# member looked up on its class (0.3-0.5 us each, measured).
_RESULTS = (Success, Routed)
_STATE_COMPLETED = StateStatus.COMPLETED
_COMPLETED = TokenOutcome.COMPLETED

# What a transform made of a token: its result and that result's hash, or None and the final error.
Processed = tuple[Success | Routed | None, str, dict[str, Any] | None]


class Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        recorder: Recorder,
        *,
        clock: Clock,
        payloads: FilePayloadStore,
        engine: EngineSettings,
        stop: StopRequest,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.stop = stop
        self.rec = recorder
        self.clock = clock
        self.payloads = payloads
        self.settings = engine
        self.progress = progress
        self.run_id = recorder.run_id
        self.rows_read = 0
        self.calls_in_flight = CallsInFlight()
        self._retries = engine.retry.policy()
        # Looked up by node id on every row: a Capability (an enum) hashes in Python.
        self._calling_out = {
            n.node_id for n in pipeline.nodes() if Capability.EXTERNAL_CALLS in n.info.cls.capabilities
        }
        self._throttled_before = _throttled()
        self.sinks = {
            name: SinkRuntime(name, node, recorder, self._ctx, engine.write_batch_rows, self._aside)
            for name, node in pipeline.sinks.items()
        }
        self.aggregations = [
            AggregationRuntime(
                node=node,
                recorder=recorder,
                clock=clock,
                make_ctx=self._ctx,
                emit=self._emit_from_aggregate,
                fail=self._fail_members,
                retries=self._retries,
                aside=self._aside,
            )
            for node in pipeline.aggregations
        ]
        self._agg_by_node = {a.node.node_id: i for i, a in enumerate(self.aggregations)}
        self._transform_step = {n.node_id: i for i, n in enumerate(pipeline.transforms)}
        self._started = self._last_report = time.monotonic()
        self._set_aside = SetAside(recorder.lock)
        self._keep_lock = contextlib.nullcontext()
        self._wake = threading.Condition()
        self._flights: list[InFlight | None] = [
            InFlight(step, n.node_id, n.concurrency, self._work_for(n), self._wake) if n.concurrency > 1 else None
            for step, n in enumerate(pipeline.transforms)
        ]
        self._in_flight = [f for f in self._flights if f is not None]
        self._dispatching = True
        # Only while some node has rows in flight can a delivery overtake an earlier one.
        self._order = DeliveryOrder(self._deliver_now) if self._in_flight else None
        self._path: Path = ()
        """The serial-order place of the token the engine's thread is carrying on right now."""
        self._emit_base: Path | None = None
        self._emit_next = 0

    def _aside(self, node: Node) -> AbstractContextManager[None]:
        """Around a plugin's code: a plugin that calls out may record calls from threads of its own while
        the engine's thread waits for it, so the recorder's lock is set aside; any other keeps it."""
        if node.node_id in self._calling_out:
            return self._set_aside
        return self._keep_lock

    def _ctx(
        self, node_id: str, state_id: int, checkpoint: dict[str, Any] | None = None, tokens: Iterable[int] = ()
    ) -> NodeContext:
        return NodeContext(
            self.run_id,
            node_id,
            state_id,
            self.clock,
            self.payloads,
            self.rec,
            checkpoint,
            tuple(tokens),
            self.calls_in_flight,
        )

    # ------------------------------------------------------------ the main loop

    def open_sinks(self, resume_states: dict[str, dict[str, Any]] | None) -> None:
        for name, sink in self.sinks.items():
            sink.open(None if resume_states is None else resume_states.get(name, {}))

    def run(self, skip_rows: int = 0) -> None:
        """Read the source (skipping the first `skip_rows` records, which an earlier attempt recorded) and
        finish everything: end-of-source triggers, pending batches, final flush."""
        source = self.pipeline.source
        state = self.rec.open_state(source.node_id, "load")
        ctx = self._ctx(source.node_id, state)
        every_rows = self.settings.checkpoint_every_rows
        every_seconds = self.settings.checkpoint_every_seconds
        since_checkpoint = 0
        last_checkpoint = last_progress = self.clock.monotonic()
        timed = [a for a in self.aggregations if a.node.trigger and a.node.trigger.timeout_seconds is not None]
        records = enumerate(source.plugin.load(ctx))
        # Entered only for a source that calls out: a `with` of a nullcontext costs two Python calls per record.
        reading = self._set_aside if source.node_id in self._calling_out else None
        # Looked up once: on the path of every record, each Python call counts.
        accept = self._accept_record if self._order is None else self._accept
        stop_requested = self.stop.event.is_set
        while True:
            # The safe point of the main loop: the last record is finished, in flight or waits in a buffer,
            # and nothing of the next one has been read.
            if stop_requested():
                self.stop.check()
            if self._order is not None and self._order.held > _HELD_LIMIT:
                self._release_held()
            try:
                if reading is None:
                    index, item = next(records)
                else:
                    with reading:
                        index, item = next(records)
            except StopIteration:
                break
            except ElspethError as exc:
                self.rec.close_state(state, StateStatus.FAILED, error=error_info(exc))
                raise
            except Exception as exc:
                self.rec.close_state(state, StateStatus.FAILED, error=error_info(exc))
                raise PluginCrash(f"source {source.info.name} failed while reading: {exc}") from exc
            if index < skip_rows:
                continue
            self.rows_read += 1
            accept(item)
            if self._in_flight:
                self._release_ready(0)
            since_checkpoint += 1
            for a in timed:
                a.check_timeout()
            if since_checkpoint >= every_rows or since_checkpoint & 255 == 0:
                now = self.clock.monotonic()
                self._poll_pending()
                if since_checkpoint >= every_rows or now - last_checkpoint >= every_seconds:
                    self.checkpoint()
                    since_checkpoint, last_checkpoint = 0, now
            if self.progress is not None:
                # Every row, not every 256th: slow rows (an LLM call each) must not go silent.
                now = self.clock.monotonic()
                if now - last_progress >= _PROGRESS_EVERY:
                    self._report()
                    last_progress = now
        self.rec.close_state(state, StateStatus.COMPLETED)
        self.finish()

    def finish(self) -> None:
        self._settle()
        self._drain_aggregations()
        for sink in self.sinks.values():
            sink.flush(self.rows_read)
        self._report(done=True)

    def checkpoint(self) -> None:
        for sink in self.sinks.values():
            if sink.has_unflushed:
                sink.flush(self.rows_read)
        self.rec.commit()

    def _report(self, done: bool = False) -> None:
        self._last_report = time.monotonic()
        if self.progress is not None:
            elapsed = time.monotonic() - self._started
            throttled = _throttled() - self._throttled_before
            self.progress(Progress(self.run_id, self.rows_read, elapsed, done, self.calls_in_flight.count, throttled))

    def _poll_pending(self) -> None:
        for agg in self.aggregations:
            if agg.pending:
                agg.poll_due()

    def _drain_aggregations(self) -> None:
        """End of source: flush every buffer in pipeline order, waiting for pending batches, whose outputs
        may fill a later buffer that then flushes too."""
        while True:
            self.stop.check()
            for agg in self.aggregations:
                agg.flush_current(TriggerReason.END_OF_SOURCE)
            waits = [w for w in (a.next_poll_in() for a in self.aggregations) if w is not None]
            if not waits:
                return
            self.clock.sleep(min(waits))
            self._poll_pending()
            self._report()

    # ------------------------------------------------------------ one source record

    def _accept(self, item: Row | Quarantine) -> None:
        if self._order is None:
            self._accept_record(item)
            return
        with self._order.unit() as self._path:
            self._accept_record(item)

    def _accept_record(self, item: Row | Quarantine) -> None:
        source_id = self.pipeline.source.node_id
        if isinstance(item, Quarantine):
            self._quarantine(item.raw, item.reason)
            return
        try:
            payload, row_hash = canonical.dumps_and_hash(item)
        except NonCanonicalValueError as exc:
            self._quarantine(item, f"value cannot be recorded canonically: {exc}")
            return
        row_id, token_id = self.rec.add_source_row(source_id, payload, row_hash)
        self.continue_token(token_id, row_id, item, row_hash, 0, self._path)

    def _quarantine(self, raw: Any, reason: str) -> None:
        record = {"raw": _printable(raw), "reason": reason}
        _, token_id = self.rec.add_source_row(
            self.pipeline.source.node_id, canonical.dumps(record), None, quarantined=True
        )
        self.requarantine(token_id, record)

    def requarantine(self, token_id: int, record: dict[str, Any]) -> None:
        source_id = self.pipeline.source.node_id
        reason = {"reason": record["reason"]}
        sink = self.pipeline.on_quarantine
        if sink is None:
            self.rec.add_outcome(token_id, TokenOutcome.QUARANTINED, node_id=source_id, reason=reason)
        else:
            row = {"_raw": record["raw"], "_reason": record["reason"]}
            self._deliver(
                sink, (token_id, row, canonical.stable_hash(row), TokenOutcome.QUARANTINED, source_id, reason)
            )

    # ------------------------------------------------------------ the flow of one token

    def continue_token(
        self, token_id: int, row_id: int | None, row: Row, row_hash: str, step: int, path: Path = ()
    ) -> None:
        """Carry a token from pipeline step `step` (transforms, then aggregations) to wherever it ends, or
        until it enters a node with rows in flight, whose results carry it on later, in order. `path` is its
        place in the serial order (delivery_order.py; unused when no node has rows in flight)."""
        self._path = path
        transforms = self.pipeline.transforms
        while step < len(transforms):
            flight = self._flights[step]
            if flight is not None:
                self._dispatch(flight, Slot(token_id, row_id, row, row_hash, path))
                return
            node = transforms[step]
            carried = self._carry(node, token_id, row_id, row, self._attempts(node, token_id, row, row_hash))
            if carried is None:
                return
            row, row_hash = carried
            step += 1
        agg_index = step - len(transforms)
        if agg_index < len(self.aggregations):
            # What a count trigger emits here comes next in the serial order, after this token.
            outer = self._emit_base, self._emit_next
            self._emit_base, self._emit_next = path, 0
            try:
                self.aggregations[agg_index].accept(token_id, row, row_hash)
            finally:
                self._emit_base, self._emit_next = outer
            return
        sink = self.pipeline.default_sink
        if self._order is None:  # _deliver without building an arguments tuple: every row comes here
            runtime = self.sinks[sink]
            runtime.deliver(token_id, row, row_hash, _COMPLETED, runtime.node.node_id)
        else:
            self._deliver(sink, (token_id, row, row_hash, _COMPLETED, self.sinks[sink].node.node_id))

    def _carry(
        self, node: Node, token_id: int, row_id: int | None, row: Row, processed: Processed
    ) -> tuple[Row, str] | None:
        """What follows a transform's result: the one row that goes on to the next step (returned), or the
        token's end here (routed, filtered, failed), or children carried on from the next step."""
        result, out_hash, error = processed
        if result is None:
            assert error is not None
            self._fail_token(node, token_id, row, error)
            return None
        if isinstance(result, Routed):
            self._route(node, token_id, result, out_hash)
            return None
        rows = result.rows
        if len(rows) == 1:
            return rows[0], out_hash
        if not rows:
            self.rec.add_outcome(token_id, TokenOutcome.FILTERED, node_id=node.node_id)
            return None
        self.rec.add_outcome(token_id, TokenOutcome.EXPANDED, node_id=node.node_id)
        # Every child token exists before any is carried on: a crash while one child is on its way must not
        # leave an expanded parent with only some of its children recorded.
        children = [
            (
                self.rec.add_token(
                    origin_node_id=node.node_id,
                    parent_token_id=token_id,
                    payload_json=canonical.dumps(child),
                    row_id=row_id,
                ),
                child,
            )
            for child in rows
        ]
        step = self._transform_step[node.node_id] + 1
        path = self._path
        for i, (child_id, child) in enumerate(children):
            self.continue_token(child_id, row_id, child, canonical.stable_hash(child), step, (*path, i))
        return None

    def _attempts(self, node: Node, token_id: int, row: Row, row_hash: str, slot: Slot | None = None) -> Processed:
        """Run one transform on one token, with retries: the result and its hash, or (None, "", error) when the
        row takes the error path. Runs in the engine's thread or, for a node with rows in flight, in a worker
        (given its `slot`). A worker never holds the recorder's lock while the plugin works, and takes it
        only where it cannot be helped: the engine's thread opened the first attempt's state when it
        dispatched the row and closes the last one when it takes the result (`slot.closing`, with the time
        the plugin returned), so the common row costs a worker no write but its calls'."""
        worker = slot is not None
        attempt = 1
        max_attempts = self._retries.max_attempts
        lock = self.rec.lock
        # A worker never holds the lock; the engine's thread sets it aside for a plugin that calls out (the
        # lock kept is no `with` at all: a nullcontext costs two Python calls per row).
        aside = None if worker or node.node_id not in self._calling_out else self._set_aside
        state = slot.state if slot is not None else None
        # Taken once, before the first attempt: a failed attempt may have changed the row in place.
        before = unchanged.snapshot(row)
        while True:
            if state is None:
                with lock:
                    state = self.rec.open_state(
                        node.node_id, "process", token_id=token_id, attempt=attempt, input_hash=row_hash
                    )
            try:
                ctx = self._ctx(node.node_id, state, tokens=(token_id,))
                if aside is None:
                    result = node.plugin.process(row, ctx)
                else:
                    with aside:
                        result = node.plugin.process(row, ctx)
            except ServiceUnreachable as exc:
                # Not the row's fault: no outcome, so a resume processes it again.
                with lock:
                    self.rec.close_state(state, StateStatus.FAILED, error=error_info(exc))
                raise exc.stopping(node.node_id, self.run_id) from exc
            except Exception as exc:
                with lock:
                    self.rec.close_state(state, StateStatus.FAILED, error=error_info(exc))
                raise PluginCrash(
                    f"transform {node.node_id} raised {type(exc).__name__}: {exc} (token {token_id}); a transform "
                    "should return Error(...) for a bad row and raise only when it cannot go on at all"
                ) from exc
            if isinstance(result, _RESULTS):
                try:
                    out = [result.row] if isinstance(result, Routed) else result.rows
                    if len(out) != 1:
                        out_hash, kept = canonical.stable_hash(out), None
                    elif before is not None and unchanged.since(before, out[0]):
                        out_hash, kept = row_hash, None
                    else:
                        out_hash, kept = _output_record(out[0], row_hash)
                except NonCanonicalValueError as exc:
                    result = Error(f"output cannot be recorded canonically: {exc}")
                else:
                    if slot is not None:
                        self.rec.returned(state)
                        slot.closing = (state, _STATE_COMPLETED, out_hash, kept, None, self.rec.now())
                    else:
                        self.rec.close_state(state, _STATE_COMPLETED, output_hash=out_hash, output=kept)
                    return result, out_hash, None
            if not isinstance(result, Error):
                with lock:
                    self.rec.close_state(
                        state,
                        StateStatus.FAILED,
                        error={"type": "TypeError", "message": f"process() returned {type(result).__name__}"},
                    )
                raise PluginCrash(
                    f"transform {node.node_id} returned {type(result).__name__}; return Success, Routed or Error"
                )
            error = {"reason": result.reason, "retryable": result.retryable, "details": result.details}
            if result.retryable and attempt < max_attempts:
                with lock:
                    self.rec.close_state(state, StateStatus.FAILED, error=error)
                with self._set_aside if not worker else self._keep_lock:
                    self.clock.sleep(self._retries.wait(attempt))
                # Between attempts nothing of this token is half-recorded; resume starts it again.
                if worker and not self._dispatching:
                    raise Interrupted("stop")
                self.stop.check()
                attempt += 1
                state = None
                continue
            if slot is not None:
                self.rec.returned(state)
                slot.closing = (state, StateStatus.FAILED, None, None, error, self.rec.now())
            else:
                self.rec.close_state(state, StateStatus.FAILED, error=error)
            return None, "", error

    def _work_for(self, node: Node) -> Callable[[Slot], Processed]:
        def work(slot: Slot) -> Processed:
            return self._attempts(node, slot.token_id, slot.row, slot.row_hash, slot)

        return work

    # ------------------------------------------------------------ rows in flight

    def _dispatch(self, flight: InFlight, slot: Slot) -> None:
        """Start `slot` at `flight`'s node once its window has room; meanwhile carry on finished rows from
        this node and the ones after it (never from before it: they would overtake this token)."""
        if not self._dispatching:
            if self._order is not None:
                self._order.left_unfinished(slot.path)
            return  # stopping: the token stays unfinished, for a resume
        while not flight.has_room:
            if not self._release_ready(flight.step):
                self._wait(flight.step)
        if self._order is not None:
            self._order.sent(slot.path)
        node = self.pipeline.transforms[flight.step]
        slot.state = self.rec.open_state(
            node.node_id, "process", token_id=slot.token_id, attempt=1, input_hash=slot.row_hash
        )
        flight.submit(slot)

    def _release_ready(self, from_step: int) -> bool:
        """Carry on every finished row at the head of a window at `from_step` or later; True if any was."""
        released = False
        again = True
        while again:
            again = False
            for flight in reversed(self._in_flight):
                if flight.step < from_step:
                    break
                while flight.head_ready:
                    self._carry_on(flight, flight.take())
                    again = released = True
        return released

    def _carry_on(self, flight: InFlight, slot: Slot) -> None:
        self._close_taken(slot)
        try:
            if slot.failure is not None:
                if isinstance(slot.failure, Interrupted):
                    if self._order is not None:
                        self._order.left_unfinished(slot.path)
                    return  # stopped between retries: unfinished, for a resume
                raise slot.failure
            node = self.pipeline.transforms[flight.step]
            self._path = slot.path
            carried = self._carry(node, slot.token_id, slot.row_id, slot.row, slot.result)
            if carried is not None:
                self.continue_token(slot.token_id, slot.row_id, carried[0], carried[1], flight.step + 1, slot.path)
        finally:
            if self._order is not None:
                self._order.returned(slot.path)
                self._order.release()

    def _close_taken(self, slot: Slot) -> None:
        """Close the state a worker's last attempt left to the engine's thread, as of when the plugin returned."""
        if slot.closing is not None:
            state, status, output_hash, output, error, ended_at = slot.closing
            slot.closing = None
            self.rec.close_state(state, status, output_hash=output_hash, output=output, error=error, ended_at=ended_at)

    def _wait(self, from_step: int) -> None:
        """Wait (with the recorder's lock set aside, so workers can write) until a window at `from_step` or
        later has a finished head, or a moment has passed."""
        with self._set_aside, self._wake:
            if not any(f.head_ready for f in self._in_flight if f.step >= from_step):
                self._wake.wait(_WAIT_SLICE)
        self.stop.check()
        if self.progress is not None and time.monotonic() - self._last_report >= _PROGRESS_EVERY:
            self._report()

    def _settle(self) -> None:
        """Carry on every row in flight, in order, until no window holds any."""
        while any(self._in_flight):
            if not self._release_ready(0):
                self._wait(0)

    def _release_held(self) -> None:
        """Carry on rows in flight until the deliveries held for order are few enough again."""
        assert self._order is not None
        while self._order.held > _HELD_LIMIT // 2 and any(self._in_flight):
            if not self._release_ready(0):
                self._wait(0)

    def wind_down(self) -> None:
        """After a stop request: start nothing more, let the workers finish the rows they are on, and carry
        those rows on as far as they go without starting anything new."""
        self._dispatching = False
        with self._set_aside:
            for flight in self._in_flight:
                flight.shutdown()
        for flight in self._in_flight:
            while flight:
                slot = flight.take()
                if slot.finished:
                    self._carry_on(flight, slot)
                elif self._order is not None:  # never started: unfinished, for a resume
                    self._order.returned(slot.path)
                    self._order.left_unfinished(slot.path)
        if self._order is not None:
            self._order.stop()

    def abandon(self) -> None:
        """After a failure: start nothing more, wait for the workers, close the states they left to this
        thread, and forget the rows in flight (unfinished: a resume processes them)."""
        self._dispatching = False
        with self._set_aside:
            for flight in self._in_flight:
                flight.shutdown()
        for flight in self._in_flight:
            for slot in flight.drop():
                self._close_taken(slot)
        if self._order is not None:
            self._order.drop()

    def close(self) -> None:
        for flight in self._in_flight:
            flight.shutdown()

    def _route(self, node: Node, token_id: int, result: Routed, row_hash: str) -> None:
        if result.sink not in self.sinks:
            raise ElspethError(
                f"transform {node.node_id} routed a row to sink {result.sink!r}, which is not defined; "
                f"add it under sinks (defined: {sorted(self.sinks)})"
            )
        self._deliver(result.sink, (token_id, result.row, row_hash, TokenOutcome.ROUTED, node.node_id))

    def _fail_token(
        self, node: Node, token_id: int, row: Row, error: dict[str, Any], batch_id: int | None = None
    ) -> None:
        if node.on_error is None:
            self.rec.add_outcome(token_id, TokenOutcome.FAILED, node_id=node.node_id, batch_id=batch_id, reason=error)
            return
        # The reason may quote what a server answered, a credential it echoed included: redacted as in the Landscape.
        reason = self.rec.redact(error["reason"])
        failed_row = {**row, "_error": reason, "_node": node.node_id}
        try:
            row_hash = canonical.stable_hash(failed_row)
        except NonCanonicalValueError:
            failed_row = {"_error": reason, "_node": node.node_id}
            row_hash = canonical.stable_hash(failed_row)
        self._deliver(node.on_error, (token_id, failed_row, row_hash, TokenOutcome.FAILED, node.node_id, error))

    def _fail_members(self, node: Node, members: list[Member], error: dict[str, Any], batch_id: int) -> None:
        for m in members:
            with self._emitting() as path:
                self._path = path
                self._fail_token(node, m.token_id, m.row, error, batch_id)

    def _emit_from_aggregate(self, node: Node, token_id: int, row: Row, row_hash: str) -> None:
        step = len(self.pipeline.transforms) + self._agg_by_node[node.node_id] + 1
        with self._emitting() as path:
            self.continue_token(token_id, None, row, row_hash, step, path)

    @contextlib.contextmanager
    def _emitting(self) -> Iterator[Path]:
        """The serial-order place of what a batch puts out: next after the token whose arrival ran the batch,
        or, for a batch run outside any token's flow (timeout, poll, end of source), a unit of its own."""
        if self._order is None:
            yield ()
        elif self._emit_base is None:
            with self._order.unit() as path:
                yield path
        else:
            self._emit_next += 1
            yield (*self._emit_base, self._emit_next - 1)

    def _deliver(self, sink: str, args: tuple[Any, ...]) -> None:
        if self._order is None:
            self.sinks[sink].deliver(*args)
        else:
            self._order.hold(self._path, sink, args)

    def _deliver_now(self, sink: str, args: tuple[Any, ...]) -> None:
        self.sinks[sink].deliver(*args)

    # ------------------------------------------------------------ resuming

    def restore_batches(self, batches: Iterable[UnfinishedBatch]) -> list[UnfinishedBatch]:
        """Put drafts back in their buffers and pending batches back on the poll list, and record as failed
        the batches a killed attempt left executing; returns the batches that must run again (those, and
        failed ones whose members never finished)."""
        to_retry = []
        for b in batches:
            agg = self.aggregations[self._agg_by_node[b.node_id]]
            members = [Member(t, row, canonical.stable_hash(row)) for t, row in b.members]
            if b.status == BatchStatus.DRAFT:
                agg.restore_draft(b.batch_id, b.attempt, members)
            elif b.status == BatchStatus.EXECUTING and b.checkpoint is not None:
                agg.pending.append(Batch(b.batch_id, b.attempt, members, checkpoint=b.checkpoint, poll_at=0.0))
            else:
                if b.status == BatchStatus.EXECUTING:
                    # Failed now, not when its turn to run again comes: a stop before then would leave the run
                    # interrupted with a batch that claims to be executing.
                    self.rec.update_batch(
                        b.batch_id,
                        status=BatchStatus.FAILED,
                        error={"type": "Interrupted", "message": "the process ended while this batch was executing"},
                    )
                to_retry.append(b)
        return to_retry

    def redo(self, tokens: Iterable[UnfinishedToken], retries: list[UnfinishedBatch]) -> None:
        """Finish unfinished tokens and rerun failed batches, interleaved in the order they first happened:
        a batch ran when its last member arrived, so it goes right after that token."""
        retries = sorted(retries, key=lambda b: b.last_token)
        for token in tokens:
            while retries and retries[0].last_token < token.token_id:
                self.stop.check()
                self._settle()  # the tokens before this batch reach its node first, as they did
                self._rerun(retries.pop(0))
            self.stop.check()
            self._redo_token(token)
        for batch in retries:
            self.stop.check()
            self._settle()
            self._rerun(batch)

    def _rerun(self, b: UnfinishedBatch) -> None:
        agg = self.aggregations[self._agg_by_node[b.node_id]]
        members = [Member(t, row, canonical.stable_hash(row)) for t, row in b.members]
        agg.retry(b.batch_id, b.attempt + 1, members)

    def _redo_token(self, token: UnfinishedToken) -> None:
        if self._order is None:
            self._redo_one(token)
            return
        with self._order.unit() as self._path:
            self._redo_one(token)

    def _redo_one(self, token: UnfinishedToken) -> None:
        if token.quarantined:
            self.requarantine(token.token_id, token.row)
            return
        row_hash = canonical.stable_hash(token.row)
        origin = token.origin_node_id
        if origin == self.pipeline.source.node_id:
            step = 0
        elif origin in self._transform_step:
            step = self._transform_step[origin] + 1
        else:
            step = len(self.pipeline.transforms) + self._agg_by_node[origin] + 1
        self.continue_token(token.token_id, token.row_id, token.row, row_hash, step, self._path)


def _output_record(row: Row, row_hash: str) -> tuple[str, bytes | None]:
    """The hash of a transform's one output row, and the canonical bytes it is the hash of when it differs
    from the input: what `explain` shows as the step's values. The bytes are made for the hash anyway, so
    keeping them costs an insert; an unchanged row (most steps of most pipelines) costs nothing, and an
    expansion's rows are kept with its child tokens already."""
    data = canonical.canonical_bytes(row)
    out_hash = hashlib.sha256(data).hexdigest()
    return out_hash, None if out_hash == row_hash else data


def _throttled() -> int:
    """429s the plugins have told their rate budgets of, in this process so far."""
    return sum(b.throttled for b in budget_snapshots())


def _printable(raw: Any) -> Any:
    """A quarantined record is stored as it came, made JSON-safe: what cannot be stored exactly is stored
    as its repr, never dropped."""
    try:
        canonical.canonical_bytes(raw)
        return raw
    except NonCanonicalValueError:
        return repr(raw)
