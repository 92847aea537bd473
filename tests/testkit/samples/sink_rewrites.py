"""Bug class 1: every write() replaces the file with its own batch, so only the last batch survives. Its
artifacts are honest about it (they describe the bytes the file holds), so only the rows read back show
the bug."""

from __future__ import annotations

import hashlib

from elspeth.api import Context, Register, Row
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink, encode


class RewritingSink(SampleAppendSink):
    name = "sample_rewriting_sink"

    def write(self, rows: list[Row], ctx: Context) -> None:
        assert self.file is not None
        data = encode(rows)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(data)
        self.file.flush()
        self.sha256 = hashlib.sha256(data)
        self.size = len(data)
        self.rows = len(rows)


@hookimpl
def register_sinks(register: Register) -> None:
    register(RewritingSink)
