"""`elspeth verify RUN_ID`: do the run's outputs and stored payloads still hash to what the Landscape says?

Each sink's latest artifact (it describes every byte the sink made durable) is re-hashed where it lives:
`file://` artifacts directly, others through the sink plugin's optional `read_back`. Every stored payload
is re-hashed too: source rows, the outputs kept of the steps that changed a row, and call bodies inline and
in the payload store. In a run `elspeth purge` purged (its record says so), a body whose hash is kept but
whose bytes are gone is reported as purged; in any other run a missing body is a mismatch.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from attrs import define, field, frozen
from sqlalchemy import Connection, func, select

from elspeth.api import Sink
from elspeth.errors import ElspethError, LandscapeError
from elspeth.evidence.read_back import ReadBackContext
from elspeth.evidence.records import BODY_FIELDS, hash_problem
from elspeth.landscape import schema
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.reading import Landscape
from elspeth.landscape.retention import purge_of

_CHUNK = 1 << 20
SinkFor = Callable[[str], Sink]
"""The sink of a recorded sink node, for reading back; raises ElspethError saying why there is none."""


class Status(enum.StrEnum):
    MATCHES = "matches"
    MISMATCH = "mismatch"
    PURGED = "purged"
    NOT_CHECKED = "not checked"


@frozen
class Finding:
    status: Status
    subject: str
    """What was checked: an artifact's sink and URI, a row, a call's body."""
    detail: str = ""


@define
class Verification:
    run_id: str
    artifacts: list[Finding] = field(factory=list)
    payloads: list[Finding] = field(factory=list)
    """Everything about payloads but the matches, which are only counted."""
    payloads_matching: int = 0

    def all(self) -> Iterator[Finding]:
        yield from self.artifacts
        yield from self.payloads

    def count(self, status: Status) -> int:
        return sum(1 for f in self.all() if f.status is status)


def verify_run(conn: Connection, run_id: str, store: FilePayloadStore, sink_for: SinkFor) -> Verification:
    result = Verification(run_id)
    result.artifacts = [_check_artifact(run_id, *a, store, sink_for) for a in _latest_artifacts(conn, run_id)]
    purged = purge_of(conn, run_id) is not None
    for finding in _payload_findings(conn, run_id, store, purged):
        if finding.status is Status.MATCHES:
            result.payloads_matching += 1
        else:
            result.payloads.append(finding)
    return result


def verify_landscape(landscape: Landscape, run_id: str, sink_for: SinkFor) -> Verification:
    """`verify_run` on a Landscape open for reading, with its payload store (what tools and the kit hold)."""
    with landscape.engine.connect() as conn:
        return verify_run(conn, run_id, landscape.payloads, sink_for)


def _latest_artifacts(conn: Connection, run_id: str) -> list[tuple[str, str, str, int, int]]:
    """(node_id, uri, content_hash, size, flushes) of the latest artifact of each sink and URI."""
    a = schema.artifacts.c
    latest = (
        select(a.node_id, a.uri, func.max(a.artifact_id).label("artifact_id"), func.count().label("flushes"))
        .where(a.run_id == run_id)
        .group_by(a.node_id, a.uri)
        .subquery()
    )
    query = (
        select(a.node_id, a.uri, a.content_hash, a.size, latest.c.flushes)
        .join(latest, (a.artifact_id == latest.c.artifact_id))
        .where(a.run_id == run_id)
        .order_by(a.node_id, a.uri)
    )
    return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def _check_artifact(
    run_id: str,
    node_id: str,
    uri: str,
    content_hash: str,
    size: int,
    flushes: int,
    store: FilePayloadStore,
    sink_for: SinkFor,
) -> Finding:
    subject = f"{node_id} {uri}"
    ctx: ReadBackContext | None = None
    if uri.startswith("file://"):
        chunks = _file_chunks(unquote(urlsplit(uri).path))
    else:
        try:
            sink = sink_for(node_id)
        except ElspethError as exc:
            return Finding(Status.NOT_CHECKED, subject, str(exc))
        ctx = ReadBackContext(run_id, node_id, store)
        chunks = sink.read_back(uri, ctx)
    sha, stored = hashlib.sha256(), 0
    try:
        for chunk in chunks:
            sha.update(chunk)
            stored += len(chunk)
    except ElspethError as exc:
        return Finding(Status.MISMATCH, subject, f"cannot be read: {exc}")
    recorded = f"recorded {size:,} bytes, sha256 {content_hash[:12]}… (artifact {flushes} of {flushes})"
    if ctx is not None:
        recorded += f"; read back in {len(ctx.calls)} request(s)"
    if stored != size or sha.hexdigest() != content_hash:
        return Finding(Status.MISMATCH, subject, f"holds {stored:,} bytes, sha256 {sha.hexdigest()[:12]}…; {recorded}")
    return Finding(Status.MATCHES, subject, recorded)


def _file_chunks(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
    except FileNotFoundError:
        raise ElspethError(f"{path} is gone") from None
    except OSError as exc:
        raise ElspethError(f"{path}: {exc.strerror}") from None


def _payload_findings(conn: Connection, run_id: str, store: FilePayloadStore, purged: bool) -> Iterable[Finding]:
    r = schema.rows.c
    rows = select(r.row_id, r.payload_json, r.payload_hash).where(r.run_id == run_id, r.payload_hash.is_not(None))
    for row_id, text, recorded in conn.execution_options(yield_per=2000).execute(rows.order_by(r.row_id)):
        yield _body_finding(f"row {row_id} payload", text, None, recorded, store, purged)
    s = schema.node_states.c
    kept = select(s.state_id, s.node_id, s.output_json, s.output_ref, s.output_hash).where(
        s.run_id == run_id, (s.output_json.is_not(None)) | (s.output_ref.is_not(None))
    )
    for state_id, node_id, text, ref, recorded in conn.execution_options(yield_per=2000).execute(
        kept.order_by(s.state_id)
    ):
        yield _body_finding(f"state {state_id} output ({node_id})", text, ref, recorded, store, purged)
    c = schema.calls.c
    calls = select(schema.calls).where(c.run_id == run_id).order_by(c.state_id, c.call_index)
    for call in conn.execution_options(yield_per=2000).execute(calls):
        for text_field, ref_field, hash_field in BODY_FIELDS:
            recorded = getattr(call, hash_field)
            if recorded is None:
                continue
            subject = f"call {call.state_id}/{call.call_index} {text_field.removesuffix('_json')}"
            yield _body_finding(subject, getattr(call, text_field), getattr(call, ref_field), recorded, store, purged)


def _body_finding(
    subject: str, text: str | None, ref: str | None, recorded: str, store: FilePayloadStore, purged: bool
) -> Finding:
    if ref is not None:
        subject += f" (payload {ref})"
        if not store.exists(ref):
            return _gone(subject, f"not in the payload store {store.root}", purged)
        try:
            text = store.get(ref).decode("utf-8", errors="replace")
        except LandscapeError as exc:
            return Finding(Status.MISMATCH, subject, str(exc))
    if text is None:
        return _gone(subject, "the body is not kept", purged)
    problem = hash_problem(text, recorded)
    return Finding(Status.MISMATCH if problem else Status.MATCHES, subject, problem or "")


def _gone(subject: str, where: str, purged: bool) -> Finding:
    """A body whose hash is kept and whose bytes are not: purged, in a run the purge record names; missing
    otherwise (the audit trail lost something it promised to keep)."""
    if purged:
        return Finding(Status.PURGED, subject, f"{where}; its hash is kept (the run was purged)")
    return Finding(Status.MISMATCH, subject, f"{where}, yet the run was never purged: the body is missing")
