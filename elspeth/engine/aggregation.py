"""Buffering rows for one aggregate node, firing its triggers, and driving each batch to a final status.

A batch moves draft -> executing -> completed | failed, each flush under a node_state of its own, with the
trigger that fired it. Members get their terminal outcome only when their batch reaches a final status, in
the same commit-prefix as the batch change, so a crash leaves them either in an unfinished batch (restored on
resume) or finished, never both and never neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from attrs import define, field

from elspeth import canonical
from elspeth.api import Cardinality, Clock, Error, Pending, Row, Success
from elspeth.engine.pipeline import Node
from elspeth.errors import NonCanonicalValueError, PluginCrash, ServiceUnreachable
from elspeth.landscape.recorder import Recorder, error_info
from elspeth.landscape.statuses import BatchStatus, StateStatus, TokenOutcome, TriggerReason
from elspeth.retries import RetryPolicy


@define
class Member:
    token_id: int
    row: Row
    row_hash: str


@define
class Batch:
    batch_id: int
    attempt: int
    members: list[Member] = field(factory=list)
    opened_at: float = 0.0
    checkpoint: dict[str, Any] | None = None
    poll_at: float = 0.0


FailMembers = Callable[[Node, list[Member], dict[str, Any], int], None]


@define(kw_only=True)
class AggregationRuntime:
    node: Node
    recorder: Recorder
    clock: Clock
    make_ctx: Any
    emit: Callable[[Node, int, Row, str], None]
    fail: FailMembers
    retries: RetryPolicy
    aside: Callable[[Node], AbstractContextManager[None]]
    """What the runner wraps around this node's plugin code (see Runner._aside)."""
    current: Batch | None = None
    pending: list[Batch] = field(factory=list)
    cardinality: Cardinality = field(init=False)
    group_fields: tuple[str, ...] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.cardinality = self.node.plugin.cardinality
        self.group_fields = tuple(self.node.plugin.group_fields())

    # ------------------------------------------------------------ buffering and triggers

    def accept(self, token_id: int, row: Row, row_hash: str) -> None:
        if self.current is None:
            batch_id = self.recorder.add_batch(self.node.node_id)
            self.current = Batch(batch_id, 1, opened_at=self.clock.monotonic())
        batch = self.current
        self.recorder.add_batch_member(batch.batch_id, len(batch.members), token_id, canonical.dumps(row))
        batch.members.append(Member(token_id, row, row_hash))
        count = self.node.trigger.count if self.node.trigger else None
        if count is not None and len(batch.members) >= count:
            self.flush_current(TriggerReason.COUNT)

    def restore_draft(self, batch_id: int, attempt: int, members: list[Member]) -> None:
        self.current = Batch(batch_id, attempt, members, opened_at=self.clock.monotonic())

    def check_timeout(self) -> None:
        timeout = self.node.trigger.timeout_seconds if self.node.trigger else None
        if (
            timeout is not None
            and self.current is not None
            and self.clock.monotonic() - self.current.opened_at >= timeout
        ):
            self.flush_current(TriggerReason.TIMEOUT)

    def flush_current(self, trigger: TriggerReason) -> None:
        batch, self.current = self.current, None
        if batch is not None and batch.members:
            self.execute(batch, trigger)

    # ------------------------------------------------------------ executing a batch

    def retry(self, failed_batch_id: int, attempt: int, members: list[Member]) -> None:
        """Run a failed or interrupted batch again, as a new batch with the same members."""
        batch_id = self.recorder.add_batch(self.node.node_id, attempt=attempt, retry_of=failed_batch_id)
        for ordinal, m in enumerate(members):
            self.recorder.add_batch_member(batch_id, ordinal, m.token_id, canonical.dumps(m.row))
        self.execute(Batch(batch_id, attempt, members), TriggerReason.RETRY)

    def execute(self, batch: Batch, trigger: TriggerReason | None) -> None:
        """One call of the plugin for `batch`: a first flush (with its trigger) or a poll of a pending one."""
        digest = hashlib.sha256("".join(m.row_hash for m in batch.members).encode()).hexdigest()
        state = self.recorder.open_state(
            self.node.node_id, "flush" if trigger else "poll", attempt=batch.attempt, input_hash=digest
        )
        changes: dict[str, Any] = {"status": BatchStatus.EXECUTING, "flush_state_id": state}
        if trigger is not None:
            changes["trigger"] = trigger
        self.recorder.update_batch(batch.batch_id, **changes)
        ctx = self.make_ctx(self.node.node_id, state, batch.checkpoint, [m.token_id for m in batch.members])
        try:
            with self.aside(self.node):
                result = self.node.plugin.process_batch([m.row for m in batch.members], ctx)
            if not isinstance(result, Success | Error | Pending):
                raise TypeError(f"process_batch() returned {type(result).__name__}, not Success, Error or Pending")
        except BaseException as exc:
            self.recorder.close_state(state, StateStatus.FAILED, error=error_info(exc))
            if batch.checkpoint is None:
                self.recorder.update_batch(batch.batch_id, status=BatchStatus.FAILED, error=error_info(exc))
            # else: an external job exists; the batch stays executing with its checkpoint so that a resume polls
            # that job again instead of submitting the rows twice.
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, ServiceUnreachable):
                # The members get no outcome: a resume retries the batch (or polls its job) again.
                raise exc.stopping(self.node.node_id, self.recorder.run_id) from exc
            raise PluginCrash(
                f"aggregate {self.node.node_id} raised {type(exc).__name__} in process_batch(): {exc}"
            ) from exc
        if isinstance(result, Pending):
            self._pending(batch, state, result)
        elif isinstance(result, Success):
            self._completed(batch, state, result)
        else:
            self._failed(batch, state, result)

    def _pending(self, batch: Batch, state: int, result: Pending) -> None:
        checkpoint = dict(result.checkpoint)
        self.recorder.close_state(state, StateStatus.COMPLETED, output_hash=canonical.stable_hash(checkpoint))
        self.recorder.update_batch(batch.batch_id, checkpoint_json=canonical.dumps(checkpoint))
        batch.checkpoint = checkpoint
        batch.poll_at = self.clock.monotonic() + result.retry_after
        self.pending.append(batch)
        # A pending batch must survive a crash with its checkpoint: an external job now exists.
        self.recorder.commit()

    def _completed(self, batch: Batch, state: int, result: Success) -> None:
        if self.cardinality is not Cardinality.UNCONSTRAINED:
            broken = self._cardinality_error([m.row for m in batch.members], len(result.rows))
            if broken is not None:
                self._failed(batch, state, broken)
                return
        try:
            hashes = [canonical.stable_hash(row) for row in result.rows]
            payloads = [canonical.dumps(row) for row in result.rows]
        except NonCanonicalValueError as exc:
            self._failed(batch, state, Error(f"output cannot be hashed canonically: {exc}"))
            return
        self.recorder.close_state(state, StateStatus.COMPLETED, output_hash=canonical.stable_hash(hashes))
        self.recorder.update_batch(batch.batch_id, status=BatchStatus.COMPLETED, checkpoint_json=None)
        for m in batch.members:
            self.recorder.add_outcome(
                m.token_id, TokenOutcome.CONSUMED, node_id=self.node.node_id, batch_id=batch.batch_id
            )
        # Every output token exists before any is carried on: a crash while delivering one must not leave a
        # completed batch with only some of its outputs recorded.
        tokens = [
            self.recorder.add_token(origin_node_id=self.node.node_id, origin_batch_id=batch.batch_id, payload_json=p)
            for p in payloads
        ]
        for token_id, row, row_hash in zip(tokens, result.rows, hashes, strict=True):
            self.emit(self.node, token_id, row, row_hash)

    def _cardinality_error(self, rows: list[Row], outputs: int) -> Error | None:
        """The batch's outputs against the plugin's declared cardinality: a batch that breaks it fails, its
        rows go to their failure outcome with this error, so none is lost without a record."""
        expected = self.cardinality.expected(rows, self.group_fields)
        if expected is None or outputs == expected:
            return None
        declared = self.cardinality.describe(self.group_fields)
        return Error(
            f"aggregate-cardinality: {self.node.node_id} declares {declared}, so its {len(rows)} input rows "
            f"should give {expected} output(s), but process_batch() returned {outputs}",
            details={
                "invariant": "aggregate-cardinality",
                "cardinality": str(self.cardinality),
                "group_fields": list(self.group_fields),
                "inputs": len(rows),
                "expected": expected,
                "outputs": outputs,
            },
        )

    def _failed(self, batch: Batch, state: int, result: Error) -> None:
        error = {"reason": result.reason, "retryable": result.retryable, "details": result.details}
        self.recorder.close_state(state, StateStatus.FAILED, error=error)
        self.recorder.update_batch(batch.batch_id, status=BatchStatus.FAILED, checkpoint_json=None, error=error)
        if result.retryable and batch.attempt < self.retries.max_attempts:
            self.clock.sleep(self.retries.wait(batch.attempt))
            self.retry(batch.batch_id, batch.attempt + 1, batch.members)
            return
        self.fail(self.node, batch.members, error, batch.batch_id)

    # ------------------------------------------------------------ pending batches

    def poll_due(self) -> None:
        now = self.clock.monotonic()
        due = [b for b in self.pending if b.poll_at <= now]
        for batch in due:
            self.pending.remove(batch)
            self.execute(batch, None)

    def next_poll_in(self) -> float | None:
        if not self.pending:
            return None
        return max(0.0, min(b.poll_at for b in self.pending) - self.clock.monotonic())
