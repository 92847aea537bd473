"""Bug class 11: write() keeps rows in memory and flush() only reports them (the artifact describes bytes
that are nowhere yet); the file is written at close(), which a crashed process never reaches. On resume it
appends to whatever the file holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink, encode


class MemoryUntilCloseSink(SampleAppendSink):
    name = "sample_flush_not_durable"
    pending = b""

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        if not resume:
            super().open(ctx, resume)
            return
        self.file = open(self.path, "a+b")  # noqa: SIM115 (open until close())
        self.file.seek(0)
        data = self.file.read()
        self.sha256.update(data)
        self.size, self.rows = len(data), data.count(b"\n")

    def write(self, rows: list[Row], ctx: Context) -> None:
        data = encode(rows)
        self.pending += data
        self.sha256.update(data)
        self.size += len(data)
        self.rows += len(rows)

    def close(self) -> None:
        if self.file is not None:
            self.file.write(self.pending)
        super().close()


@hookimpl
def register_sinks(register: Register) -> None:
    register(MemoryUntilCloseSink)
