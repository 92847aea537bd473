"""The Landscape sweep: the invariants of DESIGN section 4, checked on one run from what is stored.

It reads the run's records through the declared read API (`elspeth.landscape.reading`), which resolves
bodies from the content-addressed payload store, and nothing else: no engine objects, no SQL, so the
conformance kit can end every scenario with it whatever plugin ran. Each check
yields `Violation`s that name the invariant and carry the offending rows.

Which checks apply depends on how the run stands. A run still `running` (or killed, which looks the same)
may have open states and unfinished work; a `failed` or `interrupted` run may have unfinished tokens and
draft batches (the buffer a resume restores), but nothing open and nothing claiming to execute; a
`completed` run has neither.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from attrs import asdict, define, field, frozen

from elspeth.canonical import stable_hash
from elspeth.errors import NonCanonicalValueError
from elspeth.landscape.reading import (
    BatchStatus,
    Body,
    Landscape,
    RunRecords,
    RunStatus,
    StateStatus,
    TokenOutcome,
    open_landscape,
)

ROWS_KEPT = 50
"""Offending rows kept per violation; the message gives the full count."""

_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("runs", "settings_json"),
    ("nodes", "config_json"),
    ("rows", "payload_json"),
    ("tokens", "payload_json"),
    ("states", "error_json"),
    ("calls", "error_json"),
    ("batches", "checkpoint_json"),
    ("batches", "error_json"),
    ("members", "payload_json"),
    ("checkpoints", "resume_json"),
    ("outcomes", "reason_json"),
)
"""The stored JSON texts besides call bodies (checked with them): (records of the run, field)."""


@frozen
class Violation:
    """One broken invariant: a short id (`fk-check`, `open-state`, ...), what is wrong, and the rows."""

    invariant: str
    message: str
    rows: list[dict[str, Any]] = field(factory=list)


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (which Python's json writes and reads)."""
    return json.loads(text, parse_constant=_refuse_constant)


def row_of(record: Any, **extra: Any) -> dict[str, Any]:
    """A record as a row to show: its fields, a body as its text, `_ref` and `_hash` (and `_problem`)."""
    row: dict[str, Any] = {}
    for name, value in asdict(record, recurse=False).items():
        if isinstance(value, Body):
            row.update({name: value.text, f"{name}_ref": value.ref, f"{name}_hash": value.hash})
            if value.problem is not None:
                row[f"{name}_problem"] = value.problem
        else:
            row[name] = value
    return {**row, **extra}


def _violation(invariant: str, message: str, rows: Iterable[Any] = ()) -> Violation:
    found = [r if isinstance(r, dict) else row_of(r) for r in rows]
    if len(found) > ROWS_KEPT:
        message += f" (first {ROWS_KEPT} of {len(found)} rows shown)"
    return Violation(invariant, message, found[:ROWS_KEPT])


@define
class _Run:
    records: RunRecords
    status: RunStatus | None
    purged: bool
    """Its bodies were purged (retention): every record and hash stays, and the checks of bodies are moot."""

    @property
    def ended(self) -> bool:
        return self.status is not None and self.status != RunStatus.RUNNING

    @property
    def completed(self) -> bool:
        return self.status == RunStatus.COMPLETED


# ---------------------------------------------------------------- the checks


def _foreign_keys(run: _Run) -> Iterator[Violation]:
    """Every declared reference resolves (checked per constraint, so the rows can be shown), and on SQLite
    PRAGMA foreign_key_check is empty for the whole database."""
    for dangling in run.records.dangling():
        yield _violation("fk-check", dangling.description, dangling.rows)


def _open_states(run: _Run) -> Iterator[Violation]:
    if not run.ended:
        return
    bad = [s for s in run.records.states if s.status == StateStatus.OPEN]
    if bad:
        yield _violation("open-state", f"{len(bad)} node_state(s) still open in a run that is '{run.status}'", bad)


