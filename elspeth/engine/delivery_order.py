"""Sink deliveries in the serial run's order while rows are in flight.

A row that leaves the pipeline before a node with rows in flight (routed, failed, filtered into a sink)
would reach its sink ahead of earlier rows still in flight there. So, while any node has rows in flight,
each delivery is held under the unit of work it belongs to (a source record, a token a resume redoes, a
batch that ran outside any row's flow) and a path that orders it inside that unit as the serial run would
(children after their parent, in order). A unit's deliveries go to their sinks once the engine is done with
it (closed) and none of its tokens is in flight, and every unit before it has gone.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from attrs import define, field

Path = tuple[int, ...]
"""A token's place in the serial order: its unit's number, then its index among its siblings at each
expansion (or among a batch's outputs)."""


@define
class _Unit:
    open: bool = True
    in_flight: int = 0
    cut: bool = False
    """A token of it was left unfinished by a stop."""
    deliveries: list[tuple[Path, str, tuple[Any, ...]]] = field(factory=list)


class DeliveryOrder:
    def __init__(self, deliver: Callable[[str, tuple[Any, ...]], None]) -> None:
        self._deliver = deliver
        self._units: OrderedDict[int, _Unit] = OrderedDict()
        self._next = 0
        self.held = 0

    @contextlib.contextmanager
    def unit(self) -> Iterator[Path]:
        """A new unit of work, its path yielded, closed when the block ends however it ends (what it holds
        goes out once nothing of it is in flight and every unit before it has gone)."""
        number = self._next
        self._next += 1
        self._units[number] = _Unit()
        try:
            yield (number,)
        finally:
            self._units[number].open = False
            self.release()

    def left_unfinished(self, path: Path) -> None:
        """A stop left a token of this unit unfinished: a resume carries it on, in token order."""
        self._units[path[0]].cut = True

    def stop(self) -> None:
        """After a stop, with no row in flight any more: what comes before the first unit a stop cut short
        (left a token unfinished, or was in the middle of) goes out; that unit's deliveries and all later
        ones are dropped, their tokens unfinished, so that the resume, which redoes unfinished tokens in
        order, writes them after the earlier ones, as the serial run did."""
        while self._units:
            number, unit = next(iter(self._units.items()))
            if unit.open or unit.cut or unit.in_flight:
                break
            self.release_unit(number)
        self.drop()

    def hold(self, path: Path, sink: str, args: tuple[Any, ...]) -> None:
        self._units[path[0]].deliveries.append((path, sink, args))
        self.held += 1

    def sent(self, path: Path) -> None:
        """A token of this unit entered a node's rows in flight."""
        self._units[path[0]].in_flight += 1

    def returned(self, path: Path) -> None:
        """... and came back out (carried on, or left unfinished)."""
        self._units[path[0]].in_flight -= 1

    def release(self) -> None:
        while self._units:
            number, unit = next(iter(self._units.items()))
            if unit.open or unit.in_flight or unit.cut:
                return
            self.release_unit(number)

    def release_unit(self, number: int) -> None:
        unit = self._units.pop(number)
        unit.deliveries.sort(key=lambda d: d[0])  # stable: one token's deliveries keep their order
        self.held -= len(unit.deliveries)
        for _, sink, args in unit.deliveries:
            self._deliver(sink, args)

    def drop(self) -> None:
        """Forget everything held (a failed run: those tokens stay unfinished, for a resume)."""
        self._units.clear()
        self.held = 0
