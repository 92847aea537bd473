"""The same engine on PostgreSQL: the Landscape's schema, deferred foreign keys and recovery queries work
through the same code as on SQLite."""

from __future__ import annotations

import uuid

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
