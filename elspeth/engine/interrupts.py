"""Ctrl-C and SIGTERM as requests to stop, acted on at the engine's next safe point.

A signal handler that raises (Python's default for SIGINT) lands in whatever line is running: half-way
through buffering a sink flush's outcomes, or inside an SQLite statement whose connection then keeps its
write lock. So the handler only notes the signal; the runner checks between records, tokens and waits,
where everything recorded so far is consistent, and stops there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised by the runner at a safe point once a stop was requested. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way out mistakes it for a plugin failure."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


class StopRequest:
    """Whether a stop was asked for, and an event that cuts the engine's own waits short."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signame: str | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, signame: str) -> None:
        if self.signame is None:
            self.signame = signame
        self.event.set()

    def check(self) -> None:
        """At a safe point: stop here if a stop was requested."""
        if self.event.is_set():
            raise Interrupted(self.signame or "stop")


def install(stop: StopRequest) -> dict[int, Any]:
    """From now on SIGINT and SIGTERM request `stop` instead of raising or killing the process; returns the
    handlers they had. Only the main thread can install handlers: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            _say(f"\n{name}: already stopping at the next safe point; `kill -9 {os.getpid()}` stops at once ")
            _say("(`elspeth resume` finishes the run either way)\n")
        else:
            _say(f"\n{name}: stopping at the next safe point; everything done so far stays recorded\n")
        stop.request(name)

    return {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}


@contextlib.contextmanager
def noted(stop: StopRequest) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM request a stop; afterwards they do what they did before."""
    previous = install(stop)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(text: str) -> None:
    # os.write, not print: the handler may run while the main thread is inside a write to stderr, and a
    # buffered stream refuses reentrant calls.
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
