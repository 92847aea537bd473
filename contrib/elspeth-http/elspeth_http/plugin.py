"""The entry point (`elspeth.plugins`: `http = "elspeth_http.plugin"`): registers the transforms."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl
from elspeth_http.enrich import HttpEnrich


@hookimpl
def register_transforms(register: Register) -> None:
    register(HttpEnrich)
