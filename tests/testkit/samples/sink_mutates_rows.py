"""Bug class 23 in a sink: the append sink drops the `flag` field from each row it is handed, in place,
before writing it."""

from __future__ import annotations

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink


class RowTrimmingSink(SampleAppendSink):
    name = "sample_trimming_sink"

    def write(self, rows: list[Row], ctx: Context) -> None:
        for row in rows:
            row.pop("flag", None)
        super().write(rows, ctx)


@hookimpl
def register_sinks(register: Register) -> None:
    register(RowTrimmingSink)
