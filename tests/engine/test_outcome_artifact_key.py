"""A token outcome refers to its artifact and that artifact's sink as one key (migration 0004): the database
refuses an outcome whose sink did not write the artifact, or whose artifact does not exist, on SQLite and on
PostgreSQL alike, and takes the outcomes a sink really confirmed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from elspeth.landscape import schema
from elspeth.landscape.database import open_database
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.landscape.recorder import Recorder
from elspeth.landscape.statuses import StateStatus, TokenOutcome


@pytest.fixture(params=["sqlite", "postgresql"])
def landscape_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'landscape.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _sinks_and_an_artifact(recorder: Recorder) -> tuple[int, int]:
    """Sinks a and b, one source row's token, and an artifact written by sink a, committed: (token, artifact)."""
    recorder.begin_run(settings_json="{}", settings_hash="h", settings_path=None, version="t", owner="t")
    for position, (node, kind) in enumerate((("source", "source"), ("a", "sink"), ("b", "sink"))):
        recorder.add_node(
            node_id=node, kind=kind, plugin="p", distribution="d", plugin_version="1", position=position,
            config_json="{}", config_hash="h",
        )  # fmt: skip
    _, token = recorder.add_source_row("source", '{"x":1}', "0" * 64)
    flush = recorder.open_state("a", "flush")
    recorder.close_state(flush, StateStatus.COMPLETED, output_hash="0" * 64)
    artifact = recorder.add_artifact("a", flush, uri="file:///a.csv", content_hash="0" * 64, size=1, row_count=1)
    recorder.commit()
    return token, artifact


def _outcomes(recorder: Recorder) -> int:
    outcomes = schema.token_outcomes
    query = select(func.count()).select_from(outcomes).where(outcomes.c.run_id == recorder.run_id)
    with recorder.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_an_outcome_must_name_an_artifact_its_own_sink_wrote(landscape_url, tmp_path):
    engine = open_database(landscape_url)
    recorder = Recorder(engine, FilePayloadStore(tmp_path / "payloads"), f"key-{uuid.uuid4().hex[:8]}")
    try:
        token, artifact = _sinks_and_an_artifact(recorder)
        for sink, artifact_id in (("b", artifact), ("a", artifact + 1)):  # another sink's artifact; none
            recorder.add_sink_outcomes(sink, artifact_id, [(token, TokenOutcome.COMPLETED, sink, None)])
            with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
                recorder.commit()
            recorder.discard()
        assert _outcomes(recorder) == 0
        recorder.add_sink_outcomes("a", artifact, [(token, TokenOutcome.COMPLETED, "a", None)])
        recorder.commit()
        assert _outcomes(recorder) == 1
    finally:
        recorder.close()
        engine.dispose()
