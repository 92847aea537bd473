"""`elspeth export`: every record of one run as signed JSON Lines (the format: docs/evidence.md).

Streamed table by table, so memory stays flat however many rows the run has; every line after the first
carries the SHA-256 of the line before it ("prev"), so a checker can name a line that was changed, and the
last line signs the SHA-256 of all the bytes before it.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from elspeth import __version__
from elspeth.errors import ElspethError, LandscapeError
from elspeth.evidence import signing
from elspeth.evidence.grade import Grade
from elspeth.evidence.records import (
    BODY_FIELDS,
    FORMAT,
    OUTPUT_FIELDS,
    RECORD_TABLES,
    SIGNATURE_ALGORITHM,
    VERSION,
    encode_line,
)
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.reading import run_rows
from elspeth.landscape.retention import purge_of


class _SignedWriter:
    """Writes lines, chaining each to the one before and hashing every byte for the signature."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.prev: str | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self.prev is not None:
            record["prev"] = self.prev
        line = encode_line(record)
        self.out.write(line)
        self.digest.update(line)
        self.prev = hashlib.sha256(line).hexdigest()


def export_run(
    conn: Connection,
    run_id: str,
    destination: Path,
    *,
    key: Ed25519PrivateKey,
    store: FilePayloadStore,
    grade: Grade,
    bodies_purged: int,
) -> dict[str, int]:
    """Write the run to `destination` (atomically: a temporary file renamed at the end). Returns the count of
    records of each type."""
    destination = destination.resolve()
    try:
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    except OSError as exc:
        raise ElspethError(f"cannot write the export to {destination}: {exc.strerror}; fix the path") from None
    try:
        with os.fdopen(fd, "wb") as out:
            counts = _write(conn, run_id, _SignedWriter(out), key, store, grade, bodies_purged)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def _write(
    conn: Connection,
    run_id: str,
    writer: _SignedWriter,
    key: Ed25519PrivateKey,
    store: FilePayloadStore,
    grade: Grade,
    bodies_purged: int,
) -> dict[str, int]:
    writer.write(
        {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "run_id": run_id,
            "elspeth_version": __version__,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "grade": grade.level.value,
            "grade_reasons": list(grade.reasons),
            "bodies_purged": bodies_purged,
            "purge": _purge_record(conn, run_id),
        }
    )
    counts: dict[str, int] = {}
    for record_type, record in _records(conn, run_id, store):
        writer.write(record)
        counts[record_type] = counts.get(record_type, 0) + 1
    writer.write({"type": "end", "counts": counts})
    digest = writer.digest.digest()
    writer.write(
        {
            "type": "signature",
            "algorithm": SIGNATURE_ALGORITHM,
            "key_fingerprint": signing.fingerprint(key.public_key()),
            "sha256": digest.hex(),
            "signature": signing.sign(key, digest),
        }
    )
    return counts


def _records(conn: Connection, run_id: str, store: FilePayloadStore) -> Iterator[tuple[str, dict[str, Any]]]:
    for record_type, table in RECORD_TABLES:
        for row in run_rows(conn, table, run_id):
            record: dict[str, Any] = {"type": record_type, **row}
            if record_type == "call":
                _add_bodies(record, store, BODY_FIELDS)
            elif record_type == "state":
                _add_bodies(record, store, OUTPUT_FIELDS)
            yield record_type, record


def _purge_record(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run's purge, when it was purged: its bodies are then gone by design, their hashes kept."""
    purge = purge_of(conn, run_id)
    return None if purge is None else {k: v for k, v in attrs.asdict(purge).items() if k != "run_id"}


def _add_bodies(call: dict[str, Any], store: FilePayloadStore, fields: tuple[tuple[str, str, str], ...]) -> None:
    """A body kept in the payload store goes into the record, as `request_body`/`response_body` (a state's
    `output_body`): its text, or null when it is gone (purged)."""
    for text_field, ref_field, _ in fields:
        ref = call[ref_field]
        if ref is None:
            continue
        body_field = text_field.replace("_json", "_body")
        if not store.exists(ref):
            call[body_field] = None
            continue
        try:
            call[body_field] = store.get(ref).decode("utf-8")
        except LandscapeError as exc:
            raise ElspethError(
                f"{exc}; nothing was exported: 'elspeth verify RUN_ID' lists every such problem"
            ) from None