def _stuck_batches(run: _Run) -> Iterator[Violation]:
    if not run.ended:
        return
    if run.completed:
        bad = [b for b in run.records.batches if b.status in (BatchStatus.DRAFT, BatchStatus.EXECUTING)]
        what = "not completed or failed in a completed run"
    else:
        bad = [b for b in run.records.batches if b.status == BatchStatus.EXECUTING and b.checkpoint_json is None]
        what = f"left executing, with no pending checkpoint, in a run that is '{run.status}': nothing runs them"
    if bad:
        yield _violation("stuck-batch", f"{len(bad)} batch(es) {what}", bad)


def _outcomes(run: _Run) -> Iterator[Violation]:
    outcomes = run.records.outcomes
    if run.completed:
        ended = {o.token_id for o in outcomes}
        bad = [t for t in run.records.tokens if t.token_id not in ended]
        if bad:
            yield _violation("outcome-missing", f"{len(bad)} token(s) of a completed run have no outcome", bad)
    counted = Counter(o.token_id for o in outcomes)
    bad_outcomes = [o for o in outcomes if counted[o.token_id] > 1]
    if bad_outcomes:
        yield _violation("outcome-duplicate", "token(s) with more than one terminal outcome", bad_outcomes)


def _rows_have_tokens(run: _Run) -> Iterator[Violation]:
    with_tokens = {t.row_id for t in run.records.tokens}
    bad = [r for r in run.records.rows if r.row_id not in with_tokens]
    if bad:
        yield _violation("row-token", f"{len(bad)} source row(s) without any token", bad)


def _call_indexes(run: _Run) -> Iterator[Violation]:
    indexes: dict[int, list[int]] = defaultdict(list)
    for call in run.records.calls:
        indexes[call.state_id].append(call.call_index)
    gappy = {state for state, found in indexes.items() if sorted(found) != list(range(len(found)))}
    bad = [
        {k: row_of(c)[k] for k in ("state_id", "call_index", "call_type", "provider", "status")}
        for c in run.records.calls
        if c.state_id in gappy
    ]
    if bad:
        yield _violation("call-index-gap", "call_index is not 0..n-1 under these node_states", bad)


def _calls(run: _Run) -> Iterator[Violation]:
    """Every body is stored (inline or in the payload store, whose bytes hash to the ref) and hashes, as
    canonical JSON, to the recorded request_hash / response_hash."""
    if run.purged:
        return
    missing, corrupt, mismatched, not_json = [], [], [], []
    for call in run.records.calls:
        for side, body in (("request", call.request), ("response", call.response)):
            if not body.recorded:
                if body.hash is not None or side == "request":
                    missing.append(row_of(call, side=side))
                continue
            if body.text is None:
                corrupt.append(row_of(call, side=side, problem=body.problem))
                continue
            try:
                ok = body.hash is not None and stable_hash(strict_loads(body.text)) == body.hash
            except (ValueError, NonCanonicalValueError) as exc:
                not_json.append(row_of(call, side=side, problem=str(exc)))
                continue
            if not ok:
                mismatched.append(row_of(call, side=side))
    if missing:
        yield _violation("call-body", "call(s) whose request or response is not stored (metadata only)", missing)
    if corrupt:
        yield _violation("payload-hash", "payload ref(s) missing from the store or not hashing to their name", corrupt)
    if not_json:
        yield _violation("non-canonical-json", "call body(ies) that are not canonical JSON", not_json)
    if mismatched:
        yield _violation(
            "call-hash",
            "request_hash/response_hash differ from sha256 of the canonical JSON of the stored body",
            mismatched,
        )


