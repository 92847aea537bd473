"""A correct sink that cannot resume and rewrites its whole output at every flush: one JSON array of every
row written so far, put in place by an atomic rename. After a crash between a flush and the engine's record
of it, the file holds more than the last recorded artifact describes, and not as an extension of it: a
resume could not continue it, which is why the sink does not declare 'resumable'."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from elspeth.api import Artifact, Capability, Context, Register, Row, Sink
from elspeth.hookspecs import hookimpl


@frozen
class JsonDocumentConfig:
    path: str


class JsonDocumentSink(Sink):
    name = "sample_json_document"
    config_class = JsonDocumentConfig
    capabilities = frozenset({Capability.DETERMINISTIC})
    config: JsonDocumentConfig

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.path = os.path.abspath(config.path)
        self.rows: list[Row] = []

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        self.rows = []

    def write(self, rows: list[Row], ctx: Context) -> None:
        self.rows.extend(dict(row) for row in rows)

    def flush(self, ctx: Context) -> Artifact:
        data = json.dumps(self.rows, separators=(",", ":"), allow_nan=False).encode()
        temporary = self.path + ".partial"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        return Artifact("file://" + self.path, hashlib.sha256(data).hexdigest(), len(data), len(self.rows))

    def close(self) -> None:
        pass


@hookimpl
def register_sinks(register: Register) -> None:
    register(JsonDocumentSink)
