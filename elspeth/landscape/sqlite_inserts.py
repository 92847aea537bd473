"""The recorder's buffered rows into SQLite: INSERTs of many rows each, with the values that are the same
in every row of the flush (the run, the node, the operation, the status, the NULLs) written into the
statement as literals instead of bound again for each row.

Binding is a large part of what sqlite3 spends on an insert: every bound value is type-checked, converted
and copied, row after row; and each execution of a statement has a cost of its own (cursors opened on the
table and its indexes, the statement reset). Measured on the benchmark's inserts (100,000 source rows into
rows, tokens, node_states and token_outcomes, executemany): 1.87 s of CPU with every value bound one row a
statement, 1.42 s with the constants in the SQL, 0.86-0.92 s with that and 50-64 rows a statement.

What is stored stays the same, value for value and type for type: only NULL, bools (0 or 1, as sqlite3
binds them) and ASCII text without NUL are written as literals. Floats (SQLite's own parsing of a literal
might round otherwise than the double bound) and anything else stay bound; so do ints, which, where a whole
flush shares one, are mostly an id of that flush (its artifact, a batch): a statement written for one flush
would take a place in sqlite3's statement cache (128 statements, about 45 KB each at 64 rows) for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, compress, repeat
from operator import eq, itemgetter, ne
from typing import Any

from sqlalchemy import Connection, Table

from elspeth.landscape.inserts import Inserter, Rows

LITERALS_FROM_ROWS = 64
"""A table's rows in a flush below this many are all bound: a statement made for one flush costs a prepare,
more than binding a few rows saves (a call's commit sends a handful of rows at a time)."""
ROWS_PER_STATEMENT = 64
_MAX_BOUND = 999
"""Bound values one statement may hold in every SQLite (the default limit before 3.32)."""
_INTEGRAL = frozenset({int, bool})
LONGEST_LITERAL = 256
"""Text longer than this stays bound: the constants worth writing in are ids, statuses and hashes, while a
row's payload shared by a whole flush (a source repeating one row) would be copied into the statement once
per row in it, and the statement kept in sqlite3's cache: memory growing with the input's rows."""


def sqlite_inserter(conn: Connection) -> Inserter:
    """How the recorder sends a flush on a SQLite connection (inside the open transaction)."""
    preparer = conn.dialect.identifier_preparer
    heads: dict[Table, str] = {}

    def insert(flush: Sequence[tuple[Table, Rows]]) -> None:
        for table, rows in flush:
            if table not in heads:
                names = ", ".join(preparer.quote(c.name) for c in table.columns)
                heads[table] = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES "
            for sql, params in statements(heads[table], len(table.columns), rows):
                conn.exec_driver_sql(sql, params)

    return insert


def statements(head: str, width: int, rows: Rows) -> list[tuple[str, list[Any]]]:
    """INSERTs (`head` is their text up to VALUES) and their parameters, for executemany, that store `rows`.
    A flush mostly holds one kind of row per table (a transform's states) and a few of others (a sink's
    write states): the rows that share the most common literal-safe values go together, those values
    written in; then the same for what is left, until what is left is too few, and is bound."""
    out = []
    while len(rows) >= LITERALS_FROM_ROWS:
        shared = _common_values(rows, width)
        if not shared:
            break
        if all(list(map(itemgetter(j), rows)).count(value) == len(rows) for j, value in shared.items()):
            group, rest = rows, []  # the common case, without a key per row
        else:
            keys = list(map(itemgetter(*shared), rows))
            model = tuple(shared.values()) if len(shared) > 1 else next(iter(shared.values()))
            group = list(compress(rows, map(eq, keys, repeat(model))))
            rest = list(compress(rows, map(ne, keys, repeat(model))))
        literals = _literals(group, list(shared)) if len(group) >= LITERALS_FROM_ROWS else None
        if literals is None:
            break
        values = "(" + ", ".join(literals.get(j, "?") for j in range(width)) + ")"
        out += _many_a_statement(
            head, values, list(map(_picker([j for j in range(width) if j not in literals]), group))
        )
        rows = rest
    if rows:
        out += _many_a_statement(head, f"({', '.join('?' * width)})", list(map(tuple, rows)))
    return out


def _many_a_statement(head: str, values: str, params: list[tuple[Any, ...]]) -> list[tuple[str, list[Any]]]:
    """`values` (one row's) repeated in a statement of ROWS_PER_STATEMENT rows, their parameters run together,
    for as many rows as fill such statements; the rest one row a statement."""
    per_statement = max(1, min(ROWS_PER_STATEMENT, _MAX_BOUND // max(1, len(params[0]))))
    whole = len(params) - len(params) % per_statement
    out: list[tuple[str, list[Any]]] = []
    if whole:
        together = [tuple(chain.from_iterable(params[i : i + per_statement])) for i in range(0, whole, per_statement)]
        out.append((head + ", ".join([values] * per_statement), together))
    if whole < len(params):
        out.append((head + values, params[whole:]))
    return out


def _common_values(rows: Rows, width: int) -> dict[int, Any]:
    """Column -> value, for the columns likely to hold one literal-safe value in most of `rows`: the value
    two of the first, the middle and the last row share (ids, hashes and times differ already there)."""
    first, middle, last = rows[0], rows[len(rows) // 2], rows[-1]
    found = {}
    for j in range(width):
        if middle[j] == first[j] or middle[j] == last[j]:
            value = middle[j]
        elif first[j] == last[j]:
            value = first[j]
        else:
            continue
        if sql_literal(value) is not None:
            found[j] = value
    return found


def _literals(group: Rows, columns: list[int]) -> dict[int, str] | None:
    """Column -> literal for `columns`, whose values are equal across `group`; None where equal is not enough:
    1 == True == 1.0, but 1.0 is stored as a REAL (an int and a bool are both bound as an integer)."""
    found = {}
    for j in columns:
        value = group[0][j]
        if type(value) in _INTEGRAL and not _INTEGRAL.issuperset(map(type, map(itemgetter(j), group))):
            return None
        literal = sql_literal(value)
        if literal is None:
            return None
        found[j] = literal
    return found


def sql_literal(value: Any) -> str | None:
    """`value` as a SQLite literal that stores exactly what binding it stores, or None where that is not sure."""
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is str and len(value) <= LONGEST_LITERAL and value.isascii() and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _picker(columns: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(columns) > 1:
        return itemgetter(*columns)  # type: ignore[return-value]
    if columns:
        j = columns[0]
        return lambda row: (row[j],)
    return lambda row: ()
