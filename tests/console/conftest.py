"""Runs of tiny pipelines into a real SQLite Landscape under tmp_path, read back as `explain`, `runs`,
`purge` and `verify` read them: the data the renderers are given."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest
from attrs import frozen
from sqlalchemy import Connection

from elspeth.engine.orchestrator import run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.landscape import retention
from elspeth.landscape.database import connect_existing, open_database
from elspeth.landscape.payloads import FilePayloadStore, payload_store
from elspeth.landscape.retention import Purge
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import load_settings


@frozen
class Landscape:
    root: Path
    url: str

    @property
    def store(self) -> FilePayloadStore:
        return payload_store(self.url, None)

    def connect(self) -> contextlib.AbstractContextManager[Connection]:
        return connect_existing(self.url)

    def run(self, run_id: str, settings: str, *, input_csv: str, registry: PluginRegistry | None = None) -> RunSummary:
        """Run `settings` (YAML, where {root} is this Landscape's directory) on `input_csv` as `run_id`."""
        (self.root / "input.csv").write_text(input_csv, encoding="utf-8")
        path = self.root / f"{run_id}.yaml"
        path.write_text(textwrap.dedent(settings).replace("{root}", str(self.root)), encoding="utf-8")
        return run_pipeline(
            load_settings(path),
            registry=registry or PluginRegistry(make_plugin_manager()),
            settings_path=str(path),
            landscape_url=self.url,
            run_id=run_id,
        )

    def purge(self, run_id: str) -> Purge:
        engine = open_database(self.url)
        try:
            return retention.purge_run(engine, self.store, run_id, cutoff=None)
        finally:
            engine.dispose()


@pytest.fixture
def landscape(tmp_path: Path) -> Landscape:
    return Landscape(tmp_path, f"sqlite:///{tmp_path / 'audit' / 'landscape.db'}")
