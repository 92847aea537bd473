"""Call bodies kept in the payload store: reading them back, and finding those that are gone (purged)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, func, or_, select

from elspeth.evidence.records import BODY_FIELDS
from elspeth.landscape import schema
from elspeth.landscape.payloads import FilePayloadStore


def stored_refs(conn: Connection, run_id: str) -> Iterator[tuple[int, int, str, str]]:
    """(state_id, call_index, which body, ref) of every call body of the run kept in the payload store."""
    c = schema.calls.c
    query = (
        select(c.state_id, c.call_index, c.request_ref, c.response_ref)
        .where(c.run_id == run_id, or_(c.request_ref.is_not(None), c.response_ref.is_not(None)))
        .order_by(c.state_id, c.call_index)
    )
    for state_id, call_index, request_ref, response_ref in conn.execute(query):
        for which, ref in (("request", request_ref), ("response", response_ref)):
            if ref is not None:
                yield state_id, call_index, which, ref


def purged_bodies(conn: Connection, run_id: str, store: FilePayloadStore) -> int:
    """How many call bodies the run recorded a hash of but holds neither inline nor in the store.

    A purge keeps the hashes and removes the bodies; this is where the rest of elspeth learns of it."""
    c = schema.calls.c
    inline_gone = sum(
        conn.execute(
            select(func.count())
            .select_from(schema.calls)
            .where(c.run_id == run_id, c[hashed].is_not(None), c[text].is_(None), c[ref].is_(None))
        ).scalar_one()
        for text, ref, hashed in BODY_FIELDS
    )
    return inline_gone + sum(1 for *_, ref in stored_refs(conn, run_id) if not store.exists(ref))
