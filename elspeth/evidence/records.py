"""The export format's records: which Landscape table each record type holds, how a line is written, and the
hashes the records carry about themselves. docs/evidence.md describes the same (a test holds them together)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table

from elspeth import canonical
from elspeth.errors import NonCanonicalValueError
from elspeth.landscape import schema

FORMAT = "elspeth-export"
VERSION = 1
SIGNATURE_ALGORITHM = "ed25519-sha256"

RECORD_TABLES: tuple[tuple[str, Table], ...] = (
    ("run", schema.runs),
    ("node", schema.nodes),
    ("row", schema.rows),
    ("token", schema.tokens),
    ("state", schema.node_states),
    ("call", schema.calls),
    ("batch", schema.batches),
    ("batch_member", schema.batch_members),
    ("artifact", schema.artifacts),
    ("checkpoint", schema.checkpoints),
    ("outcome", schema.token_outcomes),
)
"""Record type and table, in the order an export writes them. A record holds every column of its row
except run_id (the header names the run), under the column's name."""

BODY_FIELDS = (("request_json", "request_ref", "request_hash"), ("response_json", "response_ref", "response_hash"))
"""A call's bodies: inline text, payload-store reference, and the hash of the body's canonical JSON."""

OUTPUT_FIELDS = (("output_json", "output_ref", "output_hash"),)
"""A state's kept output, likewise: present when the step changed the row (and not purged)."""


# Built once: json.dumps builds an encoder per call, which costs as much as encoding a small record.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode_line(record: dict[str, Any]) -> bytes:
    """One record as one line: compact JSON, UTF-8, newline-terminated (json escapes newlines in strings)."""
    try:
        return (_encode(record) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in some recorded text: escaped, still the same JSON value
        return (_encode_ascii(record) + "\n").encode("ascii")


def hash_problem(text: str, recorded: str) -> str | None:
    """Why stored JSON `text` does not hash (SHA-256 of its RFC 8785 form) to `recorded`, or None if it does."""
    try:
        actual = canonical.stable_hash(json.loads(text))
    except (ValueError, NonCanonicalValueError) as exc:
        return f"it is not canonical JSON any more ({exc})"
    if actual != recorded:
        return f"it hashes to {actual[:12]}…, not the recorded {recorded[:12]}…"
    return None
