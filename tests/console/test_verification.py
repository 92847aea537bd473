"""A verification as text and JSON, from real runs re-hashed by `verify_run`: an artifact that matches, one
changed since, one whose sink cannot read it back, and payloads purged; then a run where all matches."""

from __future__ import annotations

import types
from typing import Any

from attrs import frozen

from elspeth.api import Artifact, Row, Sink
from elspeth.console.verification import render_verification, verification_json
from elspeth.errors import ElspethError
from elspeth.evidence.verify import Status, verify_run
from elspeth.hookspecs import hookimpl
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager

SETTINGS = """\
    source: {plugin: csv, options: {path: "{root}/input.csv"}}
    transforms:
      - name: by_region
        plugin: route
        options: {field: region, routes: {EU: changed, NA: queued}}
    default_sink: kept
    sinks:
      kept: {plugin: csv, options: {path: "{root}/kept.csv", if_exists: overwrite}}
      changed: {plugin: csv, options: {path: "{root}/changed.csv", if_exists: overwrite}}
      queued: {plugin: queue_sink, options: {queue: jobs}}
    """
INPUT = "id,region\n1,EU\n2,NA\n3,APAC\n"
NOT_READABLE = "queue_sink cannot read back what it wrote"


@frozen
class QueueConfig:
    queue: str


class QueueSink(Sink):
    """Writes where no file is: its artifact can only be checked by reading it back, which it cannot."""

    name = "queue_sink"
    config_class = QueueConfig

    def write(self, rows: list[Row], ctx: Any) -> None:
        self.rows = [*getattr(self, "rows", []), *rows]

    def flush(self, ctx: Any) -> Artifact:
        return Artifact(uri=f"queue://{self.config.queue}", content_hash="0" * 64, size=0, row_count=len(self.rows))


def _no_read_back(node_id: str) -> Sink:
    raise ElspethError(NOT_READABLE)


def _verify(landscape, run_id: str):
    with landscape.connect() as conn:
        return verify_run(conn, run_id, landscape.store, _no_read_back)


def _run(landscape, run_id: str) -> None:
    plugins = types.SimpleNamespace(register_sinks=hookimpl(lambda register: register(QueueSink)))
    registry = PluginRegistry(make_plugin_manager(extra_plugins=[plugins]))
    assert landscape.run(run_id, SETTINGS, input_csv=INPUT, registry=registry).status == "completed"


def test_each_status_reads_as_itself_and_a_mismatch_stands_out(landscape):
    _run(landscape, "v1")
    with (landscape.root / "changed.csv").open("a") as f:
        f.write("9,EU\n")
    landscape.purge("v1")
    result = _verify(landscape, "v1")
    lines = render_verification(result).splitlines()

    assert lines[:2] == ["Run v1", "  artifacts"]
    changed, kept, queued = lines[2:5]  # by sink node id
    assert changed.startswith("    MISMATCH     sink:changed file://") and "holds " in changed
    assert kept.startswith("    matches      sink:kept file://")
    assert queued == f"    not checked  sink:queued queue://jobs: {NOT_READABLE}"
    # Every source row's payload went with the purge; their hashes stay, so nothing about them mismatches.
    assert lines[5] == "  payloads   0 match, 3 purged"
    assert [line.split()[0] for line in lines[6:-1]] == ["purged"] * 3
    assert lines[-1] == "1 mismatch"

    found = verification_json(result)
    assert [a["status"] for a in found["artifacts"]] == ["mismatch", "matches", "not checked"]
    assert {p["status"] for p in found["payloads"]} == {"purged"}
    assert found["payloads_matching"] == 0 and found["run_id"] == "v1"


def test_a_run_that_still_matches_says_so_and_counts_only_its_matches(landscape):
    _run(landscape, "v2")
    result = _verify(landscape, "v2")
    assert result.count(Status.MISMATCH) == 0
    lines = render_verification(result).splitlines()
    assert lines[-2:] == ["  payloads   3 match", "Everything checked matches the Landscape."]