def _file_digest(path: Path, limit: int | None = None) -> tuple[str, int]:
    """sha256 and length of the file's bytes (of at most its first `limit` bytes)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20 if limit is None else min(1 << 20, limit - size)):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _file_of(uri: str) -> Path | None:
    if not uri.startswith("file://"):
        return None
    for candidate in (uri[len("file://") :], unquote(uri[len("file://") :])):
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def _artifacts(run: _Run) -> Iterator[Violation]:
    """Each sink's latest artifact describes all the bytes now at its uri (files that can be reached). A run
    that has not completed may have written past its last flush, which a resume discards: there the
    artifact must describe the first `size` bytes, which nothing may have changed."""
    latest = {a.node_id: a for a in run.records.artifacts}  # in artifact_id order: the last one stays
    bad = []
    for art in latest.values():
        path = _file_of(art.uri)
        if path is None:
            continue
        digest, size = _file_digest(path, None if run.completed else art.size)
        if digest != art.content_hash or size != art.size:
            bad.append(row_of(art, file_sha256=digest, file_size=size))
    if bad:
        scope = "the bytes stored at its uri" if run.completed else "the first `size` bytes at its uri"
        yield _violation("artifact-bytes", f"latest artifact's content_hash/size do not describe {scope}", bad)


def _batches(run: _Run) -> Iterator[Violation]:
    batches = run.records.batches
    unrecorded = [
        b
        for b in batches
        if b.status in (BatchStatus.COMPLETED, BatchStatus.FAILED) and (b.trigger is None or b.flush_state_id is None)
    ]
    if unrecorded:
        yield _violation("batch-flush", "finished batch(es) without a trigger or flush state", unrecorded)
    states = {s.state_id: s for s in run.records.states}
    elsewhere = [
        row_of(b, flush_state_node_id=state.node_id, flush_state_operation=state.operation)
        for b in batches
        if (state := states.get(b.flush_state_id if b.flush_state_id is not None else -1)) is not None
        and state.node_id != b.node_id
    ]
    if elsewhere:
        yield _violation("batch-flush", "batch(es) whose flush state belongs to another node", elsewhere)


def _consumed(run: _Run) -> Iterator[Violation]:
    """CONSUMED tokens are members of exactly one completed batch (the one their outcome names), and every
    member of a completed batch is CONSUMED."""
    completed = {b.batch_id for b in run.records.batches if b.status == BatchStatus.COMPLETED}
    completed_in: dict[int, list[int]] = defaultdict(list)
    for member in run.records.members:
        if member.batch_id in completed:
            completed_in[member.token_id].append(member.batch_id)
    outcomes = {o.token_id: o for o in run.records.outcomes}
    bad_consumed = []
    for token_id, outcome in outcomes.items():
        if outcome.outcome != TokenOutcome.CONSUMED:
            continue
        batches = completed_in.get(token_id, [])
        if batches != [outcome.batch_id]:
            bad_consumed.append(row_of(outcome, completed_batches=batches))
    if bad_consumed:
        yield _violation(
            "consumed-batch", "CONSUMED token(s) not a member of exactly the one completed batch named", bad_consumed
        )
    bad_members = []
    for token_id, batches in sorted(completed_in.items()):
        found = outcomes.get(token_id)
        if found is None or found.outcome != TokenOutcome.CONSUMED:
            bad_members.append({"token_id": token_id, "completed_batches": batches, "outcome": found and found.outcome})
    if bad_members:
        yield _violation("consumed-batch", "member(s) of a completed batch that are not CONSUMED", bad_members)


def _bodies(run: _Run) -> Iterator[Violation]:
    """Rows, batch members and tokens that are not a source row's carry their payload: only a purge may
    take it away. (The database lets these be NULL for purged runs' sake.)"""
    if run.purged:
        return
    records = run.records
    for name, bad in (
        ("rows", [r for r in records.rows if r.payload_json is None]),
        ("batch_members", [m for m in records.members if m.payload_json is None]),
        ("tokens", [t for t in records.tokens if t.payload_json is None and t.row_id is None]),
    ):
        if bad:
            yield _violation("row-body", f"{name} without their payload in a run that was not purged", bad)


def _row_hashes(run: _Run) -> Iterator[Violation]:
    bad = []
    for row in run.records.rows:
        if row.quarantined or row.payload_json is None:
            continue
        try:
            payload = strict_loads(row.payload_json)
        except ValueError:
            continue  # reported by the JSON check
        try:
            ok = row.payload_hash is not None and stable_hash(payload) == row.payload_hash
        except NonCanonicalValueError as exc:
            bad.append(row_of(row, problem=str(exc)))
            continue
        if not ok:
            bad.append(row_of(row))
    if bad:
        yield _violation("payload-hash", "row(s) whose payload_hash is not stable_hash(payload)", bad)


def _json_columns(run: _Run) -> Iterator[Violation]:
    """Stored JSON is JSON: no NaN or Infinity written by a plain json.dumps."""
    for kind, name in _JSON_FIELDS:
        records = [run.records.run] if kind == "runs" else getattr(run.records, kind)
        bad = []
        for record in records:
            text = getattr(record, name, None)
            if text is None:
                continue
            try:
                strict_loads(text)
            except ValueError as exc:
                bad.append(row_of(record, problem=str(exc)))
        if bad:
            yield _violation("non-canonical-json", f"{kind}.{name} holds text that is not strict JSON", bad)


def _lineage(run: _Run) -> Iterator[Violation]:
    """Children exist only under an EXPANDED parent and batch outputs only under a completed batch; and all
    of them exist: the children's rows hash to what the expanding state recorded as its output (the hash
    of the list of rows), a batch's outputs to what its flush state recorded (the hash of their hashes)."""
    records = run.records
    outcomes = {o.token_id: o for o in records.outcomes}
    batches = {b.batch_id: b for b in records.batches}
    orphans = []
    for t in records.tokens:
        if t.parent_token_id is None:
            continue
        parent = outcomes.get(t.parent_token_id)
        if parent is None or parent.outcome != TokenOutcome.EXPANDED:
            orphans.append(row_of(t, parent_outcome=parent and parent.outcome))
    if orphans:
        yield _violation("lineage", "child token(s) whose parent is not EXPANDED", orphans)
    unborn = [
        row_of(t, batch_status=batches[t.origin_batch_id].status)
        for t in records.tokens
        if t.origin_batch_id in batches and batches[t.origin_batch_id].status != BatchStatus.COMPLETED
    ]
    if unborn:
        yield _violation("lineage", "output token(s) of a batch that is not completed", unborn)

    children: dict[int, list[Any]] = defaultdict(list)
    outputs: dict[int, list[Any]] = defaultdict(list)
    for token in records.tokens:
        if token.parent_token_id is not None:
            children[token.parent_token_id].append(token)
        elif token.origin_batch_id is not None:
            outputs[token.origin_batch_id].append(token)

    def payload_hash(tokens: list[Any], combine: Callable[[list[Any]], Any]) -> str | None:
        try:
            return stable_hash(combine([strict_loads(tok.payload_json) for tok in tokens]))
        except (TypeError, ValueError, NonCanonicalValueError):
            return None  # reported by the JSON checks

    # The expanding state is the last completed one of the token at the node its outcome names.
    expanding: dict[int, Any] = {o.token_id: None for o in records.outcomes if o.outcome == TokenOutcome.EXPANDED}
    for state in records.states:
        outcome = outcomes.get(state.token_id) if state.token_id is not None else None
        if (
            outcome is not None
            and outcome.token_id in expanding
            and state.node_id == outcome.node_id
            and state.status == StateStatus.COMPLETED
        ):
            expanding[outcome.token_id] = state
    if run.purged:
        return  # the rows to hash are gone; their hashes stay in the states
    short = []
    for token_id, state in expanding.items():
        kids = children.get(token_id, [])
        output_hash = None if state is None else state.output_hash
        if output_hash is None or payload_hash(kids, list) != output_hash:
            short.append(
                row_of(
                    outcomes[token_id],
                    expanding_state=None if state is None else state.state_id,
                    output_hash=output_hash,
                    children=[k.token_id for k in kids],
                )
            )
    if short:
        yield _violation(
            "expansion-children",
            "EXPANDED token(s) whose child tokens are not the rows the transform returned",
            short,
        )

    def hash_of_hashes(rows: list[Any]) -> list[str]:
        return [stable_hash(row) for row in rows]

    states = {s.state_id: s for s in records.states}
    short = []
    for batch in batches.values():
        flush = states.get(batch.flush_state_id) if batch.flush_state_id is not None else None
        if batch.status != BatchStatus.COMPLETED or flush is None:
            continue
        made = outputs.get(batch.batch_id, [])
        if payload_hash(made, hash_of_hashes) != flush.output_hash:
            short.append(
                {
                    "batch_id": batch.batch_id,
                    "node_id": batch.node_id,
                    "flush_state_id": batch.flush_state_id,
                    "output_hash": flush.output_hash,
                    "output_tokens": [tok.token_id for tok in made],
                }
            )
    if short:
        yield _violation(
            "batch-outputs", "completed batch(es) whose output tokens are not the rows the aggregate returned", short
        )


def _outcome_sinks(run: _Run) -> Iterator[Violation]:
    artifacts = {a.artifact_id: a for a in run.records.artifacts}
    bad = [
        row_of(o, artifact_node_id=artifacts[o.artifact_id].node_id)
        for o in run.records.outcomes
        if o.artifact_id in artifacts and artifacts[o.artifact_id].node_id != o.sink_node_id
    ]
    if bad:
        yield _violation("outcome-artifact", "outcome(s) confirmed by another sink's artifact", bad)
    bad = [
        row_of(c, artifact_node_id=artifacts[c.artifact_id].node_id)
        for c in run.records.checkpoints
        if c.artifact_id in artifacts and artifacts[c.artifact_id].node_id != c.node_id
    ]
    if bad:
        yield _violation("outcome-artifact", "checkpoint(s) pointing at another sink's artifact", bad)


CHECKS: tuple[Callable[[_Run], Iterator[Violation]], ...] = (
    _foreign_keys,
    _open_states,
    _stuck_batches,
    _outcomes,
    _rows_have_tokens,
    _bodies,
    _call_indexes,
    _calls,
    _artifacts,
    _batches,
    _consumed,
    _row_hashes,
    _json_columns,
    _lineage,
    _outcome_sinks,
)


# ---------------------------------------------------------------- entry points


@contextmanager
def opened(landscape: Landscape | str, payload_dir: str | Path | None = None) -> Iterator[Landscape]:
    """`landscape` itself, or the one at that URL (with `payload_dir`, default where the engine puts it),
    closed when done."""
    if isinstance(landscape, Landscape):
        yield landscape
        return
    with open_landscape(landscape, payload_dir) as reader:
        yield reader


def sweep(landscape: Landscape | str, run_id: str, payload_dir: str | Path | None = None) -> list[Violation]:
    """Every invariant violation in run `run_id` of `landscape` (open, or its URL). `payload_dir` is the
    payload store of a URL (default: where the engine puts it, `payloads` beside a SQLite file)."""
    with opened(landscape, payload_dir) as reader:
        records = reader.run(run_id)
        info = records.run
        if info is None:
            return [_violation("run-missing", f"no run {run_id!r} in the landscape")]
        run = _Run(records, info.status, records.purge is not None)
        return [violation for check in CHECKS for violation in check(run)]


def _cell(value: Any, width: int = 36) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_rows(rows: list[dict[str, Any]], limit: int = 10) -> str:
    if not rows:
        return "    (no rows)"
    columns = list(dict.fromkeys(key for row in rows[:limit] for key in row))
    cells = [[_cell(row.get(col)) for col in columns] for row in rows[:limit]]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]
    lines = [" | ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    return "\n".join("    " + line for line in lines)


def report(violations: list[Violation], run_id: str) -> str:
    """A readable account of `violations`: per violation its invariant, message and a short table."""
    parts = [f"Landscape sweep of run {run_id}: {len(violations)} violation(s)"]
    for v in violations:
        parts.append(f"\n[{v.invariant}] {v.message}\n{format_rows(v.rows)}")
    return "\n".join(parts)


def assert_clean(landscape: Landscape | str, run_id: str, payload_dir: str | Path | None = None) -> None:
    """Raise AssertionError with a readable report when the sweep finds anything."""
    violations = sweep(landscape, run_id, payload_dir)
    if violations:
        raise AssertionError(report(violations, run_id))


__all__ = [
    "CHECKS",
    "Violation",
    "assert_clean",
    "format_rows",
    "opened",
    "report",
    "row_of",
    "strict_loads",
    "sweep",
]
