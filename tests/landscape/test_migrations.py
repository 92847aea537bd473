"""Named migrations: a new database and an upgraded one have exactly the live schema, a Landscape written
by the first released schema upgrades and then explains and resumes its runs, and a database older or
newer than the code is refused with the way out."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Column, Integer, create_engine, inspect

from elspeth import __version__
from elspeth.cli import main
from elspeth.errors import LandscapeError
from elspeth.landscape import migrations, schema
from elspeth.landscape.database import open_database, upgrade_database
from elspeth.landscape.migrations import m0001_initial
from elspeth.landscape.migrations.operations import add_column
from elspeth.landscape.reading import open_landscape

V1 = Path(__file__).with_name("v1_landscape")
REPO = Path(__file__).resolve().parents[2]


def shape(url: str) -> dict[str, Any]:
    """Everything SQLAlchemy can see of a database's schema, in a comparable form."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables: dict[str, Any] = {}
        for name in sorted(found.get_table_names()):
            tables[name] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)],
                "primary key": found.get_pk_constraint(name)["constrained_columns"],
                "foreign keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                    for f in found.get_foreign_keys(name)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]), _predicate(i))
                    for i in found.get_indexes(name)
                ),
                "checks": sorted(
                    (c["name"], " ".join(c["sqltext"].split())) for c in found.get_check_constraints(name)
                ),
            }
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
                    tables[name]["without rowid"] = sql.rstrip().endswith("WITHOUT ROWID")
        return tables
    finally:
        engine.dispose()


def _predicate(index: Any) -> str | None:
    """A partial index's WHERE, as the dialect reflects it (sqlite_where, postgresql_where)."""
    return next((str(v) for k, v in index.get("dialect_options", {}).items() if k.endswith("_where")), None)


def live_schema(path: Path) -> dict[str, Any]:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    engine.dispose()
    return shape(url)


def v1_copy(tmp_path: Path) -> Path:
    """The committed Landscape of the first released schema, with its inputs, copied where a test may write."""
    where = tmp_path / "v1"
    shutil.copytree(V1, where, ignore=shutil.ignore_patterns("regenerate"))
    return where


def test_an_empty_database_migrated_to_head_has_exactly_the_live_schema(tmp_path):
    open_database(f"sqlite:///{tmp_path / 'new.db'}").dispose()
    migrated = shape(f"sqlite:///{tmp_path / 'new.db'}")
    assert migrated == live_schema(tmp_path / "live.db")
    assert {"elspeth_migrations", "purges"} <= set(migrated)


def test_migration_0001_is_the_schema_the_first_released_elspeth_wrote(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'first.db'}")
    with engine.begin() as conn:
        m0001_initial.apply(conn)
    engine.dispose()
    assert shape(f"sqlite:///{tmp_path / 'first.db'}") == shape(f"sqlite:///{V1 / 'landscape.db'}")


def test_a_first_schema_landscape_upgraded_has_exactly_the_live_schema_and_keeps_every_row(tmp_path):
    db = v1_copy(tmp_path) / "landscape.db"
    counts_before = _counts(db)
    before, applied = upgrade_database(f"sqlite:///{db}")
    assert (before, applied) == ("0001_initial", [m.name for m in migrations.MIGRATIONS[1:]])
    assert shape(f"sqlite:///{db}") == live_schema(tmp_path / "live.db")
    assert _counts(db) == counts_before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        ledger = conn.execute(
            "SELECT name, applied_at, elspeth_version FROM elspeth_migrations ORDER BY name"
        ).fetchall()
        meta = conn.execute("SELECT value FROM elspeth_meta WHERE key = 'schema_version'").fetchone()
    assert ledger[0] == ("0001_initial", None, None), "nobody recorded when the first schema was made"
    assert [(name, version) for name, _, version in ledger[1:]] == [(name, __version__) for name in applied]
    assert meta == (str(len(migrations.MIGRATIONS)),), "what an elspeth from before the ledger reads"


def _counts(db: Path) -> dict[str, int]:
    tables = [t.name for t in schema.metadata.tables.values() if t.name not in ("elspeth_migrations", "purges")]
    with sqlite3.connect(db) as conn:
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables}


