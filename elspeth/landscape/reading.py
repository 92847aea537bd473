"""Reading a Landscape: the declared, read-only API for tools and the conformance kit (docs/landscape-reading.md).

`open_landscape(url)` opens one by URL (SQLite or PostgreSQL); `runs()` lists its runs; `run(run_id)` reads
one run as typed, frozen records, each table with one query the first time it is asked for. Callers never
name a table or a column: when a migration moves one, this module changes and they do not.

Statuses are the enums of `landscape/statuses.py`. JSON is given as the text stored (fields named `*_json`):
a checker of the audit trail wants the very text (NaN written by a plain `json.dumps` is its business).
Bodies kept in the payload store (call requests and responses, a step's kept output) are read from it: a
`Body` holds the text, or says why it could not be read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import attrs
from attrs import field, frozen
from sqlalchemy import Connection, Engine, Table, and_, exists, select

from elspeth.errors import ElspethError
from elspeth.landscape import schema
from elspeth.landscape.database import open_existing
from elspeth.landscape.payloads import FilePayloadStore, payload_dir
from elspeth.landscape.retention import Purge, purge_of
from elspeth.landscape.statuses import BatchStatus, CallStatus, RunStatus, StateStatus, TokenOutcome, TriggerReason

_FETCH = 2000
R = TypeVar("R")


def _optional_trigger(value: str | None) -> TriggerReason | None:
    return None if value is None else TriggerReason(value)


@frozen
class Body:
    """A recorded JSON body: its text (inline, or read from the payload store), the payload-store reference
    it was kept under, and the recorded SHA-256 of its canonical JSON."""

    text: str | None
    """None when nothing was recorded, or when a stored body could not be read (see `problem`)."""
    ref: str | None
    hash: str | None
    problem: str | None = None
    """Why the stored body could not be read: missing from the store (purged, not copied), corrupt, not UTF-8."""

    @property
    def recorded(self) -> bool:
        """A body was recorded, inline or in the payload store (readable or not)."""
        return self.text is not None or self.ref is not None


@frozen
class RunRecord:
    run_id: str
    status: RunStatus = field(converter=RunStatus)
    attempt: int
    settings_json: str
    settings_hash: str
    settings_path: str | None
    elspeth_version: str
    owner: str | None
    started_at: float
    ended_at: float | None
    error: str | None


@frozen
class NodeRecord:
    node_id: str
    kind: str
    plugin: str
    distribution: str
    plugin_version: str
    position: int
    config_json: str
    config_hash: str


@frozen
class RowRecord:
    """A source record: a row, or a quarantined record with its reason in the token's outcome."""

    row_id: int
    payload_json: str | None
    """None once the run is purged; payload_hash stays."""
    payload_hash: str | None
    quarantined: bool = field(converter=bool)


@frozen
class TokenRecord:
    """A row on its way: a source row's first token, a child of an expansion, or an output of a batch."""

    token_id: int
    row_id: int | None
    parent_token_id: int | None
    origin_node_id: str
    origin_batch_id: int | None
    payload_json: str | None


@frozen
class StateRecord:
    """One execution of a node: for a token (process), or an operation of its own (token_id None)."""

    state_id: int
    node_id: str
    token_id: int | None
    operation: str
    attempt: int
    status: StateStatus = field(converter=StateStatus)
    input_hash: str | None
    output_hash: str | None
    error_json: str | None
    started_at: float
    ended_at: float | None
    output: Body
    """The output row kept where the step changed it (`output.hash` is output_hash)."""


@frozen
class CallRecord:
    state_id: int
    call_index: int
    call_type: str
    provider: str
    status: CallStatus = field(converter=CallStatus)
    request: Body
    response: Body
    error_json: str | None
    latency_ms: float | None
    created_at: float


@frozen
class BatchRecord:
    batch_id: int
    node_id: str
    attempt: int
    status: BatchStatus = field(converter=BatchStatus)
    trigger: TriggerReason | None = field(converter=_optional_trigger)
    flush_state_id: int | None
    retry_of: int | None
    checkpoint_json: str | None
    """A pending batch's checkpoint state, kept while it executes."""
    error_json: str | None
    created_at: float
    updated_at: float


@frozen
class MemberRecord:
    batch_id: int
    ordinal: int
    token_id: int
    payload_json: str | None


@frozen
class ArtifactRecord:
    artifact_id: int
    node_id: str
    state_id: int
    uri: str
    content_hash: str
    size: int
    row_count: int
    created_at: float


@frozen
class CheckpointRecord:
    checkpoint_id: int
    node_id: str
    artifact_id: int
    resume_json: str
    rows_read: int
    created_at: float


