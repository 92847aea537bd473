"""A replayed run must record the same calls as the run that recorded the cassette: same requests, same
responses, same order, under the same nodes."""

from __future__ import annotations

from typing import Any

from elspeth.landscape.reading import open_landscape
from elspeth_testkit.sweep import Violation


def _calls(url: str, run_id: str) -> list[dict[str, Any]]:
    with open_landscape(url) as landscape:
        records = landscape.run(run_id)
        states = {s.state_id: s for s in records.states}
        return [
            {
                "node_id": states[c.state_id].node_id,
                "token_id": states[c.state_id].token_id,
                "call_index": c.call_index,
                "call_type": c.call_type,
                "provider": c.provider,
                "status": str(c.status),
                "request_hash": c.request.hash,
                "response_hash": c.response.hash,
            }
            for c in records.calls
            if c.state_id in states  # as a join would: an orphan call is the sweep's finding
        ]


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
