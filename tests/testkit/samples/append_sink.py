"""A correct resumable sink: appends rows as JSON lines to the file at `path`, keeping an incremental sha256
of every byte in the file. Each write() goes to the OS at once (a crash leaves it on disk); flush() fsyncs
and returns an artifact for the whole file; resume checks the durable prefix and truncates the file to the
resume state's size, dropping what a crashed attempt wrote after its last flush."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import IO, Any

from attrs import frozen

from elspeth.api import Artifact, Capability, Context, Register, Row, Sink
from elspeth.errors import ResumeError
from elspeth.hookspecs import hookimpl

CHUNK = 1 << 16


@frozen
class AppendSinkConfig:
    path: str


def encode(rows: list[Row]) -> bytes:
    return "".join(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n" for row in rows).encode()


class SampleAppendSink(Sink):
    name = "sample_append"
    config_class = AppendSinkConfig
    capabilities = frozenset({Capability.DETERMINISTIC, Capability.RESUMABLE})
    config: AppendSinkConfig

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.path = os.path.abspath(config.path)
        self.file: IO[bytes] | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        if not resume:  # a fresh run, or an earlier attempt that never flushed
            self.file = open(self.path, "wb")  # noqa: SIM115 (open until close())
            return
        self.file = open(self.path, "r+b")  # noqa: SIM115 (open until close())
        self.rehash(resume["size"])
        if self.sha256.hexdigest() != resume["sha256"]:
            raise ResumeError(f"{self.path}: the first {resume['size']} bytes are not those flushed before")
        self.file.truncate(resume["size"])
        self.file.seek(resume["size"])
        self.size, self.rows = resume["size"], resume["rows"]

    def rehash(self, size: int) -> None:
        assert self.file is not None
        remaining = size
        while remaining:
            chunk = self.file.read(min(CHUNK, remaining))
            if not chunk:
                raise ResumeError(f"{self.path} is shorter than the {size} bytes flushed before")
            self.sha256.update(chunk)
            remaining -= len(chunk)

    def write(self, rows: list[Row], ctx: Context) -> None:
        assert self.file is not None
        data = encode(rows)
        self.file.write(data)
        self.file.flush()
        self.sha256.update(data)
        self.size += len(data)
        self.rows += len(rows)

    def flush(self, ctx: Context) -> Artifact:
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        digest = self.sha256.hexdigest()
        return Artifact(
            uri="file://" + self.path,
            content_hash=digest,
            size=self.size,
            row_count=self.rows,
            resume={"size": self.size, "rows": self.rows, "sha256": digest},
        )

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


@hookimpl
def register_sinks(register: Register) -> None:
    register(SampleAppendSink)
