"""The recorder: the only code that writes a run's audit trail.

Writes are buffered per table and sent in bulk (inserts.py); `commit()` makes everything so far durable in
one transaction. Because the engine only records terminal outcomes after a sink flush, and every commit
covers a prefix of the engine's history, a crash at any point leaves a Landscape from which recovery can
compute exactly what is unfinished. External calls are the exception to batching: `record_call` commits
at once (with everything before it), so a call is durable before any observer hears of it.

One thread writes at a time: whoever holds `lock`. The engine's thread holds it while it works and sets it
aside only where a commit is safe (while plugin code runs, and while it waits for rows in flight), so other
threads' commits, like its own calls' commits, only ever cover a prefix of its history. `record_call` may be
called from any thread: it takes the lock itself, and calls that finish while another commit is under way
are committed together by the next thread to get the lock (one fsync for the group).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import define
from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update

from elspeth import canonical
from elspeth.api import CallRecord
from elspeth.errors import ElspethError, NonCanonicalValueError
from elspeth.landscape import schema
from elspeth.landscape.inserts import inserter
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.redaction import Redactor
from elspeth.landscape.statuses import BatchStatus, CallStatus, RunStatus, StateStatus, TokenOutcome

INLINE_LIMIT = 32 * 1024
"""Request/response bodies above this many bytes go to the payload store; the row keeps the hash."""

# Order of the tables in a flush: parents before children, so that no reference is ever left pending.
# Foreign keys are deferred to commit, so any order would be correct, but not as fast: while a deferred
# reference is pending, SQLite searches every child table on each insert into its parent table (a scan of
# the whole table where the referencing columns have no index). The one reference this order cannot
# serve, tokens.origin_batch_id -> batches, is served by add_token, which sends the buffer first.
# PostgreSQL relies on it too: it checks each flush's references as soon as they are sent (postgres_copy.py).
_TABLE_ORDER = (
    schema.nodes,
    schema.rows,
    schema.tokens,
    schema.node_states,
    schema.batches,
    schema.batch_members,
    schema.artifacts,
    schema.checkpoints,
    schema.token_outcomes,
)
_AUTO_FLUSH_ENTRIES = 20_000
# Statuses and outcomes go to the driver as plain str (`str()` of a StrEnum is one): sqlite3 takes an
# enum member through its adaptation protocol, which costs more than the insert of its column.
_OPEN = str(StateStatus.OPEN)
_BATCH_COLUMN = {c.name: i for i, c in enumerate(schema.batches.columns)}
_STATE_COLUMNS = (
    "run_id",
    "state_id",
    "node_id",
    "token_id",
    "operation",
    "attempt",
    "status",
    "input_hash",
    "output_hash",
    "error_json",
    "started_at",
    "ended_at",
    "output_json",
    "output_ref",
)
"""The order `open_state` lays a state out in (a list literal: a state opens for every row). Checked against
the schema below, so a column added to node_states fails at import, not as a shifted insert."""
if tuple(c.name for c in schema.node_states.columns) != _STATE_COLUMNS:
    raise ImportError("recorder._STATE_COLUMNS is not node_states' column order in schema.py; update it")
_S_STATUS, _S_OUTPUT_HASH, _S_ERROR, _S_ENDED, _S_OUTPUT_JSON, _S_OUTPUT_REF = (
    _STATE_COLUMNS.index(name)
    for name in ("status", "output_hash", "error_json", "ended_at", "output_json", "output_ref")
)
_CALL_COLUMNS = [c.name for c in schema.calls.columns]


@define
class _CallToWrite:
    """A call waiting for its commit, and what became of it once a thread wrote it."""

    state_id: int
    values: dict[str, Any]
    request: Any
    response: Any
    error: Any
    done: bool = False
    recorded: CallRecord | None = None
    failure: BaseException | None = None


def error_info(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def to_jsonable(value: Any) -> Any:
    """Bodies as JSON: bytes become text when they are UTF-8, else {"base64": ...}; tuples become lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


class _IdCounter:
    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> int:
        value = self.next
        self.next += 1
        return value


