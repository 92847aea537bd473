"""The `ctx` handed to a plugin: one per node execution, bound to the node_state open for it."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from attrs import define

from elspeth import canonical
from elspeth.api import Clock, PayloadStore
from elspeth.landscape.recorder import Recorder, error_info


class CallsInFlight:
    """How many `ctx.call` blocks are open right now, across threads: what the progress line shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


_UNCOUNTED = contextlib.nullcontext()


@define
class CallScope:
    request: Any
    response: Any = None


@contextmanager
def timed_call(
    record: Callable[..., object],
    call_type: str,
    provider: str,
    request: Any,
    counted: contextlib.AbstractContextManager[object] = _UNCOUNTED,
) -> Iterator[CallScope]:
    """What `ctx.call` does for every ctx: time the block and record the call through `record` (the ctx's
    record_call) as it ended, its response or its error, with the request as the block left it (a plugin
    may add to it, e.g. a retry's headers)."""
    scope = CallScope(request=request)
    started = time.perf_counter()
    try:
        with counted:
            yield scope
    except BaseException as exc:
        record(
            call_type=call_type,
            provider=provider,
            request=scope.request,
            response=scope.response,
            error=error_info(exc),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        raise
    record(
        call_type=call_type,
        provider=provider,
        request=scope.request,
        response=scope.response,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def work_key(run_id: str, node_id: str, token_ids: Iterable[int] = ()) -> str:
    """The same for every attempt at the same work, in this process or after a resume: the run, the node and
    the tokens (a batch's members, in order). Never the batch id or the attempt, which a resume renews."""
    ident = canonical.canonical_bytes([run_id, node_id, list(token_ids)])
    return hashlib.sha256(ident).hexdigest()[:32]


@define
class NodeContext:
    run_id: str
    node_id: str
    state_id: int
    clock: Clock
    payloads: PayloadStore
    recorder: Recorder
    checkpoint: Mapping[str, Any] | None = None
    work_tokens: tuple[int, ...] = ()
    in_flight: CallsInFlight | None = None

    @property
    def work_key(self) -> str:
        # Computed when asked for: few plugins need it, and a hash per row is not free.
        return work_key(self.run_id, self.node_id, self.work_tokens)

    def record_call(
        self,
        *,
        call_type: str,
        provider: str,
        request: Any,
        response: Any = None,
        error: Any = None,
        latency_ms: float | None = None,
    ) -> None:
        self.recorder.record_call(
            self.state_id,
            call_type=call_type,
            provider=provider,
            request=request,
            response=response,
            error=error,
            latency_ms=latency_ms,
        )

    def call(self, call_type: str, provider: str, request: Any) -> contextlib.AbstractContextManager[CallScope]:
        return timed_call(self.record_call, call_type, provider, request, self.in_flight or _UNCOUNTED)