def _elspeth(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, run from `cwd`, with this checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "elspeth", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_first_schema_landscape_is_upgraded_then_explains_and_resumes_its_runs(tmp_path):
    where = v1_copy(tmp_path)
    landscape = ("--landscape", "sqlite:///landscape.db")

    refused = _elspeth(where, "resume", "v1-interrupted", "--settings", "interrupted.json", *landscape)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "schema 0001_initial" in refused.stderr and "elspeth db upgrade --landscape" in refused.stderr
    read_only = _elspeth(where, "explain", "v1-completed", *landscape)
    assert read_only.returncode == 2 and "elspeth db upgrade" in read_only.stderr

    upgraded = _elspeth(where, "db", "upgrade", *landscape)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "from schema 0001_initial to" in upgraded.stdout and "applied 0002_purges" in upgraded.stdout

    explained = _elspeth(where, "explain", "v1-completed", "--json", *landscape)
    assert explained.returncode == 0, explained.stderr
    overview = json.loads(explained.stdout)
    assert overview["run"]["status"] == "completed" and overview["outcomes"] == {
        "completed": 22,
        "quarantined": 2,
        "routed": 6,
    }
    row = json.loads(_elspeth(where, "explain", "v1-completed", "--row", "1", "--json", *landscape).stdout)
    assert row["payload"]["order_id"] and row["payload_hash"] and row["outcomes"][0]["outcome"] == "routed"

    resumed = _elspeth(where, "resume", "v1-interrupted", "--settings", "interrupted.json", *landscape)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The uninterrupted run's final artifacts, as the first-schema elspeth recorded them.
    reference = {a["node_id"]: a for a in overview["artifacts"]}
    for sink, name in (("orders", "orders.csv"), ("urgent", "urgent.csv"), ("rejects", "rejects.jsonl")):
        data = (where / "interrupted" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == reference[f"sink:{sink}"]["content_hash"], sink
    with sqlite3.connect(where / "landscape.db") as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT status, attempt FROM runs WHERE run_id = 'v1-interrupted'").fetchone() == (
            "completed",
            2,
        )
        assert conn.execute("SELECT count(*) FROM node_states WHERE status = 'open'").fetchone() == (0,)


def test_a_landscape_newer_than_the_code_is_refused_naming_both_versions(tmp_path):
    db = tmp_path / "landscape.db"
    open_database(f"sqlite:///{db}").dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO elspeth_migrations VALUES ('9999_from_the_future', 0, '9.9.0')")
    for args in (("runs",), ("db", "upgrade"), ("db", "version")):
        result = _elspeth(tmp_path, *args, "--landscape", f"sqlite:///{db}")
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert "9999_from_the_future" in result.stderr and "9.9.0" in result.stderr, result.stderr
        assert f"({__version__})" in result.stderr and migrations.HEAD in result.stderr, result.stderr


def test_db_version_says_where_a_landscape_is_and_what_is_pending(tmp_path, monkeypatch):
    where = v1_copy(tmp_path)
    monkeypatch.chdir(where)
    result = CliRunner().invoke(main, ["db", "version", "--landscape", "sqlite:///landscape.db"])
    assert result.exit_code == 0, result.output
    assert "schema     0001_initial" in result.output
    assert f"pending    {', '.join(m.name for m in migrations.MIGRATIONS[1:])}" in result.output
    assert CliRunner().invoke(main, ["db", "upgrade", "--landscape", "sqlite:///missing.db"]).exit_code == 2
    assert not (where / "missing.db").exists(), "upgrading names an existing landscape; it creates none"


def _grow(conn: Any) -> None:
    add_column(conn, "runs", Column("note", Integer))


def _grow_then_fail(conn: Any) -> None:
    _grow(conn)
    conn.exec_driver_sql("INSERT INTO runs (run_id) VALUES ('half-done')")  # violates NOT NULL: the migration fails


def test_a_failing_migration_changes_nothing_and_a_later_one_applies_alone(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'landscape.db'}"
    open_database(url).dispose()
    head = migrations.HEAD
    monkeypatch.setattr(
        migrations, "MIGRATIONS", (*migrations.MIGRATIONS, migrations.Migration("9999_note", _grow_then_fail))
    )
    monkeypatch.setattr(migrations, "HEAD", "9999_note")
    with pytest.raises(Exception, match="NOT NULL"):
        upgrade_database(url)
    assert "note" not in [c[0] for c in shape(url)["runs"]["columns"]], "the column added before the failure is gone"
    with pytest.raises(LandscapeError, match=rf"is at schema {head}; this elspeth .* needs 9999_note"):
        open_database(url)

    fixed = migrations.Migration("9999_note", _grow)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS[:-1], fixed))
    assert upgrade_database(url) == (head, ["9999_note"])
    assert ("note", "INTEGER", True) in shape(url)["runs"]["columns"]
    open_database(url).dispose()


def test_two_upgrades_at_once_apply_each_migration_once(tmp_path):
    """Two processes upgrading one first-schema Landscape together: each migration is applied by one of them."""
    db = v1_copy(tmp_path) / "landscape.db"
    upgrades = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from elspeth.landscape.database import upgrade_database as u; print(u({f'sqlite:///{db}'!r})[1])",
            ],
            env={"PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in upgrades]
    assert [p.returncode for p in upgrades] == [0, 0], results
    # Each migration is a transaction of its own: the two may share the work, but none is applied twice.
    applied = [name for out, _ in results for name in ast.literal_eval(out.strip())]
    assert sorted(applied) == [m.name for m in migrations.MIGRATIONS[1:]], results
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM elspeth_migrations ORDER BY name")]
    assert names == [m.name for m in migrations.MIGRATIONS]


def test_the_read_api_refuses_an_older_schema_and_an_empty_database_saying_what_to_do(tmp_path):
    """Read with this elspeth's schema, an older database would fail at its first query, naming a column."""
    db = v1_copy(tmp_path) / "landscape.db"
    with pytest.raises(LandscapeError, match=r"is at schema 0001_initial.*elspeth db upgrade"):
        open_landscape(f"sqlite:///{db}")
    upgrade_database(f"sqlite:///{db}")
    with open_landscape(f"sqlite:///{db}") as landscape:
        assert landscape.runs()
    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(LandscapeError, match="holds no Landscape"):
        open_landscape(f"sqlite:///{tmp_path / 'empty.db'}")
