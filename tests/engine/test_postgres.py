"""The same engine on PostgreSQL: the Landscape's schema and its migrations, deferred foreign keys and
recovery queries work through the same code as on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import make_url

from elspeth.errors import LandscapeError
from elspeth.landscape import lineage, schema
from elspeth.landscape.database import open_database, upgrade_database
from elspeth.landscape.migrations import m0001_initial

from .test_recovery import assert_routed_output, routed


def _run_id(name: str) -> str:
    return f"pg-{name}-{uuid.uuid4().hex[:8]}"


def test_postgres_two_sinks_second_fails_resume_completes_both(pg_world):
    crashed, clean = pg_world("crashed"), pg_world("clean")
    settings = routed(crashed)
    failed = crashed.run(settings, run_id=_run_id("failed"), faults={"b": {"at": "flush", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    resumed = crashed.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error
    reference = clean.run(routed(clean), run_id=_run_id("clean"))
    assert_routed_output(crashed, clean)
    crashed.assert_clean(failed.run_id)
    clean.assert_clean(reference.run_id)


def test_postgres_sigkill_mid_write_and_resume_in_a_new_process(pg_world):
    crashed, clean = pg_world("crashed"), pg_world("clean")
    settings = routed(crashed)
    run_id = _run_id("killed")
    crashed.killed(settings, run_id, faults={"b": {"at": "write", "n": 3, "action": "kill"}})
    resumed = crashed.subprocess(settings, run_id, resume=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    clean.run(routed(clean), run_id=_run_id("clean"))
    assert_routed_output(crashed, clean)
    crashed.assert_clean(run_id)


def test_postgres_aggregation(pg_world):
    w = pg_world("agg")
    settings = w.settings(
        source={"plugin": "test_numbers", "options": {"count": 25}},
        aggregations=[{"plugin": "stats", "options": {"fields": ["value"]}, "trigger": {"count": 10}}],
    )
    summary = w.run(settings, run_id=_run_id("agg"))
    assert summary.status == "completed", summary.error
    assert summary.outcomes == {"consumed": 25, "completed": 3}
    w.assert_clean(summary.run_id)


def test_postgres_rows_in_flight_equal_the_serial_run(pg_world):
    from .test_rows_in_flight import pipeline

    serial, concurrent = pg_world("serial"), pg_world("concurrent")
    one = serial.run(pipeline(serial, 1), run_id=_run_id("serial"))
    many = concurrent.run(pipeline(concurrent, 16), run_id=_run_id("concurrent"))
    assert one.status == many.status == "completed", (one.error, many.error)
    assert serial.bytes("out") == concurrent.bytes("out") and serial.bytes("errors") == concurrent.bytes("errors")
    concurrent.assert_clean(many.run_id)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Databases of their own on the test server, dropped afterwards: a schema test must start empty, and
    must never move the shared test database to another schema under other checkouts' feet."""
    server = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"elspeth_schema_{uuid.uuid4().hex[:10]}"
        with server.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        made.append(name)
        return make_url(postgres_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with server.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.dispose()


def test_postgres_migrations_add_up_to_the_live_schema(fresh_postgres):
    from tests.landscape.test_migrations import shape

    migrated, live = fresh_postgres(), fresh_postgres()
    open_database(migrated).dispose()
    create_live_schema(live)
    assert shape(migrated) == shape(live)


def create_live_schema(url: str) -> None:
    """schema.py's tables, from a copy: creating them on PostgreSQL marks the foreign keys it adds with ALTER
    never to be written inline again, which would strip them from every SQLite database this process makes."""
    copy = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(copy)
    engine = create_engine(url)
    copy.create_all(engine)
    engine.dispose()


def test_a_sqlite_landscape_made_after_a_postgresql_one_keeps_every_foreign_key(fresh_postgres, tmp_path):
    from tests.landscape.test_migrations import live_schema, shape

    open_database(fresh_postgres()).dispose()
    open_database(f"sqlite:///{tmp_path / 'after.db'}").dispose()
    assert shape(f"sqlite:///{tmp_path / 'after.db'}") == live_schema(tmp_path / "live.db")


def test_postgres_first_schema_landscape_upgrades_and_explains(fresh_postgres):
    """The committed first-schema Landscape's rows, copied into a PostgreSQL database of that schema."""
    from tests.landscape.test_migrations import V1, shape

    url = fresh_postgres()
    source = create_engine(f"sqlite:///{V1 / 'landscape.db'}")
    target = create_engine(url)
    with source.connect() as old, target.begin() as new:
        m0001_initial.apply(new)
        for table in m0001_initial.build().tables.values():
            rows = [dict(r) for r in old.execute(table.select()).mappings()]
            if rows:
                new.execute(table.insert(), rows)
    source.dispose()
    target.dispose()
    with pytest.raises(LandscapeError, match="elspeth db upgrade"):
        open_database(url)
    assert upgrade_database(url) == ("0001_initial", ["0002_purges"])
    live = fresh_postgres()
    create_live_schema(live)
    assert shape(url) == shape(live)
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            overview = lineage.run_overview(conn, "v1-completed")
            row = lineage.row_lineage(conn, "v1-completed", 1)
    finally:
        engine.dispose()
    assert overview.outcomes == {"completed": 22, "quarantined": 2, "routed": 6}
    assert row.payload_hash and row.payload["order_id"]
