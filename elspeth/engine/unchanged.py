"""Telling, cheaply and for certain, that a transform handed back the row it was given as it was given, so
that the row's hash stands for the output too and is not computed again (issue 11).

The row object being the same proves nothing (a plugin may change it in place, bug class 23), and equal
values are not enough (True == 1, whose canonical JSON differs). What proves it: a copy taken before the
call of a row whose values are all immutable scalars; after the call, the same keys in the same order,
holding the very same value objects. Rows with lists or objects in them are hashed again.
"""

from __future__ import annotations

from operator import is_
from typing import Any

from elspeth.api import Row

_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def snapshot(row: Row) -> dict[str, Any] | None:
    """A copy of `row` to hold against what the transform returns, or None if a value could change in place."""
    if _IMMUTABLE.issuperset(map(type, row.values())):
        return row.copy()
    return None


def since(before: dict[str, Any], row: Row) -> bool:
    """`row` holds exactly what the snapshot `before` held: the same keys in order, the same value objects."""
    return len(row) == len(before) and all(map(is_, row, before)) and all(map(is_, row.values(), before.values()))
