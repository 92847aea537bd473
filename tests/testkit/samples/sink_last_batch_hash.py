"""Bug class 2: the artifact's hash and size are those of the last batch written, not of the whole file."""

from __future__ import annotations

import hashlib

from elspeth.api import Artifact, Context, Register, Row
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink, encode


class LastBatchHashSink(SampleAppendSink):
    name = "sample_last_batch_hash"
    last = b""

    def write(self, rows: list[Row], ctx: Context) -> None:
        super().write(rows, ctx)
        self.last = encode(rows)

    def flush(self, ctx: Context) -> Artifact:
        artifact = super().flush(ctx)
        digest = hashlib.sha256(self.last).hexdigest()
        return Artifact(artifact.uri, digest, len(self.last), artifact.row_count, artifact.resume)


@hookimpl
def register_sinks(register: Register) -> None:
    register(LastBatchHashSink)