@frozen
class OutcomeRecord:
    token_id: int
    outcome: TokenOutcome = field(converter=TokenOutcome)
    node_id: str
    sink_node_id: str | None
    artifact_id: int | None
    batch_id: int | None
    reason_json: str | None
    recorded_at: float


@frozen
class Dangling:
    """Rows whose reference resolves to nothing (a foreign key the database did not enforce)."""

    description: str
    rows: tuple[dict[str, Any], ...]


def run_rows(conn: Connection, table: Table, run_id: str) -> Iterator[dict[str, Any]]:
    """Every row of `table` that belongs to `run_id`, in primary-key order, as {column: value} without run_id;
    streamed, so memory stays flat however big the run."""
    keys = [c for c in table.primary_key.columns if c.name != "run_id"]
    columns = [c for c in table.columns if c.name != "run_id"]
    names = [c.name for c in columns]
    query = select(*columns).where(table.c.run_id == run_id).order_by(*keys)
    for row in conn.execution_options(yield_per=_FETCH).execute(query):
        yield dict(zip(names, row, strict=True))


def _plain(cls: type[R]) -> Callable[[dict[str, Any]], R]:
    names = [f.name for f in attrs.fields(cls)]  # type: ignore[arg-type]
    return lambda row: cls(**{name: row[name] for name in names})


class Landscape:
    """An open Landscape, read-only: its runs, and one run's records. A context manager; `close()` ends it."""

    def __init__(self, engine: Engine, payloads: str | Path, *, owned: bool = False) -> None:
        self.engine = engine
        self.payloads = FilePayloadStore(payloads)
        """Where bodies kept by reference are read from; a sink's `read_back` ctx takes it too."""
        self._owned = owned

    def runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        r = schema.runs
        with self.engine.connect() as conn:
            query = select(r).order_by(r.c.started_at.desc(), r.c.run_id)
            return [_plain(RunRecord)(dict(row)) for row in conn.execute(query).mappings()]

    def run(self, run_id: str) -> RunRecords:
        """The records of run `run_id`, each kind read when first asked for."""
        return RunRecords(self, run_id)

    def close(self) -> None:
        if self._owned:
            self.engine.dispose()

    def __enter__(self) -> Landscape:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_landscape(url: str, payloads: str | Path | None = None) -> Landscape:
    """The Landscape at `url`, read-only. `payloads` is its payload store (default: where the engine puts it,
    `payloads` beside a SQLite file). A LandscapeError when there is none there, it is at another schema than
    this elspeth's, or the URL is wrong."""
    engine = open_existing(url)
    return Landscape(engine, payload_dir(url, None if payloads is None else str(payloads)), owned=True)


KINDS = (
    "run",
    "purge",
    "nodes",
    "rows",
    "tokens",
    "states",
    "calls",
    "batches",
    "members",
    "artifacts",
    "checkpoints",
    "outcomes",
)
"""The kinds of record of a run: the attributes of RunRecords."""


