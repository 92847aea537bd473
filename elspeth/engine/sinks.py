"""Driving one sink: batched write() calls, flushes, artifacts, checkpoints and the outcomes they confirm.

A token's terminal outcome is recorded in the same transaction as the artifact of the flush that made
its row durable, never before (bug class 11): a crash between write() and that commit leaves the token
unfinished, and the resumed sink discards the uncommitted tail before the row is delivered again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from attrs import define, field

from elspeth.api import Artifact, Row
from elspeth.engine.context import NodeContext
from elspeth.engine.pipeline import Node
from elspeth.errors import PluginCrash
from elspeth.landscape.recorder import Recorder, error_info
from elspeth.landscape.statuses import StateStatus, TokenOutcome

# (token_id, outcome, node that decided it, reason): kept until the flush that makes the row durable.
_Delivery = tuple[int, TokenOutcome, str, dict[str, Any] | None]


@define
class SinkRuntime:
    name: str
    node: Node
    recorder: Recorder
    make_ctx: Any
    batch_rows: int
    aside: Callable[[Node], AbstractContextManager[None]]
    """What the runner wraps around this sink's plugin code (see Runner._aside)."""
    rows: list[Row] = field(factory=list)
    hashes: list[str] = field(factory=list)
    deliveries: list[_Delivery] = field(factory=list)
    written: list[_Delivery] = field(factory=list)
    """Written but not yet made durable by a flush."""

    def open(self, resume: dict[str, Any] | None) -> None:
        state = self.recorder.open_state(self.node.node_id, "open")
        ctx: NodeContext = self.make_ctx(self.node.node_id, state)
        try:
            with self.aside(self.node):
                self.node.plugin.open(ctx, resume)
        except Exception as exc:
            self.recorder.close_state(state, StateStatus.FAILED, error=error_info(exc))
            raise
        self.recorder.close_state(state, StateStatus.COMPLETED)

    def deliver(
        self,
        token_id: int,
        row: Row,
        row_hash: str,
        outcome: TokenOutcome,
        decided_by: str,
        reason: dict[str, Any] | None = None,
    ) -> None:
        self.rows.append(row)
        self.hashes.append(row_hash)
        self.deliveries.append((token_id, outcome, decided_by, reason))
        if len(self.rows) >= self.batch_rows:
            self.write()

    @property
    def has_unflushed(self) -> bool:
        return bool(self.rows or self.written)

    def write(self) -> None:
        if not self.rows:
            return
        rows, hashes, deliveries = self.rows, self.hashes, self.deliveries
        self.rows, self.hashes, self.deliveries = [], [], []
        digest = hashlib.sha256("".join(hashes).encode()).hexdigest()
        state = self.recorder.open_state(self.node.node_id, "write", input_hash=digest)
        try:
            with self.aside(self.node):
                self.node.plugin.write(rows, self.make_ctx(self.node.node_id, state))
        except Exception as exc:
            self.recorder.close_state(state, StateStatus.FAILED, error=error_info(exc))
            raise PluginCrash(f"sink {self.name!r} ({self.node.info.name}) failed in write(): {exc}") from exc
        self.recorder.close_state(state, StateStatus.COMPLETED)
        self.written.extend(deliveries)

    def flush(self, rows_read: int) -> Artifact:
        """Make everything written durable, then record artifact, checkpoint and outcomes, and commit."""
        self.write()
        state = self.recorder.open_state(self.node.node_id, "flush")
        try:
            with self.aside(self.node):
                artifact = self.node.plugin.flush(self.make_ctx(self.node.node_id, state))
            if not isinstance(artifact, Artifact):
                raise TypeError(f"flush() returned {type(artifact).__name__}, not elspeth.api.Artifact")
        except Exception as exc:
            self.recorder.close_state(state, StateStatus.FAILED, error=error_info(exc))
            raise PluginCrash(f"sink {self.name!r} ({self.node.info.name}) failed in flush(): {exc}") from exc
        self.recorder.close_state(state, StateStatus.COMPLETED, output_hash=artifact.content_hash)
        artifact_id = self.recorder.add_artifact(
            self.node.node_id,
            state,
            uri=artifact.uri,
            content_hash=artifact.content_hash,
            size=artifact.size,
            row_count=artifact.row_count,
        )
        self.recorder.add_checkpoint(self.node.node_id, artifact_id, artifact.resume, rows_read)
        self.recorder.add_sink_outcomes(self.node.node_id, artifact_id, self.written)
        self.written = []
        self.recorder.commit()
        return artifact
