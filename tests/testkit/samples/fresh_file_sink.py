"""A correct sink that cannot resume: the append sink without the 'resumable' capability. Every run starts
the file afresh and its artifacts carry no resume state, so the engine must refuse to resume a crashed run
of it (rerun instead), and the kit must pass it for that."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.api import Artifact, Capability, Context, Register
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink


class FreshFileSink(SampleAppendSink):
    name = "sample_fresh_file"
    capabilities = frozenset({Capability.DETERMINISTIC})

    def open(self, ctx: Context, resume: Mapping[str, Any] | None) -> None:
        super().open(ctx, None)

    def flush(self, ctx: Context) -> Artifact:
        artifact = super().flush(ctx)
        return Artifact(artifact.uri, artifact.content_hash, artifact.size, artifact.row_count)


@hookimpl
def register_sinks(register: Register) -> None:
    register(FreshFileSink)
