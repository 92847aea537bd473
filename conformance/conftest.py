"""Configuration of the conformance run over every plugin this repository ships.

The built-in file plugins need nothing here: their setups are the defaults of the kit's
`elspeth_conformance_setups` fixture. The Azure plugins run against Azurite and the kit's Azure OpenAI
emulator; the contrib packages bring their own setups and services, used when they are installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from setups_azure_blob import azure_blob_setups
from setups_azure_openai import azure_openai_setups


@pytest.fixture(scope="session")
def azurite_or_none() -> Iterator[Any]:
    """Azurite when it can be started here (`npm ci` installs it), else None: the Azure Blob plugins then
    skip, saying they have no setup, instead of every scenario of every plugin."""
    from elspeth_testkit.azurite import Azurite, AzuriteUnavailable

    try:
        server = Azurite().start()
    except AzuriteUnavailable:
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def http_test_api() -> Iterator[str | None]:
    """The URL of elspeth-http's local JSON API, when contrib/elspeth-http is installed (None otherwise)."""
    if importlib.util.find_spec("elspeth_http") is None:
        yield None
        return
    from elspeth_http.conformance import serve_test_api

    with serve_test_api() as api:
        yield api.url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str | None]:
    """moto's S3 server, when contrib/elspeth-s3 is installed (None otherwise)."""
    if importlib.util.find_spec("elspeth_s3") is None:
        yield None
        return
    from elspeth_s3.conformance import moto_s3

    with moto_s3() as url:
        yield url


@pytest.fixture
def elspeth_conformance_setups(
    elspeth_conformance_setups: dict[str, Any],
    azurite_or_none: Any,
    azure_openai_emulator: Any,
    http_test_api: str | None,
    s3_endpoint: str | None,
) -> dict[str, Any]:
    setups = {**elspeth_conformance_setups, **azure_openai_setups(azure_openai_emulator)}
    if azurite_or_none is not None:
        setups.update(azure_blob_setups(azurite_or_none))
    if http_test_api is not None:
        from elspeth_http.conformance import http_setups

        setups.update(http_setups(http_test_api))
    if s3_endpoint is not None:
        from elspeth_s3.conformance import s3_setups

        setups.update(s3_setups(s3_endpoint))
    return setups