class RunRecords:
    """One run of a Landscape as records, each tuple in primary-key order. A run with no runs row reads as
    `run` None and nothing else, so that a checker can say it is missing."""

    def __init__(self, landscape: Landscape, run_id: str) -> None:
        self.landscape = landscape
        self.run_id = run_id

    def load(self) -> RunRecords:
        """Read every kind of record now (before the Landscape is closed, say): one query per table."""
        for kind in KINDS:
            getattr(self, kind)
        return self

    def snapshot(self) -> dict[str, Any]:
        """Every record of the run, by kind: what to compare before and after something that must change nothing."""
        return {kind: getattr(self, kind) for kind in KINDS}

    def _read(self, table: Table, make: Callable[[dict[str, Any]], R]) -> tuple[R, ...]:
        with self.landscape.engine.connect() as conn:
            return tuple(make(row) for row in run_rows(conn, table, self.run_id))

    def _body(self, text: str | None, ref: str | None, digest: str | None) -> Body:
        if ref is None:
            return Body(text, ref, digest)
        try:
            return Body(self.landscape.payloads.get(ref).decode("utf-8"), ref, digest)
        except (ElspethError, UnicodeDecodeError) as exc:
            return Body(None, ref, digest, str(exc))

    def _state(self, row: dict[str, Any]) -> StateRecord:
        output = self._body(row.pop("output_json"), row.pop("output_ref"), row["output_hash"])
        return StateRecord(output=output, **row)

    def _call(self, row: dict[str, Any]) -> CallRecord:
        request = self._body(row.pop("request_json"), row.pop("request_ref"), row.pop("request_hash"))
        response = self._body(row.pop("response_json"), row.pop("response_ref"), row.pop("response_hash"))
        return CallRecord(request=request, response=response, **row)

    @cached_property
    def run(self) -> RunRecord | None:
        r = schema.runs
        with self.landscape.engine.connect() as conn:
            row = conn.execute(select(r).where(r.c.run_id == self.run_id)).mappings().first()
        return None if row is None else _plain(RunRecord)(dict(row))

    @cached_property
    def purge(self) -> Purge | None:
        """The run's purge (retention): its bodies are gone by design, every record and hash kept."""
        with self.landscape.engine.connect() as conn:
            return purge_of(conn, self.run_id)

    @cached_property
    def nodes(self) -> tuple[NodeRecord, ...]:
        return self._read(schema.nodes, _plain(NodeRecord))

    @cached_property
    def rows(self) -> tuple[RowRecord, ...]:
        return self._read(schema.rows, _plain(RowRecord))

    @cached_property
    def tokens(self) -> tuple[TokenRecord, ...]:
        return self._read(schema.tokens, _plain(TokenRecord))

    @cached_property
    def states(self) -> tuple[StateRecord, ...]:
        return self._read(schema.node_states, self._state)

    @cached_property
    def calls(self) -> tuple[CallRecord, ...]:
        """In (state_id, call_index) order; bodies in the payload store read from it."""
        return self._read(schema.calls, self._call)

    @cached_property
    def batches(self) -> tuple[BatchRecord, ...]:
        return self._read(schema.batches, _plain(BatchRecord))

    @cached_property
    def members(self) -> tuple[MemberRecord, ...]:
        """Batch members, in (batch_id, ordinal) order."""
        return self._read(schema.batch_members, _plain(MemberRecord))

    @cached_property
    def artifacts(self) -> tuple[ArtifactRecord, ...]:
        return self._read(schema.artifacts, _plain(ArtifactRecord))

    @cached_property
    def checkpoints(self) -> tuple[CheckpointRecord, ...]:
        return self._read(schema.checkpoints, _plain(CheckpointRecord))

    @cached_property
    def outcomes(self) -> tuple[OutcomeRecord, ...]:
        """Terminal outcomes, by token_id (a token has at most one)."""
        return self._read(schema.token_outcomes, _plain(OutcomeRecord))

    def dangling(self) -> list[Dangling]:
        """Every reference of the run's rows that resolves to nothing, per declared foreign key; on SQLite, when
        there is none, what PRAGMA foreign_key_check reports of the whole database."""
        found = []
        with self.landscape.engine.connect() as conn:
            for table in schema.metadata.tables.values():
                if "run_id" not in table.c:
                    continue
                for fk in table.foreign_key_constraints:
                    bad = _dangling_rows(conn, table, fk, self.run_id)
                    if bad:
                        columns = ", ".join(el.parent.name for el in fk.elements)
                        targets = ", ".join(el.column.name for el in fk.elements)
                        found.append(
                            Dangling(
                                f"{len(bad)} {table.name} row(s) whose ({columns}) match no "
                                f"{fk.referred_table.name} ({targets})",
                                tuple(bad),
                            )
                        )
            if conn.dialect.name == "sqlite" and not found:
                reported = tuple(dict(r) for r in conn.exec_driver_sql("PRAGMA foreign_key_check").mappings())
                if reported:
                    found.append(
                        Dangling(f"PRAGMA foreign_key_check reports {len(reported)} dangling reference(s)", reported)
                    )
        return found


def _dangling_rows(conn: Connection, table: Table, fk: Any, run_id: str) -> list[dict[str, Any]]:
    parent = fk.referred_table.alias("parent")
    pairs = [(el.parent, parent.c[el.column.name]) for el in fk.elements]
    query = select(table).where(
        table.c.run_id == run_id,
        *(child.is_not(None) for child, _ in pairs),
        ~exists(select(pairs[0][1]).where(and_(*(p == c for c, p in pairs)))),
    )
    return [dict(r) for r in conn.execute(query).mappings()]


__all__ = [
    "KINDS",
    "ArtifactRecord",
    "BatchRecord",
    "BatchStatus",
    "Body",
    "CallRecord",
    "CallStatus",
    "CheckpointRecord",
    "Dangling",
    "Landscape",
    "MemberRecord",
    "NodeRecord",
    "OutcomeRecord",
    "Purge",
    "RowRecord",
    "RunRecord",
    "RunRecords",
    "RunStatus",
    "StateRecord",
    "StateStatus",
    "TokenOutcome",
    "TokenRecord",
    "TriggerReason",
    "open_landscape",
    "run_rows",
]
