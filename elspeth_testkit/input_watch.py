"""Watching the rows a plugin is handed (bug class 23): the engine has already recorded each row's hash and
hands the same objects on (to a retry, the error sink, the next node), so a plugin that changes a row it was
given in place makes the audit trail describe data that no longer exists.

`watching(cls)` is a subclass of the plugin class whose row-taking method (a transform's `process`, an
aggregate's `process_batch`, a sink's `write`) fingerprints every row handed to it before and after the call,
and notes each row that changed. The list holding a batch is the plugin's to reorder: only the rows count.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from elspeth import canonical
from elspeth.errors import NonCanonicalValueError

ROW_METHODS = {"transform": "process", "aggregate": "process_batch", "sink": "write"}
"""The method through which a plugin of each kind is handed rows: one row for `process`, a list otherwise."""


def fingerprint(row: Any) -> str:
    """sha256 of the row's storage JSON (which keeps key order and the int/float distinction); of its repr
    for a value that JSON cannot hold."""
    try:
        text = canonical.dumps(row)
    except (NonCanonicalValueError, TypeError, ValueError):
        text = repr(row)
    return hashlib.sha256(text.encode()).hexdigest()


def watching(cls: type, kind: str) -> type:
    """A subclass of plugin class `cls` (of `kind`) that notes, in its class attribute `changed_inputs`, each
    row its row-taking method changed in place."""
    method = ROW_METHODS[kind]
    original = getattr(cls, method)
    changed: list[dict[str, Any]] = []
    calls = {"count": 0}
    counting = threading.Lock()

    def watched(self: Any, rows: Any, *args: Any, **kwargs: Any) -> Any:
        # Each call takes its number once: with rows in flight, calls run in several threads at once.
        with counting:
            calls["count"] += 1
            number = calls["count"]
        handed = [rows] if method == "process" else list(rows)
        copies = [_copy(row) for row in handed]
        before = [fingerprint(row) for row in handed]
        try:
            return original(self, rows, *args, **kwargs)
        finally:
            for index, (row, copy, digest) in enumerate(zip(handed, copies, before, strict=True)):
                after = fingerprint(row)
                if after != digest:
                    changed.append(
                        {
                            "method": f"{method}()",
                            "call": number,
                            "row": index,
                            "sha256_before": digest,
                            "sha256_after": after,
                            **_difference(copy, row),
                        }
                    )

    return type(
        cls.__name__,
        (cls,),
        {method: watched, "__module__": cls.__module__, "changed_inputs": changed, "watched_inputs": True},
    )


def _copy(row: Any) -> Any:
    try:
        return canonical.loads(canonical.dumps(row))
    except (NonCanonicalValueError, TypeError, ValueError):
        return repr(row)


def _difference(before: Any, after: Any) -> dict[str, Any]:
    """The first field that changed, when both are dicts."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return {}
    for key in [*before, *(k for k in after if k not in before)]:
        if key not in after:
            return {"field": key, "before": before[key], "after": "(removed)"}
        if key not in before:
            return {"field": key, "before": "(absent)", "after": after[key]}
        if fingerprint(before[key]) != fingerprint(after[key]):
            return {"field": key, "before": before[key], "after": after[key]}
    return {"field": "(key order)"}
