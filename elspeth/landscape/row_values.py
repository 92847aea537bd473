"""The values a row had at each step of its lineage, and what each step changed, field by field.

Pure functions on a RowLineage. A token starts with its source row (or, for a child of an expansion or a
batch, its own stored row); each transform's input is the previous step's output, which the Landscape keeps
where it differs from the input. Where a value is not known (purged, or recorded before values were kept),
the steps after it are unknown too, until one whose output was kept.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from elspeth import canonical
from elspeth.errors import NonCanonicalValueError
from elspeth.landscape.lineage import RowLineage, StateInfo


@frozen
class FieldChange:
    field: str
    """The field's name; "" when the value is not an object (the whole value changed)."""
    change: str
    """"added", "removed" or "changed"."""
    before: Any
    after: Any


@frozen
class StepValues:
    state_id: int
    before: Any
    """The step's input, or None when not known (see known)."""
    after: Any
    known: bool
    """Whether `before` and `after` are the values the step saw and made."""
    changes: list[FieldChange]
    note: str
    """"changed", "unchanged", "failed" (no output), or why the values are not known."""
    input_verified: bool | None
    """Whether `before` hashes to the recorded input hash (None when either is missing)."""


def step_values(lineage: RowLineage) -> dict[int, StepValues]:
    """The values at every transform step (process state) of the row's tokens, by state_id."""
    values: dict[int, StepValues] = {}
    by_token: dict[int, list[StateInfo]] = {}
    for state in lineage.states:
        if state.operation == "process" and state.token_id is not None:
            by_token.setdefault(state.token_id, []).append(state)
    for token in lineage.tokens:
        current = token.payload
        if current is None and token.row_id is not None and token.parent_token_id is None:
            current = lineage.payload
        known = current is not None
        for state in sorted(by_token.get(token.token_id, []), key=lambda s: s.state_id):
            step, current, known = _step(state, current, known)
            values[state.state_id] = step
    return values


def _step(state: StateInfo, current: Any, known: bool) -> tuple[StepValues, Any, bool]:
    """One step's values, and what goes on to the next step."""
    verified = _hashes_to(current, state.input_hash) if known else None
    if state.status != "completed":
        note = "failed" if state.status == "failed" else state.status
        return StepValues(state.state_id, current, None, known, [], note, verified), current, known
    status = state.output_status
    if status == "recorded":
        after, after_known = state.output, True
    elif status == "unchanged":
        after, after_known = current, known
    else:
        after, after_known = None, False
    if known and after_known:
        changes = diff(current, after)
        note = "changed" if changes else "unchanged"
    else:
        changes = []
        note = "unchanged" if status == "unchanged" else f"output {status}"
    step = StepValues(state.state_id, current, after, known and after_known, changes, note, verified)
    return step, after, after_known


def diff(before: Any, after: Any) -> list[FieldChange]:
    """What changed from `before` to `after`, per field when both are objects, in `after`'s field order
    (then the removed fields). Values are compared as JSON (1 and 1.0 are the same number, true is not 1)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return [] if _same(before, after) else [FieldChange("", "changed", before, after)]
    changes = []
    for name, value in after.items():
        if name not in before:
            changes.append(FieldChange(name, "added", None, value))
        elif not _same(before[name], value):
            changes.append(FieldChange(name, "changed", before[name], value))
    changes += [FieldChange(name, "removed", value, None) for name, value in before.items() if name not in after]
    return changes


def _same(a: Any, b: Any) -> bool:
    try:
        return canonical.canonical_bytes(a) == canonical.canonical_bytes(b)
    except NonCanonicalValueError:
        return bool(a == b)


def _hashes_to(value: Any, digest: str | None) -> bool | None:
    if digest is None:
        return None
    try:
        return canonical.stable_hash(value) == digest
    except NonCanonicalValueError:
        return False
