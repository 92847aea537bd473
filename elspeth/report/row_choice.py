"""Which rows a report shows in full: those asked for (`--rows 0-99,512`), else all of a small run, or for a
big one a bounded choice of the rows that matter: the first ones, some of every outcome at every sink, and
rows whose calls or steps failed. A report stays the same size however big the run."""

from __future__ import annotations

from attrs import frozen
from sqlalchemy import Connection, and_, select

from elspeth.errors import ConfigError
from elspeth.landscape import schema as t

ALL_ROWS_UP_TO = 500
"""A run with at most this many rows is shown whole."""
FIRST_ROWS = 100
PER_GROUP = 50
"""Rows of each outcome at each sink (and of failed calls, of failed steps) in a big run's report."""
INDEX_ROWS = 5_000
"""Rows listed in the page's search index (their number, outcome, sink and a line of their values)."""
MAX_CHOSEN = 5_000
"""Rows `--rows` may ask for in full at once: the page must still open."""


@frozen
class RowChoice:
    rows: list[int]
    """The rows shown in full, ascending."""
    why: str
    """How they were chosen, as the page says it."""


def parse_rows(spec: str) -> list[int]:
    """`0-99,512` -> [0, ..., 99, 512]: row numbers (from 0) and inclusive ranges, comma-separated."""
    chosen: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(
                f"--rows: {part!r} is not a row number or a range; give e.g. --rows 0-99,512 (rows count from 0)"
            ) from None
        if first < 0 or last < first:
            raise ConfigError(f"--rows: {part!r} is not a range of rows; give e.g. --rows 0-99 (rows count from 0)")
        if last - first + 1 + len(chosen) > MAX_CHOSEN:
            raise ConfigError(f"--rows asks for more than {MAX_CHOSEN:,} rows; a page of so many would not open")
        chosen.update(range(first, last + 1))
    return sorted(chosen)


def choose_rows(
    conn: Connection, run_id: str, total: int, asked: list[int] | None, *, failed_calls: bool, failed_steps: bool
) -> RowChoice:
    """`failed_calls`, `failed_steps`: whether the run has any, known from its counts; where it has none,
    looking for their rows would scan every call and every state for nothing."""
    if asked is not None:
        r = t.rows.c
        found = set(conn.execute(select(r.row_id).where(r.run_id == run_id, r.row_id.in_(asked))).scalars())
        return RowChoice(sorted(found), f"the {len(found):,} rows asked for with --rows")
    if total <= ALL_ROWS_UP_TO:
        return RowChoice(list(range(total)), "every row of the run")
    chosen = set(range(min(FIRST_ROWS, total)))
    chosen |= _rows_per_outcome(conn, run_id)
    if failed_calls:
        chosen |= _rows_with_failed_calls(conn, run_id)
    if failed_steps:
        chosen |= _rows_with_failed_steps(conn, run_id)
    return RowChoice(
        sorted(chosen),
        f"the first {FIRST_ROWS} rows, up to {PER_GROUP} of each outcome at each sink, and up to {PER_GROUP} "
        "rows with failed calls and with failed steps",
    )


def _rows_per_outcome(conn: Connection, run_id: str) -> set[int]:
    o, k = t.token_outcomes.c, t.tokens.c
    groups = conn.execute(
        select(o.outcome, o.sink_node_id).where(o.run_id == run_id).group_by(o.outcome, o.sink_node_id)
    ).all()
    found: set[int] = set()
    for outcome, sink in groups:
        same_sink = o.sink_node_id.is_(None) if sink is None else o.sink_node_id == sink
        found.update(
            conn.execute(
                select(k.row_id)
                .join(t.token_outcomes, and_(o.run_id == k.run_id, o.token_id == k.token_id))
                .where(k.run_id == run_id, o.outcome == outcome, same_sink, k.row_id.is_not(None))
                .order_by(k.token_id)
                .limit(PER_GROUP)
            ).scalars()
        )
    return found


def _rows_with_failed_calls(conn: Connection, run_id: str) -> set[int]:
    c, s, k = t.calls.c, t.node_states.c, t.tokens.c
    query = (
        select(k.row_id)
        .select_from(t.calls)
        .join(t.node_states, and_(s.run_id == c.run_id, s.state_id == c.state_id))
        .join(t.tokens, and_(k.run_id == s.run_id, k.token_id == s.token_id))
        .where(c.run_id == run_id, c.status == "error", k.row_id.is_not(None))
        .order_by(c.state_id)
        .limit(PER_GROUP)
    )
    return set(conn.execute(query).scalars())


def _rows_with_failed_steps(conn: Connection, run_id: str) -> set[int]:
    s, k = t.node_states.c, t.tokens.c
    query = (
        select(k.row_id)
        .select_from(t.node_states)
        .join(t.tokens, and_(k.run_id == s.run_id, k.token_id == s.token_id))
        .where(s.run_id == run_id, s.status == "failed", k.row_id.is_not(None))
        .order_by(s.state_id)
        .limit(PER_GROUP)
    )
    return set(conn.execute(query).scalars())
