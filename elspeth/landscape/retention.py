"""Retention: purging the bodies of old runs while every hash and every record stays.

A purged run keeps its rows, tokens, states, calls, batches, outcomes and artifacts with all their hashes,
so what happened stays attributable, but no longer the data itself: source rows' and tokens' payloads,
batch members' copies of them, and call request and response bodies (inline, and the payload-store files
no unpurged run still refers to; the store is content-addressed, so runs share files) are gone. A run is
purged in one transaction, recorded in `purges`; its payload files are removed after the commit.
"""

from __future__ import annotations

import getpass
import re
import socket
import time
from collections.abc import Sequence

import attrs
from attrs import frozen
from sqlalchemy import Column, Connection, Engine, Table, and_, func, insert, or_, select, update

from elspeth import __version__
from elspeth.errors import ConfigError, ElspethError
from elspeth.landscape import schema as t
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.statuses import RunStatus

_UNITS = {"h": 3600, "d": 86400}
_AGE = re.compile(r"(\d+)\s*(h|hours?|d|days?)")
_CHUNK = 500
"""References looked up per query: well under every database's limit on bound parameters."""


@frozen
class Purge:
    """What `purges` records of one purged run."""

    run_id: str
    purged_at: float
    cutoff: float | None
    """The --older-than boundary (epoch seconds); None when the run was purged by name."""
    purged_by: str
    elspeth_version: str
    rows_cleared: int
    tokens_cleared: int
    batch_members_cleared: int
    calls_cleared: int
    payload_files_removed: int


@frozen
class Candidate:
    run_id: str
    status: str
    started_at: float
    ended_at: float | None


@frozen
class Selection:
    purge: list[Candidate]
    kept: list[tuple[Candidate, str]]
    """Runs the cutoff or the names reached that are not purged, each with the reason why."""


def parse_age(text: str) -> float:
    """'90d', '36h', '2 days': seconds. A ConfigError naming the option for anything else."""
    match = _AGE.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--older-than {text!r}: give a whole number of days or hours above zero, e.g. 90d or 36h")
    return int(match.group(1)) * _UNITS[match.group(2)[0]]


def purge_of(conn: Connection, run_id: str) -> Purge | None:
    """The purge of `run_id`, or None while its bodies are all there."""
    row = conn.execute(select(t.purges).where(t.purges.c.run_id == run_id)).first()
    return Purge(**row._mapping) if row is not None else None


def select_runs(
    conn: Connection,
    *,
    cutoff: float | None,
    run_ids: Sequence[str] = (),
    include_unfinished: bool = False,
) -> Selection:
    """The runs to purge: those ended before `cutoff` (started before it, for a run that never ended), and
    those named. Purged runs are left out. Running runs (or killed while running: nothing tells them apart
    for sure) are kept; so are failed and interrupted ones, which could still be resumed, unless
    `include_unfinished`: purging one makes it unresumable."""
    r = t.runs.c
    reached = or_(
        func.coalesce(r.ended_at, r.started_at) < cutoff if cutoff is not None else False,
        r.run_id.in_(list(run_ids)),
    )
    query = (
        select(r.run_id, r.status, r.started_at, r.ended_at)
        .where(reached, r.run_id.not_in(select(t.purges.c.run_id)))
        .order_by(r.started_at, r.run_id)
    )
    found = [Candidate(**row._mapping) for row in conn.execute(query)]
    unknown = set(run_ids) - {c.run_id for c in found} - set(conn.execute(select(t.purges.c.run_id)).scalars())
    if unknown:
        raise ElspethError(f"no run {sorted(unknown)[0]!r} in this landscape; 'elspeth runs' lists them")
    purge: list[Candidate] = []
    kept: list[tuple[Candidate, str]] = []
    for candidate in found:
        if candidate.status == RunStatus.RUNNING:
            kept.append((candidate, "running, or killed while running: resume it or let it end first"))
        elif candidate.status != RunStatus.COMPLETED and not include_unfinished:
            kept.append((candidate, f"{candidate.status}, so still resumable; --include-unfinished purges it"))
        else:
            purge.append(candidate)
    return Selection(purge, kept)


