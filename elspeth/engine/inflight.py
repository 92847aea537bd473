"""Rows in flight at one transform: up to `concurrency` of them processed at once in worker threads, their
results taken back in the order the rows came, so everything downstream sees the serial run's order.

The window holds at most twice the concurrency: the rows running, and as many finished rows waiting behind
a slow one. Memory is bounded by the node's concurrency, whatever the input's size.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attrs import define

from elspeth.api import Row


@define
class Slot:
    """One token at this node: what the main thread needs to carry it on, and what its worker made of it."""

    token_id: int
    row_id: int | None
    row: Row
    row_hash: str
    path: tuple[int, ...]
    """Its place in the serial order (delivery_order.py)."""
    state: int | None = None
    """The first attempt's state, opened by the engine's thread when it dispatched the row."""
    closing: tuple[Any, ...] | None = None
    """The last attempt's close (state, status, output hash, error, when), left to the engine's thread."""
    finished: bool = False
    result: Any = None
    failure: BaseException | None = None


class InFlight:
    def __init__(
        self, step: int, node_id: str, concurrency: int, work: Callable[[Slot], Any], wake: threading.Condition
    ) -> None:
        self.step = step
        self.concurrency = concurrency
        self.capacity = 2 * concurrency
        self.running = 0
        self._work = work
        self._wake = wake
        self._slots: deque[Slot] = deque()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"elspeth {node_id}")

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def has_room(self) -> bool:
        """A worker is free (so a row dispatched now starts now: its state opens when it starts) and the
        window can take one more."""
        return self.running < self.concurrency and len(self._slots) < self.capacity

    @property
    def head_ready(self) -> bool:
        return bool(self._slots) and self._slots[0].finished

    def submit(self, slot: Slot) -> None:
        self._slots.append(slot)
        with self._wake:
            self.running += 1
        self._pool.submit(self._run, slot)

    def take(self) -> Slot:
        return self._slots.popleft()

    def _run(self, slot: Slot) -> None:
        try:
            slot.result = self._work(slot)
        except BaseException as exc:  # handed to the main thread, which decides what it means for the run
            slot.failure = exc
        with self._wake:
            slot.finished = True
            self.running -= 1
            self._wake.notify_all()

    def drop(self) -> list[Slot]:
        """Forget every row in the window (their tokens stay unfinished for a resume) once the workers are
        done; returns them, so that the states their workers left to close are closed."""
        slots = list(self._slots)
        self._slots.clear()
        return slots

    def shutdown(self) -> None:
        """Wait for the workers to finish what they started; no new row starts."""
        self._pool.shutdown(wait=True, cancel_futures=True)
