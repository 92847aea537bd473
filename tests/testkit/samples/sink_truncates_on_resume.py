"""Bug class 14: on resume it starts the file afresh, truncating what the earlier attempt made durable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.api import Context, Register
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink


class TruncatingOnResumeSink(SampleAppendSink):
    name = "sample_truncates_on_resume"

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        super().open(ctx, None)


@hookimpl
def register_sinks(register: Register) -> None:
    register(TruncatingOnResumeSink)
