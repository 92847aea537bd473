"""The same engine on PostgreSQL: the Landscape's schema and its migrations, deferred foreign keys and
recovery queries work through the same code as on SQLite."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from elspeth.errors import LandscapeError
from elspeth.landscape import lineage, migrations, schema
from elspeth.landscape.database import open_database, upgrade_database
from elspeth.landscape.migrations import m0001_initial
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.recorder import Recorder
from elspeth.landscape.statuses import RunStatus, StateStatus

from .conftest import World
from .sample_plugins import FakeClock
from .test_no_pending_references import every_kind_of_record
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


def test_postgres_export_verify_export_and_verify(pg_world, registry):
    """The evidence commands' library on PostgreSQL (server-side cursors): a run exported, the export
    checked with the public key, the run's artifacts and payloads verified; then a changed output named."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from elspeth.evidence.check_export import check_export
    from elspeth.evidence.export import export_run
    from elspeth.evidence.grade import Level, grade_of_run
    from elspeth.evidence.verify import Status, verify_run
    from elspeth.landscape.database import open_database
    from elspeth.landscape.payloads import FilePayloadStore

    w = pg_world("evidence")
    summary = w.run(w.settings(), run_id=_run_id("evidence"))
    assert summary.status == "completed", summary.error
    store, key = FilePayloadStore(w.payload_dir), Ed25519PrivateKey.generate()

    def no_read_back(node_id: str):
        raise AssertionError(f"{node_id} writes a local file; verify reads it itself")

    engine = open_database(w.url)
    try:
        with engine.connect() as conn:
            graded = grade_of_run(conn, summary.run_id, registry, store)
            assert graded.level is Level.REPRODUCIBLE, graded.reasons
            counts = export_run(
                conn, summary.run_id, w.root / "run.jsonl", key=key, store=store, grade=graded, bodies_purged=0
            )
            verified = verify_run(conn, summary.run_id, store, no_read_back)
            assert counts["row"] == 100 and verified.payloads_matching == 100
            assert [f.status for f in verified.all()] == [Status.MATCHES]
            w.out("out").write_bytes(w.out("out").read_bytes().replace(b"1", b"7", 1))
            [changed] = verify_run(conn, summary.run_id, store, no_read_back).artifacts
            assert changed.status is Status.MISMATCH and str(w.out("out")) in changed.subject
    finally:
        engine.dispose()
    checked = check_export(str(w.root / "run.jsonl"), key.public_key())
    assert checked.problems == [] and checked.counts == counts


def test_postgres_records_the_same_landscape_as_sqlite(tmp_path, registry, postgres_url):
    """Every table, row for row and column for column: COPY stores what SQLite's executemany does."""
    # One directory for both runs, so that the paths in settings, node configs and URIs are the same.
    lite, pg = World(tmp_path, registry), World(tmp_path, registry, postgres_url)
    run_id = _run_id("same")
    for w in (lite, pg):
        shutil.rmtree(w.root / "out", ignore_errors=True)
        summary = w.run(every_kind_of_record(w), run_id=run_id, clock=FakeClock())
        assert summary.status == "completed", summary.error
    pg.assert_clean(run_id)
    for table in schema.metadata.tables.values():
        if "run_id" not in table.c or table is schema.purges:  # the schema's own tables; a run is not purged
            continue
        columns = [c.name for c in table.columns if c.name != "latency_ms"]  # measured, not from the clock
        key = ", ".join(c.name for c in table.primary_key.columns)
        query = f"SELECT {', '.join(columns)} FROM {table.name} WHERE run_id = :r ORDER BY {key}"
        lite_rows, pg_rows = lite.query(query, r=run_id), pg.query(query, r=run_id)
        assert pg_rows, f"the scenario wrote nothing into {table.name}"
        assert pg_rows == lite_rows, table.name


