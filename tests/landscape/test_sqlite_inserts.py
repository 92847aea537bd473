"""Constants written into the INSERT as literals, and many rows a statement, must store exactly what binding
every value one row a statement stores: the same values of the same SQLite types, row for row, whatever mix
of rows a flush holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from elspeth.landscape import schema
from elspeth.landscape.database import open_database
from elspeth.landscape.sqlite_inserts import (
    LITERALS_FROM_ROWS,
    LONGEST_LITERAL,
    ROWS_PER_STATEMENT,
    sql_literal,
    sqlite_inserter,
    statements,
)

WIDTH = 4
# Few distinct values, so that columns often hold one value in most rows, mixed with others that are not
# literal-safe or equal without being the same (1, True, 1.0).
values = st.sampled_from(
    [None, 0, 1, True, False, 1.0, -(2**63), 2**63 - 1, "a", "it's", "", "é", "a\x00b", b"x", 2.5, "run-1"]
)
rows = st.lists(st.tuples(values, values, values), min_size=LITERALS_FROM_ROWS, max_size=3 * LITERALS_FROM_ROWS)


def _stored(conn: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    columns = ", ".join(f"typeof(c{j}), c{j}" for j in range(1, WIDTH))
    return conn.execute(f"SELECT k, {columns} FROM {table} ORDER BY k").fetchall()


def _database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    for table in ("bound", "literal"):
        columns = "k INTEGER PRIMARY KEY, c1 TEXT, c2 INTEGER, c3"
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}) WITHOUT ROWID")
    return conn


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows)
@example([("run-1", 1, None)] * 100 + [("run-1", True, None)] * 100 + [("run-1", 1.0, "x")] * 70)
def test_literals_store_what_binding_stores(tmp_path: Path, rows: list[tuple[object, ...]]) -> None:
    conn = _database(tmp_path / "inserts.db")
    try:
        keyed = [(k, *row) for k, row in enumerate(rows)]
        conn.executemany(f"INSERT INTO bound VALUES ({', '.join('?' * WIDTH)})", keyed)
        for sql, params in statements("INSERT INTO literal (k, c1, c2, c3) VALUES ", WIDTH, keyed):
            conn.executemany(sql, params)
        assert len(_stored(conn, "bound")) == len(rows)
        assert _stored(conn, "literal") == _stored(conn, "bound")
    finally:
        conn.execute("DELETE FROM bound")
        conn.execute("DELETE FROM literal")
        conn.commit()
        conn.close()


def test_a_flush_of_one_kind_of_row_and_a_few_others_writes_each_kind_s_constants() -> None:
    main = [("run", k, "transform", "completed", None) for k in range(200)]
    others = [("run", 200 + k, "sink", "completed", None) for k in range(3)]
    head = "INSERT INTO t (a, b, c, d, e) VALUES "
    sent = statements(head, 5, main[:100] + others + main[100:])
    one = "('run', ?, 'transform', 'completed', NULL)"
    assert sent == [
        (head + ", ".join([one] * ROWS_PER_STATEMENT), [tuple(range(i, i + 64)) for i in (0, 64, 128)]),
        (head + one, [(k,) for k in range(192, 200)]),
        (head + "(?, ?, ?, ?, ?)", others),
    ]


def test_few_rows_are_bound_one_a_statement() -> None:
    rows = [("run", k) for k in range(LITERALS_FROM_ROWS - 1)]
    assert statements("INSERT INTO t (a, b) VALUES ", 2, rows) == [("INSERT INTO t (a, b) VALUES (?, ?)", rows)]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (True, "1"),
        (False, "0"),
        (1, None),
        (-(2**63), None),
        ("it's", "'it''s'"),
        ("x" * LONGEST_LITERAL, f"'{'x' * LONGEST_LITERAL}'"),
        ("x" * (LONGEST_LITERAL + 1), None),
        ("é", None),
        ("a\x00b", None),
        (1.5, None),
        (b"x", None),
    ],
)
def test_only_values_stored_exactly_as_bound_are_literals(value: object, literal: str | None) -> None:
    assert sql_literal(value) == literal


def test_the_landscape_inserter_writes_literals_into_real_tables(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'landscape.db'}")
    try:
        with engine.connect() as conn:
            insert = sqlite_inserter(conn)
            run = ("run-1", "running", "{}", "0" * 64, None, "1", 1, None, 1.0, None, None)
            node = ("run-1", "source:csv", "source", "csv", "elspeth", "1", 0, "{}", "0" * 64)
            rows = [("run-1", k, f'{{"k":{k}}}', f"{k:064d}", False) for k in range(100)]
            tokens = [("run-1", k, k, None, "source:csv", None, None) for k in range(100)]
            insert([(schema.runs, [run]), (schema.nodes, [node]), (schema.rows, rows), (schema.tokens, tokens)])
            conn.commit()
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            stored = conn.exec_driver_sql("SELECT run_id, row_id, payload_json, payload_hash, quarantined FROM rows")
            assert sorted(stored.fetchall()) == [(r[0], r[1], r[2], r[3], 0) for r in rows]
            tokens_of_source = "SELECT count(*) FROM tokens WHERE origin_node_id = 'source:csv'"
            assert conn.exec_driver_sql(tokens_of_source).scalar() == 100
    finally:
        engine.dispose()
