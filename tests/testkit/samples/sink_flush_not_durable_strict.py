"""Bug class 11, with a careful resume: the same memory-until-close() sink as `sink_flush_not_durable`, but
on resume it checks the durable prefix as the correct sink does, finds the file shorter than the bytes its
last artifact claimed, and refuses to resume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.api import Context, Register
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink
from .sink_flush_not_durable import MemoryUntilCloseSink


class StrictMemoryUntilCloseSink(MemoryUntilCloseSink):
    name = "sample_flush_not_durable_strict"

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        SampleAppendSink.open(self, ctx, resume)


@hookimpl
def register_sinks(register: Register) -> None:
    register(StrictMemoryUntilCloseSink)
