"""The azure_blob sink through the real SDK against Azurite: many writes never overwrite each other (seed
000), artifacts describe every committed byte, SIGKILLed runs resume to an uninterrupted run's bytes, and
every request on the wire is a recorded call."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from typing import Any, ClassVar

import pytest

from elspeth.api import Artifact, Capability, Context, Row, Sink
from elspeth.engine.clock import SystemClock
from elspeth.errors import ConfigError, ElspethError
from elspeth.formats import encode_jsonl
from elspeth.plugins.azure.blob_sink import AzureBlobSink, AzureBlobSinkConfig, block_id
from elspeth.plugins.csv_files import CsvSink, CsvSinkConfig
from elspeth.settings import structure
from elspeth_testkit import fault_proxy
from elspeth_testkit.azurite import Azurite
from elspeth_testkit.fault_proxy import FaultProxy

from .blob_world import Blobs, World, endpoint


def numbered(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"row {i:04d}", "score": i * 1.5, "ok": i % 2 == 0, "tags": ["a", i]} for i in range(n)]


def many_writes(world: World, options: dict[str, Any], rows: list[dict[str, Any]], **engine: Any) -> dict[str, Any]:
    """A pipeline whose sink gets a write() per 4 rows and a flush per 9 rows read."""
    return world.settings(
        source=world.jsonl_source(rows),
        sinks={"out": {"plugin": "azure_blob", "options": options}},
        engine={"write_batch_rows": 4, "checkpoint_every_rows": 9, **engine},
    )


def expected_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return encode_jsonl(rows)


# ---------------------------------------------------------------- seed 000: many writes, one blob


def test_many_writes_and_flushes_keep_every_row_once_in_order(world: World, blobs: Blobs, azurite, proxy) -> None:
    """Seed 000: the old sink uploaded each write()'s rows over the blob, so only the last batch survived.
    Here 23 rows in 8 writes and 3 flushes are all in the blob, in order, once; the artifact's hash and size
    are those of the downloaded bytes; every request on the wire is a calls row with its full body."""
    rows = numbered(23)
    settings = many_writes(world, blobs.options("out/result.jsonl", endpoint(proxy, azurite)), rows)
    summary = world.run(settings)
    assert summary.status == "completed", summary.error
    stored = blobs.get("out/result.jsonl")
    assert stored == expected_jsonl(rows)
    artifact = world.artifact(summary.run_id)
    assert (artifact["content_hash"], artifact["size"], artifact["row_count"]) == (
        hashlib.sha256(stored).hexdigest(),
        len(stored),
        23,
    )
    assert artifact["uri"] == f"{endpoint(proxy, azurite)}/{blobs.container}/out/result.jsonl"
    writes = world.query("SELECT * FROM node_states WHERE node_id = 'sink:out' AND operation = 'write'")
    flushes = world.query("SELECT * FROM node_states WHERE node_id = 'sink:out' AND operation = 'flush'")
    assert (len(writes), len(flushes)) == (8, 3)  # 4+4+1 | 4+4+1 | 4+1 rows
    assert blobs.committed_blocks("out/result.jsonl") == [block_id(n) for n in range(8)]
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_each_write_is_one_staged_block_recorded_with_its_bytes(world: World, blobs: Blobs) -> None:
    rows = numbered(9)
    summary = world.run(many_writes(world, blobs.options("r.jsonl"), rows))
    assert summary.status == "completed", summary.error
    calls = world.calls(summary.run_id)
    staged = [c for c in calls if c["request"]["operation"] == "stage_block"]
    assert [c["request"]["body"] for c in staged] == [
        expected_jsonl(rows[0:4]).decode(),
        expected_jsonl(rows[4:8]).decode(),
        expected_jsonl(rows[8:9]).decode(),
    ]
    assert [c["request"]["block_id"] for c in staged] == [block_id(0), block_id(1), block_id(2)]
    commits = [c for c in calls if c["request"]["operation"] == "commit_block_list"]
    assert [c["request"]["block_ids"] for c in commits] == [[block_id(0), block_id(1), block_id(2)]]
    wire_ids = [base64.b64encode(block_id(n).encode()).decode() for n in range(3)]
    assert "".join(f"<Latest>{i}</Latest>" for i in wire_ids) in commits[0]["request"]["body"]
    assert all(c["status"] == "ok" for c in calls if c["request"]["operation"] != "get_blob_properties")
    # Opening looked the blob up first (it did not exist: a recorded 404).
    assert calls[0]["request"]["operation"] == "get_blob_properties"
    assert calls[0]["error"]["status"] == 404


class _UploadEachWrite(Sink):
    """The sink of seed 000: each write() uploads its own rows over the blob."""

    name = "seed_000_blob"
    config_class = AzureBlobSinkConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXTERNAL_CALLS})

    def open(self, ctx: Context, resume: Any) -> None:
        from elspeth.plugins.azure.blob_auth import blob_client

        self.client = blob_client(self.config, self.config.blob_path)
        self.data = b""

    def write(self, rows: list[Row], ctx: Context) -> None:
        self.data = encode_jsonl(rows)
        with ctx.call("blob", "azure_blob", {"operation": "upload", "body": self.data}) as call:
            self.client.upload_blob(self.data, overwrite=True)
            call.response = {"status": 201}

    def flush(self, ctx: Context) -> Artifact:
        digest = hashlib.sha256(self.data).hexdigest()
        return Artifact(uri=self.client.url, content_hash=digest, size=len(self.data), row_count=0)


def test_the_same_check_catches_the_seed_000_sink(tmp_path, blobs: Blobs) -> None:
    """The multi-write check above is not vacuous: the sink of seed 000 fails it."""
    from elspeth.hookspecs import hookimpl

    from .blob_world import blob_registry

    class Seed:
        @hookimpl
        def register_sinks(self, register: Any) -> None:
            register(_UploadEachWrite)

    world = World(tmp_path, blob_registry(Seed()))
    rows = numbered(23)
    settings = many_writes(world, blobs.options("seed.jsonl"), rows)
    settings["sinks"]["out"]["plugin"] = "seed_000_blob"
    assert world.run(settings).status == "completed"
    stored = blobs.get("seed.jsonl")
    assert stored != expected_jsonl(rows)
    assert stored == expected_jsonl(rows[22:])  # only the last write (the 23rd row) survived


def test_csv_bytes_are_those_of_the_local_csv_sink(world: World, blobs: Blobs, tmp_path) -> None:
    rows = numbered(11)
    options = blobs.options("table.csv", delimiter=";")
    summary = world.run(many_writes(world, options, rows))
    assert summary.status == "completed", summary.error
    local = CsvSink(CsvSinkConfig(path=str(tmp_path / "local.csv"), delimiter=";"))
    local.open(None, None)  # type: ignore[arg-type]
    for start in range(0, 11, 4):
        local.write(rows[start : start + 4], None)  # type: ignore[arg-type]
    local.flush(None)  # type: ignore[arg-type]
    local.close()
    assert blobs.get("table.csv") == (tmp_path / "local.csv").read_bytes()
    world.assert_clean(summary.run_id)


def test_an_empty_run_commits_an_empty_blob(world: World, blobs: Blobs) -> None:
    summary = world.run(many_writes(world, blobs.options("empty.jsonl"), []))
    assert summary.status == "completed", summary.error
    assert blobs.get("empty.jsonl") == b""
    artifact = world.artifact(summary.run_id)
    assert (artifact["size"], artifact["content_hash"]) == (0, hashlib.sha256(b"").hexdigest())
    world.assert_clean(summary.run_id)


# ---------------------------------------------------------------- options


def test_an_existing_blob_is_refused_unless_overwrite(world: World, blobs: Blobs) -> None:
    blobs.put("taken.jsonl", b'{"old": true}\n')
    settings = many_writes(world, blobs.options("taken.jsonl"), numbered(5))
    with pytest.raises(ConfigError) as raised:
        world.run(settings)
    message = str(raised.value)
    assert "'taken.jsonl'" in message and blobs.container in message and "overwrite: true" in message
    assert blobs.get("taken.jsonl") == b'{"old": true}\n'

    settings["sinks"]["out"]["options"]["overwrite"] = True
    summary = world.run(settings)
    assert summary.status == "completed", summary.error
    assert blobs.get("taken.jsonl") == expected_jsonl(numbered(5))
    world.assert_clean(summary.run_id)


def test_overwrite_replaces_an_existing_blob_even_with_no_rows(world: World, blobs: Blobs) -> None:
    blobs.put("old.jsonl", b"stale\n")
    summary = world.run(many_writes(world, blobs.options("old.jsonl", overwrite=True), []))
    assert summary.status == "completed", summary.error
    assert blobs.get("old.jsonl") == b""
    world.assert_clean(summary.run_id)


@pytest.mark.parametrize(
    ("blob_path", "message"),
    [
        ("/abs/out.jsonl", "absolute"),
        ("../other/out.jsonl", "'..' segment"),
        ("a/../../out.jsonl", "'..' segment"),
        ("a/./out.jsonl", "'.' segment"),
        ("a\\b.jsonl", "backslash"),
        ("a//b.jsonl", "empty segment"),
        ("dir/", "empty segment"),
        ("", "empty"),
        ("{run_id.__class__}.jsonl", "only {run_id} and {date}"),
        ("{0}.jsonl", "only {run_id} and {date}"),
        ("{env}.jsonl", "only {run_id} and {date}"),
        ("{run_id!r}.jsonl", "only {run_id} and {date}"),
        ("{date:%Y}.jsonl", "only {run_id} and {date}"),
        ("{run_id", "not a valid template"),
        ("{run_id}/../x.jsonl", "'..' segment"),
    ],
)
def test_blob_paths_that_leave_the_container_are_refused(blob_path: str, message: str, blobs: Blobs) -> None:
    with pytest.raises(ConfigError, match="blob_path") as raised:
        structure(blobs.options(blob_path, format="jsonl"), AzureBlobSinkConfig, where="sinks.out.options")
    assert message in str(raised.value)


def test_a_run_id_that_would_leave_the_container_is_refused_at_open(world: World, blobs: Blobs) -> None:
    settings = many_writes(world, blobs.options("runs/{run_id}.jsonl"), numbered(2))
    with pytest.raises(ConfigError, match=r"'\.\.' segment"):
        world.run(settings, run_id="../escape")
    assert blobs.names() == []


def test_run_id_and_date_fill_the_template(world: World, blobs: Blobs) -> None:
    summary = world.run(many_writes(world, blobs.options("runs/{date}/{run_id}.jsonl"), numbered(3)), run_id="r-17")
    assert summary.status == "completed", summary.error
    (name,) = blobs.names()
    assert name.startswith("runs/") and name.endswith("/r-17.jsonl")
    assert len(name.split("/")[1]) == len("2024-01-31")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "json"}, "use one of: csv, jsonl"),
        ({"fields": ["a"]}, "`fields` applies to format csv only"),
        ({"delimiter": ";"}, "`delimiter` applies to format csv only"),
        ({"container": "Bad_Name"}, "not a container name"),
        ({"max_attempts": 0}, "`max_attempts` must be a number greater than 0"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str, blobs: Blobs) -> None:
    with pytest.raises(ConfigError, match=message):
        structure({**blobs.options("x.jsonl"), **options}, AzureBlobSinkConfig, where="options")


def test_the_format_comes_from_the_extension_or_the_option(blobs: Blobs) -> None:
    assert structure(blobs.options("x.csv"), AzureBlobSinkConfig, where="o").resolved_format == "csv"
    assert structure(blobs.options("x.ndjson"), AzureBlobSinkConfig, where="o").resolved_format == "jsonl"
    assert structure(blobs.options("x.txt", format="csv"), AzureBlobSinkConfig, where="o").resolved_format == "csv"
    with pytest.raises(ConfigError, match="set `format`"):
        structure(blobs.options("x.txt"), AzureBlobSinkConfig, where="o")


# ---------------------------------------------------------------- SIGKILL and resume


@pytest.mark.parametrize(
    "kill",
    [
        pytest.param({"method": "write", "n": 5, "when": "after"}, id="after-a-stage_block"),
        pytest.param({"method": "flush", "n": 2, "when": "after"}, id="after-a-commit"),
        pytest.param({"method": "flush", "n": 1, "when": "after"}, id="after-the-first-commit"),
        pytest.param({"method": "write", "n": 2, "when": "after"}, id="before-any-commit"),
    ],
)
def test_a_killed_run_resumes_to_an_uninterrupted_runs_bytes(world: World, blobs: Blobs, kill: dict) -> None:
    rows = numbered(30)
    settings = many_writes(world, blobs.options("killed.csv"), rows, checkpoint_every_rows=10)
    code = world.child(settings, "killed", {"kind": "sink", "name": "azure_blob", **kill})
    assert code == -9
    summary = world.resume("killed", settings)
    assert summary.status == "completed", summary.error
    reference = many_writes(world, blobs.options("reference.csv"), rows, checkpoint_every_rows=10)
    assert world.run(reference).status == "completed"
    stored = blobs.get("killed.csv")
    assert stored == blobs.get("reference.csv")
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(stored.decode()))] == list(range(30))
    artifact = world.artifact("killed")
    assert (artifact["content_hash"], artifact["size"]) == (hashlib.sha256(stored).hexdigest(), len(stored))
    world.assert_clean("killed")


def test_resume_drops_blocks_committed_after_the_last_recorded_flush(world: World, blobs: Blobs) -> None:
    rows = numbered(30)
    settings = many_writes(world, blobs.options("tail.jsonl"), rows, checkpoint_every_rows=10)
    assert world.child(settings, "tail", {"kind": "sink", "name": "azure_blob", "method": "flush", "n": 2}) == -9
    # Flush 2 committed 6 blocks; the engine recorded only flush 1 (3 blocks).
    assert len(blobs.committed_blocks("tail.jsonl")) == 6
    summary = world.resume("tail", settings)
    assert summary.status == "completed", summary.error
    assert blobs.get("tail.jsonl") == expected_jsonl(rows)
    commits = [c for c in world.calls("tail") if c["request"]["operation"] == "commit_block_list"]
    resumed_commits = [c for c in commits if c["request"]["block_ids"] == [block_id(n) for n in range(3)]]
    assert len(resumed_commits) == 2  # flush 1, and the resume that dropped blocks 3-5
    world.assert_clean("tail")


def test_resume_refuses_a_blob_changed_since_the_last_flush(world: World, blobs: Blobs) -> None:
    from elspeth.errors import ResumeError

    rows = numbered(30)
    settings = many_writes(world, blobs.options("changed.jsonl"), rows, checkpoint_every_rows=10)
    assert world.child(settings, "changed", {"kind": "sink", "name": "azure_blob", "method": "write", "n": 5}) == -9
    blobs.put("changed.jsonl", b"someone else's data\n")
    with pytest.raises(ResumeError, match="changed since"):
        world.resume("changed", settings)


def test_a_blob_changed_behind_the_sinks_back_is_not_overwritten(world: World, blobs: Blobs, azurite: Azurite) -> None:
    """Commits are conditional on the etag the sink last saw: another writer's commit is an error."""
    sink = AzureBlobSink(structure(blobs.options("shared.jsonl"), AzureBlobSinkConfig, where="o"))
    ctx = BareContext()
    sink.open(ctx, None)
    sink.write(numbered(2), ctx)
    sink.flush(ctx)
    blobs.put("shared.jsonl", b"intruder\n")
    sink.write(numbered(3)[2:], ctx)
    with pytest.raises(ElspethError, match="changed by something else"):
        sink.flush(ctx)
    assert blobs.get("shared.jsonl") == b"intruder\n"
    sink.close()


