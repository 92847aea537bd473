"""Real pipelines of the real engine against moto's S3 server, for the tests of this package: settings,
runs in this process or in a child that SIGKILLs itself, and what the Landscape recorded."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from attrs import define
from elspeth_s3.conformance import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, client
from sqlalchemy import create_engine, select

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary
from elspeth.landscape import schema
from elspeth.landscape.payloads import FilePayloadStore
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure
from elspeth_testkit.sweep import assert_clean

BUCKET = "elspeth-s3-tests"


def s3_options(endpoint: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "bucket": BUCKET,
        "path": path,
        "region": REGION,
        "endpoint_url": endpoint,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        **extra,
    }


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


@define
class Run:
    summary: RunSummary | None
    url: str
    workdir: Path
    given_run_id: str | None = None

    @property
    def run_id(self) -> str:
        return self.given_run_id or self.summary.run_id  # type: ignore[union-attr]

    def table(self, name: str, **where: Any) -> list[dict[str, Any]]:
        t = schema.metadata.tables[name]
        query = select(t).where(t.c.run_id == self.run_id)
        for column, value in where.items():
            query = query.where(t.c[column] == value)
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(query.order_by(*t.primary_key.columns)).mappings()]
        finally:
            engine.dispose()

    def calls(self) -> list[dict[str, Any]]:
        """Every call of the run, in order, with request and response read back (payload refs resolved)."""
        payloads = FilePayloadStore(self.workdir / "payloads")
        found = []
        for call in sorted(self.table("calls"), key=lambda c: (c["created_at"], c["state_id"], c["call_index"])):
            for side in ("request", "response"):
                ref, inline = call[f"{side}_ref"], call[f"{side}_json"]
                if ref is not None:
                    inline = payloads.get(ref).decode()
                call[side] = json.loads(inline) if inline is not None else None
            found.append(call)
        return found

    def operations(self) -> list[str]:
        return [c["request"]["operation"] for c in self.calls()]

    def last_artifact(self, node_id: str = "sink:out") -> dict[str, Any]:
        return max(self.table("artifacts", node_id=node_id), key=lambda a: a["artifact_id"])

    def assert_clean(self) -> None:
        assert_clean(self.url, self.run_id, self.workdir / "payloads")


def settings(source: dict[str, Any], sinks: dict[str, dict[str, Any]], **engine: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": source,
        "sinks": sinks,
        "engine": {"retry": {"max_attempts": 2, "backoff_seconds": 0.0}, **engine},
    }
    if "errors" in sinks:
        data["on_error"] = "errors"
    data["default_sink"] = "out" if "out" in sinks else next(iter(sinks))
    return data


def local_jsonl(path: Path) -> dict[str, Any]:
    return {"plugin": "jsonl", "options": {"path": str(path), "if_exists": "overwrite"}}


def url_of(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'landscape.db'}"


def run(workdir: Path, data: dict[str, Any], **kwargs: Any) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    summary = run_pipeline(
        structure(data, Settings, where="test pipeline"),
        registry=PluginRegistry(make_plugin_manager()),
        landscape_url=url_of(workdir),
        **kwargs,
    )
    return Run(summary, url_of(workdir), workdir)


def resume(workdir: Path, run_id: str, data: dict[str, Any]) -> Run:
    summary = resume_run(
        run_id,
        structure(data, Settings, where="test pipeline"),
        registry=PluginRegistry(make_plugin_manager()),
        landscape_url=url_of(workdir),
    )
    return Run(summary, url_of(workdir), workdir)


def run_killed(workdir: Path, data: dict[str, Any], run_id: str, kill: dict[str, Any]) -> None:
    """Run in a child process (elspeth_testkit.child) that SIGKILLs itself at `kill`; fails unless it died."""
    spec = workdir / f"child-{run_id}.json"
    spec.write_text(
        json.dumps({"action": "run", "settings": data, "url": url_of(workdir), "run_id": run_id, "kill": kill})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "elspeth_testkit.child", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed at {kill}: {proc.returncode}\n{proc.stderr}"


def read(endpoint: str, path: str) -> bytes:
    body: bytes = client(endpoint).get_object(Bucket=BUCKET, Key=path)["Body"].read()
    return body


def put(endpoint: str, path: str, data: bytes) -> None:
    client(endpoint).put_object(Bucket=BUCKET, Key=path, Body=data)


def open_uploads(endpoint: str, path: str) -> list[dict[str, Any]]:
    uploads = client(endpoint).list_multipart_uploads(Bucket=BUCKET, Prefix=path).get("Uploads", [])
    return [u for u in uploads if u["Key"] == path]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
