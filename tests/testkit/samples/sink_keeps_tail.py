"""Bug class 14: on resume it appends after everything in the file, keeping the rows a crashed attempt wrote
after its last flush, which the engine delivers again: they end up twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.api import Context, Register
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink


class TailKeepingSink(SampleAppendSink):
    name = "sample_keeps_tail"

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        if not resume:
            super().open(ctx, resume)
            return
        self.file = open(self.path, "a+b")  # noqa: SIM115 (open until close())
        self.file.seek(0)
        data = self.file.read()
        self.sha256.update(data)
        self.size, self.rows = len(data), data.count(b"\n")


@hookimpl
def register_sinks(register: Register) -> None:
    register(TailKeepingSink)
