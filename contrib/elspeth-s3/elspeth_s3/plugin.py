"""Registers the `s3` source and sink through Elspeth's hooks, as any third-party plugin does."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl
from elspeth_s3.sink import S3Sink
from elspeth_s3.source import S3Source


@hookimpl
def register_sources(register: Register) -> None:
    register(S3Source)


@hookimpl
def register_sinks(register: Register) -> None:
    register(S3Sink)