class BareContext:
    """Enough of the engine's ctx to drive a sink by hand; calls are kept in a list."""

    run_id = "bare"
    node_id = "sink:out"
    state_id = 1
    checkpoint = None

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.clock = SystemClock()

    def record_call(self, **call: Any) -> None:
        self.calls.append(call)


# ---------------------------------------------------------------- faults on the wire


@pytest.mark.parametrize(
    ("fault", "path"),
    [
        pytest.param(fault_proxy.status(500), r"comp=block&", id="500-on-stage_block"),
        pytest.param(fault_proxy.status(503, retry_after=0), r"comp=blocklist", id="503-on-commit"),
        pytest.param(fault_proxy.reset(), r"comp=block&", id="reset-on-stage_block"),
        pytest.param(fault_proxy.reset(), r"comp=blocklist", id="reset-on-commit"),
        pytest.param(fault_proxy.timeout(1.0), r"comp=block&", id="timeout-on-stage_block"),
        pytest.param(fault_proxy.malformed(), r"comp=block&", id="malformed-on-stage_block"),
        pytest.param(fault_proxy.status(500), r"^/[^?]*$", id="500-on-the-lookup"),
    ],
)
def test_a_transient_fault_is_an_error_call_then_a_recorded_retry(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy, fault: Any, path: str
) -> None:
    proxy.script(fault, path=path, first=1)
    rows = numbered(9)
    options = blobs.options("retried.jsonl", endpoint(proxy, azurite), timeout_seconds=0.5)
    summary = world.run(many_writes(world, options, rows))
    assert summary.status == "completed", summary.error
    assert blobs.get("retried.jsonl") == expected_jsonl(rows)
    errors = [c for c in world.calls(summary.run_id) if c["status"] == "error" and c["error"].get("status") != 404]
    assert len(errors) == 1 and errors[0]["request"]["attempt"] == 1
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)


