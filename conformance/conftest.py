"""Configuration of the conformance run over every plugin this repository ships.

The built-in plugins need nothing here: their setups are the defaults of the kit's
`elspeth_conformance_setups` fixture. Plugins that talk to a service add their setup below.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def http_test_api() -> Iterator[str | None]:
    """The URL of elspeth-http's local JSON API, when contrib/elspeth-http is installed (None otherwise)."""
    if importlib.util.find_spec("elspeth_http") is None:
        yield None
        return
    from elspeth_http.conformance import serve_test_api

    with serve_test_api() as api:
        yield api.url


@pytest.fixture
def elspeth_conformance_setups(elspeth_conformance_setups: dict[str, Any], http_test_api: str | None) -> dict[str, Any]:
    setups = dict(elspeth_conformance_setups)
    if http_test_api is not None:
        from elspeth_http.conformance import http_setups

        setups.update(http_setups(http_test_api))
    return setups
