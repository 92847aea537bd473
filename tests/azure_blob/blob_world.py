"""Helpers of the Blob Storage tests: the plugins registered as the `azure` entry point registers them, a
world of one Landscape and its outputs, and direct SDK access to Azurite."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import define
from sqlalchemy import create_engine, text

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.hookspecs import hookimpl
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.plugins import builtin
from elspeth.plugins.azure.blob_sink import AzureBlobSink
from elspeth.plugins.azure.blob_source import AzureBlobSource
from elspeth.settings import Settings, structure
from elspeth_testkit.azurite import Azurite
from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.sweep import assert_clean
from elspeth_testkit.wire_check import assert_wire_matches_calls

CHILD = Path(__file__).with_name("blob_child.py")
ENGINE = {"retry": {"max_attempts": 1, "backoff_seconds": 0}, "checkpoint_every_seconds": 3600}
_containers = itertools.count()


class BlobPlugins:
    """Registers the two Blob plugins as the `azure` entry point will."""

    @hookimpl
    def register_sources(self, register: Any) -> None:
        register(AzureBlobSource)

    @hookimpl
    def register_sinks(self, register: Any) -> None:
        register(AzureBlobSink)


def blob_registry(*more: Any) -> PluginRegistry:
    """The built-in plugins and the Blob ones, and nothing else installed here (other entry points are
    not these tests' business, and may be half-written)."""
    return PluginRegistry(make_plugin_manager([builtin, BlobPlugins(), *more], load_entry_points=False))


@define
class Blobs:
    """Azurite through the SDK directly (not through a plugin), for putting input in place and reading
    output back."""

    azurite: Azurite
    container: str

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    def client(self, name: str) -> Any:
        return self.service().get_blob_client(self.container, name)

    def put(self, name: str, data: bytes) -> None:
        self.client(name).upload_blob(data, overwrite=True)

    def get(self, name: str) -> bytes:
        return bytes(self.client(name).download_blob().readall())

    def exists(self, name: str) -> bool:
        return bool(self.client(name).exists())

    def committed_blocks(self, name: str) -> list[str]:
        committed, _ = self.client(name).get_block_list("committed")
        return [b.id for b in committed]

    def names(self) -> list[str]:
        return sorted(b.name for b in self.service().get_container_client(self.container).list_blobs())

    def options(self, blob_path: str, endpoint: str | None = None, **more: Any) -> dict[str, Any]:
        """Plugin options: account key auth, requests to `endpoint` (a proxy) or straight to Azurite."""
        return {
            "container": self.container,
            "blob_path": blob_path,
            "account_url": self.azurite.blob_endpoint,
            "account_key": self.azurite.account_key,
            "endpoint": endpoint,
            "backoff_seconds": 0,
            **more,
        }


def new_container(azurite: Azurite, prefix: str = "t") -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"{prefix}-{os.getpid()}-{next(_containers)}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


@define
class World:
    """One directory: a Landscape file, its payloads, local files of the pipeline."""

    root: Path
    registry: PluginRegistry

    @property
    def url(self) -> str:
        return f"sqlite:///{self.root / 'landscape.db'}"

    @property
    def payload_dir(self) -> Path:
        return self.root / "payloads"

    def settings(
        self,
        *,
        source: Mapping[str, Any],
        sinks: Mapping[str, Mapping[str, Any]],
        engine: Mapping[str, Any] | None = None,
        **top: Any,
    ) -> dict[str, Any]:
        return {
            "source": dict(source),
            "sinks": {name: dict(spec) for name, spec in sinks.items()},
            "default_sink": next(iter(sinks)),
            "engine": {**ENGINE, **(engine or {})},
            "landscape": {"payload_dir": str(self.payload_dir)},
            **top,
        }

    def rows_file(self, rows: list[dict[str, Any]], name: str = "input.jsonl") -> str:
        path = self.root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    def jsonl_source(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"plugin": "jsonl", "options": {"path": self.rows_file(rows)}}

    def local_sink(self, name: str = "out.jsonl") -> dict[str, Any]:
        return {"plugin": "jsonl", "options": {"path": str(self.root / name), "if_exists": "overwrite"}}

    def run(self, settings: Mapping[str, Any], *, run_id: str | None = None) -> RunSummary:
        return run_pipeline(
            structure(dict(settings), Settings, where="$"),
            registry=self.registry,
            landscape_url=self.url,
            run_id=run_id,
        )

    def resume(self, run_id: str, settings: Mapping[str, Any]) -> RunSummary:
        return resume_run(
            run_id, structure(dict(settings), Settings, where="$"), registry=self.registry, landscape_url=self.url
        )

    def child(self, settings: Mapping[str, Any], run_id: str, kill: Mapping[str, Any] | None) -> int:
        """Run the pipeline in a new process that SIGKILLs itself at `kill` (elspeth_testkit.child's kill
        points); the return code (-9 when killed)."""
        spec = self.root / f"child-{run_id}.json"
        spec.write_text(
            json.dumps({"action": "run", "settings": settings, "url": self.url, "run_id": run_id, "kill": kill})
        )
        done = subprocess.run(
            [sys.executable, str(CHILD), str(spec)], capture_output=True, text=True, timeout=120, env=os.environ
        )
        assert done.returncode in (0, -signal.SIGKILL), f"exit {done.returncode}: {done.stdout}\n{done.stderr[-3000:]}"
        return done.returncode

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(text(sql), params).mappings()]
        finally:
            engine.dispose()

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """The run's calls in order, request/response/error parsed (inline or from the payload store)."""
        found = []
        for row in self.query(
            "SELECT * FROM calls WHERE run_id = :r ORDER BY created_at, state_id, call_index", r=run_id
        ):
            for part in ("request", "response"):
                ref = row[f"{part}_ref"]
                stored = FilePayloadStore(self.payload_dir).get(ref).decode() if ref else row[f"{part}_json"]
                row[part] = None if stored is None else json.loads(stored)
            row["error"] = None if row["error_json"] is None else json.loads(row["error_json"])
            found.append(row)
        return found

    def artifact(self, run_id: str, node: str = "sink:out") -> dict[str, Any]:
        rows = self.query(
            "SELECT * FROM artifacts WHERE run_id = :r AND node_id = :n ORDER BY artifact_id DESC", r=run_id, n=node
        )
        return rows[0]

    def assert_clean(self, run_id: str) -> None:
        assert_clean(self.url, run_id, self.payload_dir)

    def assert_wire(self, proxy: FaultProxy, run_id: str) -> None:
        assert proxy.wait_idle()
        assert proxy.exchanges, "nothing crossed the proxy"
        assert_wire_matches_calls(proxy.exchanges, self.url, run_id, self.payload_dir)


def endpoint(proxy: FaultProxy, azurite: Azurite) -> str:
    return f"{proxy.url}/{azurite.account_name}"