def test_a_fault_that_persists_fails_the_run_recorded_and_resume_finishes_it(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy
) -> None:
    rows = numbered(9)
    settings = many_writes(world, blobs.options("down.jsonl", endpoint(proxy, azurite), max_attempts=2), rows)
    proxy.script(fault_proxy.status(500), path=r"comp=block&", nth=3)
    proxy.script(fault_proxy.status(500), path=r"comp=block&", nth=4)
    summary = world.run(settings, run_id="down")
    assert summary.status == "failed"
    assert "HTTP 500" in (summary.error or "") and "down.jsonl" in (summary.error or "")
    errors = [c for c in world.calls("down") if c["status"] == "error" and c["error"].get("status") == 500]
    assert [c["request"]["attempt"] for c in errors] == [1, 2]
    world.assert_clean("down")
    world.assert_wire(proxy, "down")
    proxy.clear()
    resumed = world.resume("down", settings)
    assert resumed.status == "completed", resumed.error
    assert blobs.get("down.jsonl") == expected_jsonl(rows)
    world.assert_clean("down")
    world.assert_wire(proxy, "down")


def test_a_commit_whose_answer_was_lost_is_not_refused_when_retried(
    world: World, blobs: Blobs, azurite: Azurite, proxy: FaultProxy
) -> None:
    """The proxy holds the first commit past the client's timeout, then forwards it: the blob IS committed
    and its etag changed. The retry's If-Match fails (412); the sink checks the committed block list, finds
    its own, and goes on."""
    proxy.script(fault_proxy.delay(1.5), path=r"comp=blocklist", first=1)
    rows = numbered(5)
    options = blobs.options("lost.jsonl", endpoint(proxy, azurite), timeout_seconds=0.5, backoff_seconds=2.5)
    summary = world.run(many_writes(world, options, rows))
    assert summary.status == "completed", summary.error
    assert blobs.get("lost.jsonl") == expected_jsonl(rows)
    ops = [(c["request"]["operation"], c["status"]) for c in world.calls(summary.run_id)]
    assert ops[-3:] == [("commit_block_list", "error"), ("commit_block_list", "error"), ("get_block_list", "ok")]
    world.assert_clean(summary.run_id)
    world.assert_wire(proxy, summary.run_id)