class Recorder:
    def __init__(
        self,
        engine: Engine,
        payloads: FilePayloadStore,
        run_id: str,
        *,
        redactor: Redactor | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.payloads = payloads
        self.run_id = run_id
        self.redact = redactor or Redactor()
        self.on_call = on_call
        self.now = now
        self.conn: Connection = engine.connect()
        # Rows as tuples, which the driver takes as they are; lists only where a buffered row may still change
        # (node_states and batches, see _buffered_states).
        self._inserts: dict[Table, list[Sequence[Any]]] = {t: [] for t in _TABLE_ORDER}
        self._updates: list[Any] = []
        self._state_closes: list[dict[str, Any]] = []
        self._entries = 0
        # Rows still in the insert buffer can be changed in place instead of by UPDATE.
        self._buffered_states: dict[int, list[Any]] = {}
        self._buffered_batches: dict[int, list[Any]] = {}
        self._open_states: dict[int, str] = {}
        self._call_counts: dict[int, int] = {}
        self._returned: set[int] = set()
        self.lock = threading.RLock()
        self._calls_to_write: list[_CallToWrite] = []
        self._calls_lock = threading.Lock()
        self._ids: dict[str, _IdCounter] = {}
        self._insert_rows = inserter(self.conn)
        self._close_state_sql = _compiled_close_state(self.conn)
        self._load_counters()

    # ------------------------------------------------------------ ids and buffering

    def _load_counters(self) -> None:
        """Continue numbering after whatever an earlier attempt of this run committed."""
        for name, table, column in (
            ("row", schema.rows, "row_id"),
            ("token", schema.tokens, "token_id"),
            ("state", schema.node_states, "state_id"),
            ("batch", schema.batches, "batch_id"),
            ("artifact", schema.artifacts, "artifact_id"),
            ("checkpoint", schema.checkpoints, "checkpoint_id"),
        ):
            highest = self.conn.execute(select(func.max(table.c[column])).where(table.c.run_id == self.run_id)).scalar()
            self._ids[name] = _IdCounter(0 if highest is None else highest + 1)
        self.conn.rollback()

    @property
    def rows_recorded(self) -> int:
        return self._ids["row"].next

    def _insert(self, table: Table, values: Sequence[Any]) -> None:
        """Buffer one row, given in the table's column order (schema.py)."""
        self._inserts[table].append(values)
        self._entries += 1
        if self._entries >= _AUTO_FLUSH_ENTRIES:
            self._flush_buffer()

    def _flush_buffer(self) -> None:
        """Send the buffered writes to the database (inside the open transaction), in order."""
        flush = [(table, rows) for table, rows in self._inserts.items() if rows]
        if flush:
            self._insert_rows(flush)
            self._inserts = {t: [] for t in _TABLE_ORDER}
        if self._state_closes:
            close_sql, arrange_close = self._close_state_sql
            self.conn.exec_driver_sql(close_sql, [arrange_close(values) for values in self._state_closes])
            self._state_closes = []
        for statement in self._updates:
            self.conn.execute(statement)
        self._updates = []
        self._buffered_states.clear()
        self._buffered_batches.clear()
        self._entries = 0

    def commit(self) -> None:
        """Everything recorded so far becomes durable, atomically."""
        self._flush_buffer()
        self.conn.commit()

    def execute_now(self, job: Callable[[Connection], Any]) -> Any:
        """Run a write `job` after everything recorded so far, and commit it all."""
        self._flush_buffer()
        result = job(self.conn)
        self.conn.commit()
        return result

    def discard(self) -> None:
        """Drop everything not yet committed (after the database itself refused a write)."""
        self.conn.rollback()
        # A COMMIT that SQLite refused (a deferred foreign key broken) leaves its transaction open, while
        # SQLAlchemy counts it as ended and so rolls nothing back: the driver's connection is told directly
        # (unless the connection is lost, and its transaction with it).
        if not self.conn.invalidated:
            self.conn.connection.rollback()
        self._inserts = {t: [] for t in _TABLE_ORDER}
        self._updates = []
        self._state_closes = []
        self._entries = 0
        self._buffered_states.clear()
        self._buffered_batches.clear()
        self._open_states.clear()
        self._returned.clear()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ runs and nodes

    def begin_run(
        self, *, settings_json: str, settings_hash: str, settings_path: str | None, version: str, owner: str
    ) -> None:
        """The run's row, sent now and committed by the next commit() together with its nodes: a run is
        never in the Landscape without the nodes that its states and sinks refer to."""
        statement = schema.runs.insert().values(
            run_id=self.run_id,
            status=RunStatus.RUNNING,
            settings_json=settings_json,
            settings_hash=settings_hash,
            settings_path=settings_path,
            elspeth_version=version,
            attempt=1,
            owner=owner,
            started_at=self.now(),
        )
        self._flush_buffer()
        self.conn.execute(statement)

    def claim_run(self, *, owner: str, status: str, attempt: int, owner_was: str | None) -> int | None:
        """Mark the run running again under `owner`, but only if it is still as the caller saw it (status,
        attempt, owner): of two resumes started together, one claims it. Returns the new attempt number,
        or None when another process claimed it first."""
        runs = schema.runs
        same_owner = runs.c.owner.is_(None) if owner_was is None else runs.c.owner == owner_was
        statement = (
            update(runs)
            .where(runs.c.run_id == self.run_id, runs.c.status == status, runs.c.attempt == attempt, same_owner)
            .values(status=RunStatus.RUNNING, attempt=attempt + 1, owner=owner, ended_at=None, error=None)
        )
        claimed = self.execute_now(lambda conn: conn.execute(statement).rowcount)
        return attempt + 1 if claimed == 1 else None

    def finish_run(self, status: RunStatus, error: str | None = None) -> None:
        statement = (
            update(schema.runs)
            .where(schema.runs.c.run_id == self.run_id)
            .values(status=status, ended_at=self.now(), error=None if error is None else self.redact.text(error))
        )
        self.execute_now(lambda conn: conn.execute(statement))

    def add_node(
        self,
        *,
        node_id: str,
        kind: str,
        plugin: str,
        distribution: str,
        plugin_version: str,
        position: int,
        config_json: str,
        config_hash: str,
    ) -> None:
        self._insert(
            schema.nodes,
            (
                self.run_id,
                node_id,
                kind,
                plugin,
                distribution,
                plugin_version,
                position,
                config_json,
                config_hash,
            ),
        )

    # ------------------------------------------------------------ rows and tokens

    def add_source_row(
        self, source_node_id: str, payload_json: str, payload_hash: str | None, *, quarantined: bool = False
    ) -> tuple[int, int]:
        """A source record and its first token, buffered together: a row without its token would be
        skipped by a resume (which rereads the source past the rows recorded) and never finished."""
        row_id = self._ids["row"].take()
        token_id = self._ids["token"].take()
        self._inserts[schema.rows].append((self.run_id, row_id, payload_json, payload_hash, quarantined))
        self._inserts[schema.tokens].append((self.run_id, token_id, row_id, None, source_node_id, None, None))
        self._entries += 2
        if self._entries >= _AUTO_FLUSH_ENTRIES:
            self._flush_buffer()
        return row_id, token_id

    def add_token(
        self,
        *,
        origin_node_id: str,
        row_id: int | None = None,
        parent_token_id: int | None = None,
        origin_batch_id: int | None = None,
        payload_json: str | None = None,
    ) -> int:
        token_id = self._ids["token"].take()
        if origin_batch_id in self._buffered_batches:
            self._flush_buffer()
        self._insert(
            schema.tokens,
            (
                self.run_id,
                token_id,
                row_id,
                parent_token_id,
                origin_node_id,
                origin_batch_id,
                payload_json,
            ),
        )
        return token_id

    def add_outcome(
        self,
        token_id: int,
        outcome: TokenOutcome,
        *,
        node_id: str,
        sink_node_id: str | None = None,
        artifact_id: int | None = None,
        batch_id: int | None = None,
        reason: Mapping[str, Any] | None = None,
    ) -> None:
        reason_json = None if reason is None else self._error_json(reason)
        self._insert(
            schema.token_outcomes,
            (
                self.run_id,
                token_id,
                str(outcome),
                node_id,
                sink_node_id,
                artifact_id,
                batch_id,
                reason_json,
                self.now(),
            ),
        )

    def add_sink_outcomes(
        self,
        sink_node_id: str,
        artifact_id: int,
        written: Sequence[tuple[int, TokenOutcome, str, Mapping[str, Any] | None]],
    ) -> None:
        """The outcomes a sink flush confirms: (token_id, outcome, decided_by node, reason) each, one timestamp."""
        now = self.now()
        # Built whole before any is buffered: a flush's outcomes are recorded all together or not at all.
        entries = [
            (
                self.run_id,
                token_id,
                str(outcome),
                decided_by,
                sink_node_id,
                artifact_id,
                None,
                None if reason is None else self._error_json(reason),
                now,
            )
            for token_id, outcome, decided_by, reason in written
        ]
        self._inserts[schema.token_outcomes].extend(entries)
        self._entries += len(entries)

    # ------------------------------------------------------------ node states

    def open_state(
        self,
        node_id: str,
        operation: str,
        *,
        token_id: int | None = None,
        attempt: int = 1,
        input_hash: str | None = None,
    ) -> int:
        state_id = self._ids["state"].take()
        values = [
            self.run_id,
            state_id,
            node_id,
            token_id,
            operation,
            attempt,
            _OPEN,
            input_hash,
            None,
            None,
            self.now(),
            None,
            None,
            None,
        ]
        # Registered before the insert: an automatic flush inside _insert must see it as already written.
        self._buffered_states[state_id] = values
        self._open_states[state_id] = node_id
        self._inserts[schema.node_states].append(values)  # _insert, inlined: a state opens for every row
        self._entries += 1
        if self._entries >= _AUTO_FLUSH_ENTRIES:
            self._flush_buffer()
        return state_id

    def close_state(
        self,
        state_id: int,
        status: StateStatus,
        *,
        output_hash: str | None = None,
        output: bytes | None = None,
        error: Mapping[str, Any] | None = None,
        ended_at: float | None = None,
    ) -> None:
        """`output`: the canonical bytes `output_hash` is the hash of, given where the output differs from the
        input. `ended_at`: when the work ended, if not now (a worker's row closed later by the engine's thread)."""
        # The error is made storable before the state leaves the open list: a value that cannot be stored
        # (a NaN in an error's details) must not strand the state open.
        error_json = None if error is None else self._error_json(error)
        if self._open_states.pop(state_id, None) is None:
            raise ElspethError(f"node_state {state_id} of run {self.run_id} is not open")
        self._call_counts.pop(state_id, None)
        self._returned.discard(state_id)
        if ended_at is None:
            ended_at = self.now()
        output_json = output_ref = None
        if output is not None:
            if len(output) > INLINE_LIMIT:
                output_ref = self.payloads.put(output)
            else:
                output_json = output.decode()
        buffered = self._buffered_states.get(state_id)
        if buffered is not None:
            buffered[_S_STATUS], buffered[_S_OUTPUT_HASH] = str(status), output_hash
            buffered[_S_ERROR], buffered[_S_ENDED] = error_json, ended_at
            buffered[_S_OUTPUT_JSON], buffered[_S_OUTPUT_REF] = output_json, output_ref
        else:
            # Sent with one executemany of a statement compiled once: with rows in flight most states close
            # after a call's commit has sent them, and building an UPDATE for each costs more than running it.
            self._state_closes.append(
                {
                    "w_run": self.run_id,
                    "w_state": state_id,
                    "v_status": str(status),
                    "v_output": output_hash,
                    "v_error": error_json,
                    "v_ended": ended_at,
                    "v_output_json": output_json,
                    "v_output_ref": output_ref,
                }
            )

    def returned(self, state_id: int) -> None:
        """The work of an open state is over (its close follows later, from the engine's thread): from now on
        no call is accepted under it. Any thread, no lock: a set's add is atomic."""
        self._returned.add(state_id)

    def _error_json(self, error: Mapping[str, Any]) -> str:
        """An error or reason as stored: secrets out, and stored even when a value in it cannot be hashed."""
        return canonical.dumps(_storable(self.redact(to_jsonable(dict(error)))))

    def close_open_states(self, error: Mapping[str, Any]) -> None:
        """A run stopping on an error closes whatever it had open, so no state is left dangling."""
        for state_id in list(self._open_states):
            self.close_state(state_id, StateStatus.FAILED, error=error)

    # ------------------------------------------------------------ external calls

    def record_call(
        self,
        state_id: int,
        *,
        call_type: str,
        provider: str,
        request: Any,
        response: Any = None,
        error: Any = None,
        latency_ms: float | None = None,
    ) -> CallRecord:
        """Write one call under an OPEN node_state, commit, then tell the observers. Any thread may call it."""
        status = CallStatus.ERROR if error is not None else CallStatus.OK
        # Redacting and hashing the bodies needs no lock: done in the caller's thread, outside the queue.
        request = self.redact(to_jsonable(request))
        response = None if response is None else self.redact(to_jsonable(response))
        error = None if error is None else self.redact(to_jsonable(error))
        request_json, request_ref, request_hash = self._body(request)
        if response is None:
            response_json = response_ref = response_hash = None
        else:
            response_json, response_ref, response_hash = self._body(response)
        entry = _CallToWrite(
            state_id,
            {
                "run_id": self.run_id,
                "state_id": state_id,
                "call_type": call_type,
                "provider": provider,
                "status": status,
                "request_json": request_json,
                "request_ref": request_ref,
                "request_hash": request_hash,
                "response_json": response_json,
                "response_ref": response_ref,
                "response_hash": response_hash,
                "error_json": None if error is None else canonical.dumps(_storable(error)),
                "latency_ms": latency_ms,
                "created_at": self.now(),
            },
            request,
            response,
            error,
        )
        with self._calls_lock:
            self._calls_to_write.append(entry)
        with self.lock:
            # Another thread may have committed this call with its own while this one waited for the lock.
            if not entry.done:
                self._write_calls()
        if entry.failure is not None:
            raise entry.failure
        assert entry.recorded is not None
        return entry.recorded

    def _write_calls(self) -> None:
        """Commit every call waiting (with everything buffered before them), then tell the observers, in order."""
        with self._calls_lock:
            entries, self._calls_to_write = self._calls_to_write, []
        rows, written = [], []
        for entry in entries:
            node_id = self._open_states.get(entry.state_id)
            if node_id is None or entry.state_id in self._returned:
                entry.failure = ElspethError(
                    f"call {entry.values['call_type']}/{entry.values['provider']} recorded under node_state "
                    f"{entry.state_id}, which is not open in run {self.run_id}; record calls through the ctx of "
                    "the operation that makes them, before it returns"
                )
                entry.done = True
                continue
            call_index = self._call_counts.get(entry.state_id, 0)
            self._call_counts[entry.state_id] = call_index + 1
            values = {**entry.values, "call_index": call_index}
            rows.append([values[name] for name in _CALL_COLUMNS])
            written.append((entry, node_id, call_index))
        try:
            if rows:
                self._flush_buffer()
                self._insert_rows([(schema.calls, rows)])
                self.conn.commit()
        except BaseException as exc:
            for entry, _, _ in written:
                entry.failure, entry.done = exc, True
            return
        for entry, node_id, call_index in written:
            v = entry.values
            entry.recorded = CallRecord(
                run_id=self.run_id,
                node_id=node_id,
                state_id=entry.state_id,
                call_index=call_index,
                call_type=v["call_type"],
                provider=v["provider"],
                status=v["status"],
                request=entry.request,
                response=entry.response,
                error=entry.error,
                request_hash=v["request_hash"],
                response_hash=v["response_hash"],
                latency_ms=v["latency_ms"],
            )
            if self.on_call is not None:
                try:
                    self.on_call(entry.recorded)
                except BaseException as exc:
                    entry.failure = exc
            entry.done = True

    def _body(self, value: Any) -> tuple[str | None, str | None, str]:
        value, canonical_form = _canonical_form(value)
        digest = hashlib.sha256(canonical_form).hexdigest()
        text = canonical.dumps(value)
        data = text.encode()
        if len(data) > INLINE_LIMIT:
            return None, self.payloads.put(data), digest
        return text, None, digest

    # ------------------------------------------------------------ batches

    def add_batch(self, node_id: str, *, attempt: int = 1, retry_of: int | None = None) -> int:
        batch_id = self._ids["batch"].take()
        now = self.now()
        values = [
            self.run_id,
            batch_id,
            node_id,
            attempt,
            BatchStatus.DRAFT,
            None,
            None,
            retry_of,
            None,
            None,
            now,
            now,
        ]
        self._buffered_batches[batch_id] = values
        self._insert(schema.batches, values)
        return batch_id

    def add_batch_member(self, batch_id: int, ordinal: int, token_id: int, payload_json: str) -> None:
        self._insert(schema.batch_members, (self.run_id, batch_id, ordinal, token_id, payload_json))

    def update_batch(self, batch_id: int, *, error: Mapping[str, Any] | None = None, **changes: Any) -> None:
        """Change status, trigger, flush_state_id or checkpoint_json of a batch; `error` is stored as error_json."""
        if error is not None:
            changes["error_json"] = self._error_json(error)
        changes["updated_at"] = self.now()
        buffered = self._buffered_batches.get(batch_id)
        if buffered is not None:
            for name, value in changes.items():
                buffered[_BATCH_COLUMN[name]] = value
        else:
            table = schema.batches
            self._updates.append(
                update(table).where(table.c.run_id == self.run_id, table.c.batch_id == batch_id).values(changes)
            )

    # ------------------------------------------------------------ artifacts and checkpoints

    def add_artifact(
        self, node_id: str, state_id: int, *, uri: str, content_hash: str, size: int, row_count: int
    ) -> int:
        artifact_id = self._ids["artifact"].take()
        self._insert(
            schema.artifacts,
            (
                self.run_id,
                artifact_id,
                node_id,
                state_id,
                self.redact.text(uri),
                content_hash,
                size,
                row_count,
                self.now(),
            ),
        )
        return artifact_id

    def add_checkpoint(self, node_id: str, artifact_id: int, resume: Mapping[str, Any], rows_read: int) -> None:
        self._insert(
            schema.checkpoints,
            (
                self.run_id,
                self._ids["checkpoint"].take(),
                node_id,
                artifact_id,
                canonical.dumps(dict(resume)),
                rows_read,
                self.now(),
            ),
        )


class SetAside:
    """Lets other threads write while this one, which holds `lock` once, runs plugin code or waits.
    Reusable: one per plugin saves building a context manager per row."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.release()

    def __exit__(self, *exc: object) -> None:
        self.lock.acquire()


def _compiled_close_state(conn: Connection) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    """The UPDATE that closes a state already sent, compiled once, and how to arrange its parameters."""
    table = schema.node_states
    statement = (
        update(table)
        .where(table.c.run_id == bindparam("w_run"), table.c.state_id == bindparam("w_state"))
        .values(
            status=bindparam("v_status"),
            output_hash=bindparam("v_output"),
            error_json=bindparam("v_error"),
            ended_at=bindparam("v_ended"),
            output_json=bindparam("v_output_json"),
            output_ref=bindparam("v_output_ref"),
        )
    )
    compiled = statement.compile(dialect=conn.dialect)
    if compiled.positional:
        order = list(compiled.positiontup or ())
        return str(compiled), lambda values: tuple(values[name] for name in order)
    return str(compiled), lambda values: values


def _canonical_form(value: Any) -> tuple[Any, bytes]:
    """`value` as stored, and its canonical bytes: a body that cannot be canonically hashed (a NaN in a
    response, say) is still recorded, as text. The bytes are both that test and what the hash is of."""
    try:
        return value, canonical.canonical_bytes(value)
    except NonCanonicalValueError as exc:
        value = {"unrepresentable": repr(value), "why": str(exc)}
        return value, canonical.canonical_bytes(value)


def _storable(value: Any) -> Any:
    """An error or reason as stored (see _canonical_form)."""
    return _canonical_form(value)[0]
