"""Wires this distribution into the conformance kit: `pytest --elspeth-conformance` runs `http_enrich`
against the local test API (behind the kit's fault proxy), and the tests here use the same API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from elspeth_http.conformance import LocalApi, http_setups, serve_test_api


@pytest.fixture(scope="session")
def test_api() -> Iterator[LocalApi]:
    with serve_test_api() as api:
        yield api


@pytest.fixture
def elspeth_conformance_setups(elspeth_conformance_setups: dict[str, Any], test_api: LocalApi) -> dict[str, Any]:
    return {**elspeth_conformance_setups, **http_setups(test_api.url)}
