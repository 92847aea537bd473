"""The Landscape sweep: the invariants of DESIGN section 4, checked on one run from what is stored.

It reads the Landscape tables with SQLAlchemy and the content-addressed payload store, nothing else: no
engine objects, so the conformance kit can end every scenario with it whatever plugin ran. Each check
yields `Violation`s that name the invariant and carry the offending rows.

Which checks apply depends on how the run stands. A run still `running` (or killed, which looks the same)
may have open states and unfinished work; a `failed` or `interrupted` run may have unfinished tokens and
draft batches (the buffer a resume restores), but nothing open and nothing claiming to execute; a
`completed` run has neither.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from attrs import define, field, frozen
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, create_engine, exists, func, or_, select, true
from sqlalchemy.engine import make_url

from elspeth.canonical import stable_hash
from elspeth.errors import ElspethError, NonCanonicalValueError
from elspeth.landscape import schema
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.statuses import BatchStatus, RunStatus, StateStatus, TokenOutcome

ROWS_KEPT = 50
"""Offending rows kept per violation; the message gives the full count."""

_JSON_COLUMNS: tuple[tuple[Table, str], ...] = (
    (schema.runs, "settings_json"),
    (schema.nodes, "config_json"),
    (schema.rows, "payload_json"),
    (schema.tokens, "payload_json"),
    (schema.node_states, "error_json"),
    (schema.calls, "error_json"),
    (schema.batches, "checkpoint_json"),
    (schema.batches, "error_json"),
    (schema.batch_members, "payload_json"),
    (schema.checkpoints, "resume_json"),
    (schema.token_outcomes, "reason_json"),
)


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


def _violation(invariant: str, message: str, rows: Iterable[Any] = ()) -> Violation:
    found = [dict(r) for r in rows]
    if len(found) > ROWS_KEPT:
        message += f" (first {ROWS_KEPT} of {len(found)} rows shown)"
    return Violation(invariant, message, found[:ROWS_KEPT])


@define
class _Run:
    conn: Connection
    run_id: str
    status: str | None
    payloads: FilePayloadStore | None
    purged: bool
    """Its bodies were purged (retention): every record and hash stays, and the checks of bodies are moot."""

    def rows(self, query: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(query).mappings()]

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
    found = False
    for table in schema.metadata.tables.values():
        if "run_id" not in table.c:
            continue
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table.alias("parent")
            pairs = [(el.parent, parent.c[el.column.name]) for el in fk.elements]
            query = select(table).where(
                table.c.run_id == run.run_id,
                *(child.is_not(None) for child, _ in pairs),
                ~exists(select(pairs[0][1]).where(and_(*(p == c for c, p in pairs)))),
            )
            bad = run.rows(query)
            if bad:
                found = True
                columns = ", ".join(c.name for c, _ in pairs)
                targets = ", ".join(p.name for _, p in pairs)
                yield _violation(
                    "fk-check",
                    f"{len(bad)} {table.name} row(s) whose ({columns}) match no {fk.referred_table.name} ({targets})",
                    bad,
                )
    if run.conn.dialect.name == "sqlite" and not found:
        reported = [dict(r) for r in run.conn.exec_driver_sql("PRAGMA foreign_key_check").mappings()]
        if reported:
            yield _violation(
                "fk-check", f"PRAGMA foreign_key_check reports {len(reported)} dangling reference(s)", reported
            )


def _open_states(run: _Run) -> Iterator[Violation]:
    if not run.ended:
        return
    ns = schema.node_states
    bad = run.rows(select(ns).where(ns.c.run_id == run.run_id, ns.c.status == StateStatus.OPEN))
    if bad:
        yield _violation("open-state", f"{len(bad)} node_state(s) still open in a run that is {run.status!r}", bad)


def _stuck_batches(run: _Run) -> Iterator[Violation]:
    if not run.ended:
        return
    b = schema.batches
    condition: ColumnElement[bool]
    if run.completed:
        condition = b.c.status.in_([BatchStatus.DRAFT, BatchStatus.EXECUTING])
        what = "not completed or failed in a completed run"
    else:
        condition = and_(b.c.status == BatchStatus.EXECUTING, b.c.checkpoint_json.is_(None))
        what = f"left executing, with no pending checkpoint, in a run that is {run.status!r}: nothing runs them"
    bad = run.rows(select(b).where(b.c.run_id == run.run_id, condition))
    if bad:
        yield _violation("stuck-batch", f"{len(bad)} batch(es) {what}", bad)


def _outcomes(run: _Run) -> Iterator[Violation]:
    t, o = schema.tokens, schema.token_outcomes
    if run.completed:
        bad = run.rows(
            select(t)
            .outerjoin(o, and_(o.c.run_id == t.c.run_id, o.c.token_id == t.c.token_id))
            .where(t.c.run_id == run.run_id, o.c.token_id.is_(None))
            .order_by(t.c.token_id)
        )
        if bad:
            yield _violation("outcome-missing", f"{len(bad)} token(s) of a completed run have no outcome", bad)
    twice = select(o.c.token_id).where(o.c.run_id == run.run_id).group_by(o.c.token_id).having(func.count() > 1)
    bad = run.rows(select(o).where(o.c.run_id == run.run_id, o.c.token_id.in_(twice)).order_by(o.c.token_id))
    if bad:
        yield _violation("outcome-duplicate", "token(s) with more than one terminal outcome", bad)


def _rows_have_tokens(run: _Run) -> Iterator[Violation]:
    r, t = schema.rows, schema.tokens
    has_token = exists(select(t.c.token_id).where(t.c.run_id == r.c.run_id, t.c.row_id == r.c.row_id))
    bad = run.rows(select(r).where(r.c.run_id == run.run_id, ~has_token).order_by(r.c.row_id))
    if bad:
        yield _violation("row-token", f"{len(bad)} source row(s) without any token", bad)


def _call_indexes(run: _Run) -> Iterator[Violation]:
    c = schema.calls
    gappy = (
        select(c.c.state_id)
        .where(c.c.run_id == run.run_id)
        .group_by(c.c.state_id)
        .having(or_(func.min(c.c.call_index) != 0, func.max(c.c.call_index) != func.count() - 1))
    )
    bad = run.rows(
        select(c.c.run_id, c.c.state_id, c.c.call_index, c.c.call_type, c.c.provider, c.c.status)
        .where(c.c.run_id == run.run_id, c.c.state_id.in_(gappy))
        .order_by(c.c.state_id, c.c.call_index)
    )
    if bad:
        yield _violation("call-index-gap", "call_index is not 0..n-1 under these node_states", bad)


def _calls(run: _Run) -> Iterator[Violation]:
    """Every body is stored (inline or in the payload store, whose bytes hash to the ref) and hashes, as
    canonical JSON, to the recorded request_hash / response_hash."""
    if run.purged:
        return
    c = schema.calls
    missing, corrupt, mismatched, not_json = [], [], [], []
    for call in run.rows(select(c).where(c.c.run_id == run.run_id).order_by(c.c.state_id, c.c.call_index)):
        for side in ("request", "response"):
            inline, ref, digest = call[f"{side}_json"], call[f"{side}_ref"], call[f"{side}_hash"]
            if inline is None and ref is None:
                if digest is not None or side == "request":
                    missing.append({**call, "side": side})
                continue
            if ref is not None:
                if run.payloads is None:
                    missing.append({**call, "side": side, "problem": "no payload_dir to read the ref from"})
                    continue
                try:
                    inline = run.payloads.get(ref).decode("utf-8")
                except (ElspethError, UnicodeDecodeError) as exc:
                    corrupt.append({**call, "side": side, "problem": str(exc)})
                    continue
            try:
                value = strict_loads(inline)
                ok = digest is not None and stable_hash(value) == digest
            except (ValueError, NonCanonicalValueError) as exc:
                not_json.append({**call, "side": side, "problem": str(exc)})
                continue
            if not ok:
                mismatched.append({**call, "side": side})
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
    a = schema.artifacts
    latest = select(func.max(a.c.artifact_id)).where(a.c.run_id == run.run_id).group_by(a.c.node_id).scalar_subquery()
    bad = []
    for art in run.rows(select(a).where(a.c.run_id == run.run_id, a.c.artifact_id.in_(latest))):
        path = _file_of(art["uri"])
        if path is None:
            continue
        digest, size = _file_digest(path, None if run.completed else art["size"])
        if digest != art["content_hash"] or size != art["size"]:
            bad.append({**art, "file_sha256": digest, "file_size": size})
    if bad:
        scope = "the bytes stored at its uri" if run.completed else "the first `size` bytes at its uri"
        yield _violation("artifact-bytes", f"latest artifact's content_hash/size do not describe {scope}", bad)


def _batches(run: _Run) -> Iterator[Violation]:
    b, ns = schema.batches, schema.node_states
    unrecorded = run.rows(
        select(b).where(
            b.c.run_id == run.run_id,
            b.c.status.in_([BatchStatus.COMPLETED, BatchStatus.FAILED]),
            or_(b.c.trigger.is_(None), b.c.flush_state_id.is_(None)),
        )
    )
    if unrecorded:
        yield _violation("batch-flush", "finished batch(es) without a trigger or flush state", unrecorded)
    elsewhere = run.rows(
        select(b, ns.c.node_id.label("flush_state_node_id"), ns.c.operation.label("flush_state_operation"))
        .join(ns, and_(ns.c.run_id == b.c.run_id, ns.c.state_id == b.c.flush_state_id))
        .where(b.c.run_id == run.run_id, ns.c.node_id != b.c.node_id)
    )
    if elsewhere:
        yield _violation("batch-flush", "batch(es) whose flush state belongs to another node", elsewhere)


def _consumed(run: _Run) -> Iterator[Violation]:
    """CONSUMED tokens are members of exactly one completed batch (the one their outcome names), and every
    member of a completed batch is CONSUMED."""
    b, m, o = schema.batches, schema.batch_members, schema.token_outcomes
    completed_in: dict[int, list[int]] = defaultdict(list)
    member_query = (
        select(m.c.token_id, m.c.batch_id)
        .join(b, and_(b.c.run_id == m.c.run_id, b.c.batch_id == m.c.batch_id))
        .where(m.c.run_id == run.run_id, b.c.status == BatchStatus.COMPLETED)
    )
    for token_id, batch_id in run.conn.execute(member_query):
        completed_in[token_id].append(batch_id)
    outcomes = {r["token_id"]: r for r in run.rows(select(o).where(o.c.run_id == run.run_id))}
    bad_consumed = []
    for token_id, outcome in outcomes.items():
        if outcome["outcome"] != TokenOutcome.CONSUMED:
            continue
        batches = completed_in.get(token_id, [])
        if batches != [outcome["batch_id"]]:
            bad_consumed.append({**outcome, "completed_batches": batches})
    if bad_consumed:
        yield _violation(
            "consumed-batch", "CONSUMED token(s) not a member of exactly the one completed batch named", bad_consumed
        )
    bad_members = []
    for token_id, batches in sorted(completed_in.items()):
        found = outcomes.get(token_id)
        if found is None or found["outcome"] != TokenOutcome.CONSUMED:
            bad_members.append(
                {"token_id": token_id, "completed_batches": batches, "outcome": found and found["outcome"]}
            )
    if bad_members:
        yield _violation("consumed-batch", "member(s) of a completed batch that are not CONSUMED", bad_members)


def _bodies(run: _Run) -> Iterator[Violation]:
    """Rows, batch members and tokens that are not a source row's carry their payload: only a purge may
    take it away. (The database lets these be NULL for purged runs' sake.)"""
    if run.purged:
        return
    r, m, t = schema.rows, schema.batch_members, schema.tokens
    for table, extra in ((r, true()), (m, true()), (t, t.c.row_id.is_(None))):
        bad = run.rows(select(table).where(table.c.run_id == run.run_id, table.c.payload_json.is_(None), extra))
        if bad:
            yield _violation("row-body", f"{table.name} without their payload in a run that was not purged", bad)


def _row_hashes(run: _Run) -> Iterator[Violation]:
    r = schema.rows
    bad = []
    query = select(r).where(r.c.run_id == run.run_id, r.c.quarantined.is_(False), r.c.payload_json.is_not(None))
    for row in run.rows(query):
        try:
            payload = strict_loads(row["payload_json"])
        except ValueError:
            continue  # reported by the JSON check
        try:
            ok = row["payload_hash"] is not None and stable_hash(payload) == row["payload_hash"]
        except NonCanonicalValueError as exc:
            bad.append({**row, "problem": str(exc)})
            continue
        if not ok:
            bad.append(row)
    if bad:
        yield _violation("payload-hash", "row(s) whose payload_hash is not stable_hash(payload)", bad)


def _json_columns(run: _Run) -> Iterator[Violation]:
    """Stored JSON is JSON: no NaN or Infinity written by a plain json.dumps."""
    for table, column in _JSON_COLUMNS:
        bad = []
        for row in run.rows(select(table).where(table.c.run_id == run.run_id, table.c[column].is_not(None))):
            try:
                strict_loads(row[column])
            except ValueError as exc:
                bad.append({**row, "problem": str(exc)})
        if bad:
            yield _violation("non-canonical-json", f"{table.name}.{column} holds text that is not strict JSON", bad)


def _lineage(run: _Run) -> Iterator[Violation]:
    """Children exist only under an EXPANDED parent and batch outputs only under a completed batch; and all
    of them exist: the children's rows hash to what the expanding state recorded as its output (the hash
    of the list of rows), a batch's outputs to what its flush state recorded (the hash of their hashes)."""
    t, o, b, ns = schema.tokens, schema.token_outcomes, schema.batches, schema.node_states
    orphans = run.rows(
        select(t, o.c.outcome.label("parent_outcome"))
        .outerjoin(o, and_(o.c.run_id == t.c.run_id, o.c.token_id == t.c.parent_token_id))
        .where(
            t.c.run_id == run.run_id,
            t.c.parent_token_id.is_not(None),
            or_(o.c.outcome.is_(None), o.c.outcome != TokenOutcome.EXPANDED),
        )
    )
    if orphans:
        yield _violation("lineage", "child token(s) whose parent is not EXPANDED", orphans)
    unborn = run.rows(
        select(t, b.c.status.label("batch_status"))
        .join(b, and_(b.c.run_id == t.c.run_id, b.c.batch_id == t.c.origin_batch_id))
        .where(t.c.run_id == run.run_id, b.c.status != BatchStatus.COMPLETED)
    )
    if unborn:
        yield _violation("lineage", "output token(s) of a batch that is not completed", unborn)

    children: dict[int, list[Any]] = defaultdict(list)
    outputs: dict[int, list[Any]] = defaultdict(list)
    for token in run.rows(
        select(t.c.token_id, t.c.parent_token_id, t.c.origin_batch_id, t.c.payload_json)
        .where(t.c.run_id == run.run_id, or_(t.c.parent_token_id.is_not(None), t.c.origin_batch_id.is_not(None)))
        .order_by(t.c.token_id)
    ):
        if token["parent_token_id"] is not None:
            children[token["parent_token_id"]].append(token)
        else:
            outputs[token["origin_batch_id"]].append(token)

    def payload_hash(tokens: list[Any], combine: Callable[[list[Any]], Any]) -> str | None:
        try:
            return stable_hash(combine([strict_loads(tok["payload_json"]) for tok in tokens]))
        except (TypeError, ValueError, NonCanonicalValueError):
            return None  # reported by the JSON checks

    # The expanding state is the last completed one of the token at the node its outcome names.
    expanding: dict[int, dict[str, Any]] = {}
    for row in run.rows(
        select(o, ns.c.state_id.label("expanding_state"), ns.c.output_hash)
        .outerjoin(
            ns,
            and_(
                ns.c.run_id == o.c.run_id,
                ns.c.token_id == o.c.token_id,
                ns.c.node_id == o.c.node_id,
                ns.c.status == StateStatus.COMPLETED,
            ),
        )
        .where(o.c.run_id == run.run_id, o.c.outcome == TokenOutcome.EXPANDED)
        .order_by(o.c.token_id, ns.c.state_id)
    ):
        expanding[row["token_id"]] = row
    if run.purged:
        return  # the rows to hash are gone; their hashes stay in the states
    short = []
    for token_id, outcome in expanding.items():
        kids = children.get(token_id, [])
        if outcome["output_hash"] is None or payload_hash(kids, list) != outcome["output_hash"]:
            short.append({**outcome, "children": [k["token_id"] for k in kids]})
    if short:
        yield _violation(
            "expansion-children",
            "EXPANDED token(s) whose child tokens are not the rows the transform returned",
            short,
        )

    def hash_of_hashes(rows: list[Any]) -> list[str]:
        return [stable_hash(row) for row in rows]

    short = []
    flushed = run.rows(
        select(b.c.batch_id, b.c.node_id, b.c.flush_state_id, ns.c.output_hash)
        .join(ns, and_(ns.c.run_id == b.c.run_id, ns.c.state_id == b.c.flush_state_id))
        .where(b.c.run_id == run.run_id, b.c.status == BatchStatus.COMPLETED)
    )
    for batch in flushed:
        made = outputs.get(batch["batch_id"], [])
        if payload_hash(made, hash_of_hashes) != batch["output_hash"]:
            short.append({**batch, "output_tokens": [tok["token_id"] for tok in made]})
    if short:
        yield _violation(
            "batch-outputs", "completed batch(es) whose output tokens are not the rows the aggregate returned", short
        )


def _outcome_sinks(run: _Run) -> Iterator[Violation]:
    o, a, c = schema.token_outcomes, schema.artifacts, schema.checkpoints
    bad = run.rows(
        select(o, a.c.node_id.label("artifact_node_id"))
        .join(a, and_(a.c.run_id == o.c.run_id, a.c.artifact_id == o.c.artifact_id))
        .where(o.c.run_id == run.run_id, a.c.node_id != o.c.sink_node_id)
    )
    if bad:
        yield _violation("outcome-artifact", "outcome(s) confirmed by another sink's artifact", bad)
    bad = run.rows(
        select(c.c.run_id, c.c.checkpoint_id, c.c.node_id, c.c.artifact_id, a.c.node_id.label("artifact_node_id"))
        .join(a, and_(a.c.run_id == c.c.run_id, a.c.artifact_id == c.c.artifact_id))
        .where(c.c.run_id == run.run_id, a.c.node_id != c.c.node_id)
    )
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


def default_payload_dir(engine: Engine) -> Path | None:
    """Where the engine puts payloads when settings do not say: beside a SQLite file."""
    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "payloads"
    return None


def sweep(engine_or_url: Engine | str, run_id: str, payload_dir: str | Path | None = None) -> list[Violation]:
    """Every invariant violation in run `run_id` of the Landscape at `engine_or_url`. `payload_dir` is the
    payload store (default: `payloads` beside a SQLite file, as the engine does)."""
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        directory = Path(payload_dir) if payload_dir is not None else default_payload_dir(engine)
        payloads = FilePayloadStore(directory) if directory is not None else None
        with engine.connect() as conn:
            r = schema.runs
            status = conn.execute(select(r.c.status).where(r.c.run_id == run_id)).scalar()
            purged = conn.execute(select(schema.purges.c.run_id).where(schema.purges.c.run_id == run_id)).first()
            run = _Run(conn, run_id, status, payloads, purged is not None)
            found = [] if status is not None else [_violation("run-missing", f"no run {run_id!r} in the landscape")]
            for check in CHECKS:
                found.extend(check(run))
            conn.rollback()
        return found
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


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


def assert_clean(engine_or_url: Engine | str, run_id: str, payload_dir: str | Path | None = None) -> None:
    """Raise AssertionError with a readable report when the sweep finds anything."""
    violations = sweep(engine_or_url, run_id, payload_dir)
    if violations:
        raise AssertionError(report(violations, run_id))


__all__ = [
    "CHECKS",
    "Violation",
    "assert_clean",
    "default_payload_dir",
    "format_rows",
    "report",
    "strict_loads",
    "sweep",
]