def purge_run(engine: Engine, store: FilePayloadStore, run_id: str, *, cutoff: float | None) -> Purge:
    """Purge one run's bodies in one transaction and record it; then remove the payload files that only
    purged runs referred to. Refuses a run that is running (a live process may be writing it)."""
    with engine.begin() as conn:
        # A write first: it takes the database's (SQLite) or the run's (PostgreSQL) write lock, so no resume
        # claims the run between this check and the commit.
        r = t.runs.c
        locked = conn.execute(
            update(t.runs).where(r.run_id == run_id, r.status != RunStatus.RUNNING).values(status=r.status)
        ).rowcount
        if locked != 1:
            raise ElspethError(
                f"run {run_id} is running (or was killed while running); resume it, or let it end, before purging"
            )
        calls = t.calls.c
        refs = _refs(conn, run_id)
        counts = {
            "rows_cleared": _clear(conn, t.rows, run_id, [t.rows.c.payload_json]),
            "tokens_cleared": _clear(conn, t.tokens, run_id, [t.tokens.c.payload_json]),
            "batch_members_cleared": _clear(conn, t.batch_members, run_id, [t.batch_members.c.payload_json]),
            # A call's references stay: they are the sha256 of the bodies the store held.
            "calls_cleared": _clear(
                conn,
                t.calls,
                run_id,
                [calls.request_json, calls.response_json],
                [calls.request_ref, calls.response_ref],
            ),
        }
        # The values a step changed are row data too (not counted in the record, whose columns predate them).
        states = t.node_states.c
        _clear(conn, t.node_states, run_id, [states.output_json], [states.output_ref])
        doomed = sorted(ref for ref in refs - _refs_in_use(conn, refs, besides=run_id) if store.exists(ref))
        record = Purge(
            run_id=run_id,
            purged_at=time.time(),
            cutoff=cutoff,
            purged_by=f"{getpass.getuser()}@{socket.gethostname()}",
            elspeth_version=__version__,
            payload_files_removed=len(doomed),
            **counts,
        )
        conn.execute(insert(t.purges).values(**attrs.asdict(record)))
    # After the commit: a crash in between leaves files nobody refers to, never a reference without its file.
    for ref in doomed:
        store.remove(ref)
    return record


def _clear(conn: Connection, table: Table, run_id: str, bodies: list[Column], refs: Sequence[Column] = ()) -> int:  # type: ignore[type-arg]
    """Set `bodies` NULL in the run's rows of `table` that hold any body; how many did."""
    has_body = or_(*(c.is_not(None) for c in [*bodies, *refs]))
    where = and_(table.c.run_id == run_id, has_body)
    return conn.execute(update(table).where(where).values({c.name: None for c in bodies})).rowcount


def _ref_columns() -> list[Column]:  # type: ignore[type-arg]
    """Every column that names a payload-store file: call bodies, and the outputs kept of changed steps."""
    return [t.calls.c.request_ref, t.calls.c.response_ref, t.node_states.c.output_ref]


def _refs(conn: Connection, run_id: str) -> set[str]:
    found: set[str] = set()
    for ref in _ref_columns():
        run = ref.table.c.run_id
        found.update(conn.execute(select(ref).where(run == run_id, ref.is_not(None)).distinct()).scalars())
    return found


def _refs_in_use(conn: Connection, refs: set[str], *, besides: str) -> set[str]:
    """Which of `refs` a run other than `besides`, not purged, still refers to."""
    ordered = sorted(refs)
    used: set[str] = set()
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        for ref in _ref_columns():
            run = ref.table.c.run_id
            used.update(
                conn.execute(
                    select(ref).where(ref.in_(chunk), run != besides, run.not_in(select(t.purges.c.run_id))).distinct()
                ).scalars()
            )
    return used
