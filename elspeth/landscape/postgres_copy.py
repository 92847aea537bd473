"""The recorder's buffered rows into PostgreSQL: binary COPY, and the foreign keys checked while the engine
works on.

An executemany of INSERTs costs a message and an executor run per row on each side of the socket; COPY
streams a table's rows into one statement (binary: a quarter of text COPY's CPU in the driver, measured).
What is left is PostgreSQL's foreign-key check, a query per reference (about 9 per source row) that the
deferred constraints queue for the commit, where the engine would wait for all of them. Instead each flush
ends with `SET CONSTRAINTS ALL IMMEDIATE` (then back to DEFERRED), sent in pipeline mode without waiting for
the answer: the server checks the rows just sent, on its own core, while the engine makes the next ones.
Nothing is pending at that point (the recorder sends parents before children), so the check finds what the
commit's would; the constraints stay deferred, and whatever is still unchecked at commit is checked there.

The answer is collected before anything else uses the connection: on SQLAlchemy's events for it (execute,
commit, rollback) and before the next COPY. A failed check is raised there as the SQLAlchemy error the
engine expects from a write; on rollback it is dropped with the work it refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from sqlalchemy import Boolean, Connection, Float, Integer, String, Table, Text, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from elspeth.landscape.inserts import Rows

_CHECK = "SET CONSTRAINTS ALL IMMEDIATE"
_DEFER = "SET CONSTRAINTS ALL DEFERRED"


class CopyInserter:
    """The recorder's Inserter on a PostgreSQL connection (see inserts.py)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._quote = conn.dialect.identifier_preparer
        self._copy_sql: dict[Table, tuple[str, list[str]]] = {}
        self._check: contextlib.ExitStack | None = None
        # Pipeline mode needs libpq 14 or newer (psycopg[binary] ships one); without it the commit checks all.
        self._check_early = psycopg.Pipeline.is_supported()
        event.listen(conn, "before_cursor_execute", self._before_execute)
        event.listen(conn, "commit", self._before_commit)
        event.listen(conn, "rollback", self._before_rollback)

    def __call__(self, flush: Sequence[tuple[Table, Rows]]) -> None:
        self._collect()
        # The driver's connection is used directly: SQLAlchemy would not know a transaction is open (and the
        # recorder's commit would do nothing) unless it began one.
        if not self.conn.in_transaction():
            self.conn.begin()
        raw: psycopg.Connection[Any] = self.conn.connection.driver_connection  # type: ignore[assignment]
        with _as_sqlalchemy_error("COPY"), raw.cursor() as cursor:
            for table, rows in flush:
                statement, types = self._copy_statement(table)
                with cursor.copy(statement) as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
        if self._check_early:
            self._check = _sent_without_waiting(raw, (_CHECK, _DEFER))

    def _copy_statement(self, table: Table) -> tuple[str, list[str]]:
        if table not in self._copy_sql:
            columns = ", ".join(self._quote.quote(c.name) for c in table.columns)
            statement = f"COPY {self._quote.format_table(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
            self._copy_sql[table] = statement, [_binary_type(c.type) for c in table.columns]
        return self._copy_sql[table]

    def _collect(self) -> None:
        """Wait for the answer to the check in flight, if any; raise what it found."""
        check, self._check = self._check, None
        if check is not None:
            with _as_sqlalchemy_error(_CHECK):
                check.close()

    def _before_execute(self, *_: object) -> None:
        self._collect()

    def _before_commit(self, conn: Connection) -> None:
        try:
            self._collect()
        except DBAPIError:
            # As when the COMMIT itself fails: the transaction is over. SQLAlchemy, which has not sent the
            # COMMIT yet, would otherwise leave the driver's transaction open and aborted.
            with contextlib.suppress(psycopg.Error):
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
            raise

    def _before_rollback(self, _conn: Connection) -> None:
        # The check's verdict no longer matters: the rows it checked are being thrown away.
        with contextlib.suppress(DBAPIError):
            self._collect()


def _binary_type(column_type: TypeEngine[Any]) -> str:
    """The PostgreSQL type a column's values are sent as in binary COPY: exactly the column's own."""
    for kind, name in ((Boolean, "bool"), (Integer, "int4"), (Float, "float8"), (Text, "text"), (String, "varchar")):
        if isinstance(column_type, kind):
            return name
    raise TypeError(f"no binary COPY type for {column_type!r}; add it to _binary_type")


def _sent_without_waiting(raw: psycopg.Connection[Any], statements: Sequence[str]) -> contextlib.ExitStack:
    """`statements` sent in pipeline mode; closing the returned stack waits for their answers."""
    stack = contextlib.ExitStack()
    with _as_sqlalchemy_error(statements[0]):
        stack.enter_context(raw.pipeline())
        try:
            for statement in statements:
                raw.execute(statement)
        except psycopg.Error as sent:
            # When the server's refusal of the first statement arrives while the next is sent, that refusal is
            # raised here and leaving the pipeline raises only "pipeline aborted"; it may also be the other way
            # round. The refusal is the error to raise.
            try:
                stack.close()
            except psycopg.Error as left:
                if isinstance(sent, psycopg.errors.PipelineAborted):
                    raise left from None
            raise
        except BaseException:
            stack.close()
            raise
    return stack


@contextlib.contextmanager
def _as_sqlalchemy_error(statement: str) -> Iterator[None]:
    """psycopg's errors as SQLAlchemy's (IntegrityError, OperationalError, ...), as from any other write."""
    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