def _recorder(url: str, tmp_path: Path) -> tuple[Engine, Recorder]:
    engine = open_database(url)
    recorder = Recorder(engine, FilePayloadStore(tmp_path / "payloads"), _run_id("recorder"))
    recorder.begin_run(settings_json="{}", settings_hash="h", settings_path=None, version="t", owner="t")
    recorder.add_node(
        node_id="n", kind="transform", plugin="p", distribution="d", plugin_version="1", position=0,
        config_json="{}", config_hash="h",
    )  # fmt: skip
    recorder.commit()
    return engine, recorder


def _states(engine: Engine, run_id: str) -> list[int]:
    with engine.connect() as conn:
        query = select(schema.node_states.c.state_id).where(schema.node_states.c.run_id == run_id)
        return sorted(conn.execute(query).scalars())


def test_postgres_refuses_a_reference_to_nothing_and_the_recorder_goes_on_after_discarding_it(postgres_url, tmp_path):
    """The foreign keys are checked while the engine works on; what the check finds is raised as the
    SQLAlchemy error of a write, at the next use of the connection, and nothing of it is kept."""
    engine, recorder = _recorder(postgres_url, tmp_path)
    try:
        kept = recorder.open_state("n", "process")
        recorder.commit()
        recorder.open_state("n", "process", token_id=404)  # no such token
        with pytest.raises(IntegrityError, match="foreign key"):
            recorder.commit()
        recorder.discard()
        recorder.open_state("nowhere", "process")  # no such node
        with pytest.raises(IntegrityError, match="foreign key"):
            # Sends the state and the check, then an UPDATE, before which the check's answer is collected.
            recorder.finish_run(RunStatus.FAILED, "checked")
        recorder.discard()
        after = recorder.open_state("n", "process")
        recorder.commit()
        assert _states(engine, recorder.run_id) == [kept, after]
    finally:
        recorder.close()
        engine.dispose()


def test_postgres_copy_refusing_a_row_raises_the_sqlalchemy_error_of_a_write(postgres_url, tmp_path):
    engine, recorder = _recorder(postgres_url, tmp_path)
    try:
        state = recorder.open_state("n", "process")
        recorder.close_state(state, StateStatus.FAILED)  # a failed state without its error breaks a CHECK
        with pytest.raises(IntegrityError, match="ck_state_failure_has_error"):
            recorder.commit()
        recorder.discard()
        assert _states(engine, recorder.run_id) == []
    finally:
        recorder.close()
        engine.dispose()


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
    assert upgrade_database(url) == ("0001_initial", [m.name for m in migrations.MIGRATIONS[1:]])
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


@pytest.mark.parametrize(("table", "key"), [("tokens", "token_id"), ("node_states", "state_id")])
def test_postgres_checks_a_reference_to_a_small_table_by_its_primary_key(fresh_postgres, table, key):
    """The query PostgreSQL runs for each reference, planned while the table is small (when a run's first
    check plans it, to be kept for the connection's life), goes by primary key: through ix_tokens_parent, as
    it once did, every check read all of the run's tokens."""
    url = fresh_postgres()
    open_database(url).dispose()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO runs VALUES ('r', 'running', '{}', 'h', NULL, 't', 1, NULL, 0, NULL, NULL);"
                "INSERT INTO nodes VALUES ('r', 'n', 'source', 'p', 'd', '1', 0, '{}', 'h');"
                "INSERT INTO rows SELECT 'r', i, '{}', 'h', false FROM generate_series(0, 300) i;"
                "INSERT INTO tokens SELECT 'r', i, i, NULL, 'n', NULL, NULL FROM generate_series(0, 300) i;"
                "INSERT INTO node_states SELECT 'r', i, 'n', i, 'process', 1, 'open', NULL, NULL, NULL, 0, NULL, "
                "NULL, NULL FROM generate_series(0, 300) i"
            )
            plan = conn.exec_driver_sql(
                f"EXPLAIN SELECT 1 FROM ONLY {table} x WHERE run_id = 'r' AND {key} = 7 FOR KEY SHARE OF x"
            ).scalars()
            assert f"{table}_pkey" in "\n".join(plan)
    finally:
        engine.dispose()
