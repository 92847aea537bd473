"""A replayed run must record the same calls as the run that recorded the cassette: same requests, same
responses, same order, under the same nodes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, select

from elspeth.landscape import schema
from elspeth_testkit.sweep import Violation


def _calls(url: str, run_id: str) -> list[dict[str, Any]]:
    c, s = schema.calls, schema.node_states
    query = (
        select(
            s.c.node_id,
            s.c.token_id,
            c.c.call_index,
            c.c.call_type,
            c.c.provider,
            c.c.status,
            c.c.request_hash,
            c.c.response_hash,
        )
        .join(s, (s.c.run_id == c.c.run_id) & (s.c.state_id == c.c.state_id))
        .where(c.c.run_id == run_id)
        .order_by(c.c.state_id, c.c.call_index)
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def compare_replayed_calls(recorded: tuple[str, str], replayed: tuple[str, str]) -> list[Violation]:
    """Each argument is (landscape URL, run id). Returns a `replay-calls` violation per difference."""
    a, b = _calls(*recorded), _calls(*replayed)
    if len(a) != len(b):
        return [Violation("replay-calls", f"the recorded run made {len(a)} calls, the replay {len(b)}", (a + b)[:20])]
    return [
        Violation("replay-calls", f"call {i} differs between the recorded run and its replay", [x, y])
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        if x != y
    ]
